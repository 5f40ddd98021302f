"""What every numba kernel of sparkprep shares: where compiled code is cached, and the hash finaliser.

numba caches the compiled code on disk (__pycache__ beside the module, else the user's cache
directory), so a new Python worker loads it instead of compiling it again. Import this module
before defining a kernel with `cache=True`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numba
import numpy as np

# numba refuses to import a cached function it has nowhere to cache: where the package is installed
# read-only (an image, a shared environment on executors), cache in the temporary directory.
if not numba.config.CACHE_DIR and not os.access(Path(__file__).parent, os.W_OK):
    numba.config.CACHE_DIR = str(Path(tempfile.gettempdir()) / f"sparkprep-numba-{os.getuid()}")

_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def splitmix64(z: np.uint64) -> np.uint64:
    """The splitmix64 finaliser of `z`: a well-mixed 64-bit hash.

    Args:
        z: a 64-bit value.
    """
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def kernel(function=None, **options):
    """`numba.njit` with the cache on and the GIL released, as every kernel of sparkprep: `@kernel`
    or `@kernel(inline="always")`.

    Args:
        function: the Python function to compile.
        options: more numba.njit options.
    """
    compile_ = numba.njit(cache=True, nogil=True, **options)
    return compile_ if function is None else compile_(function)
