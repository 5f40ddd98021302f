"""The per-value loop of a numeric column's profile, compiled with numba, and the constants of the
sketches it feeds.

One pass over a chunk instead of numpy's forty (classify, hash, HyperLogLog, moments, DDSketch
code): numpy goes through memory once per operation, the loop keeps each value in registers. The
chunk (CHUNK_ROWS values, in cache) is read a second time for the squared deviations.

Same results as the numpy formulas in `sparkprep.quality.state` (tests/etl/test_profile_state.py
compares them value by value): the HLL hash and rank, and every bucket code but those within _EDGE
of a bucket edge, which the loop hands back for the fdlibm check. numba caches the compiled code on
disk (__pycache__ beside this file, else the user's cache directory), so a new Python worker loads
it instead of compiling it again.
"""

from __future__ import annotations

import math

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from sparkprep.compiled import kernel, splitmix64


#: DDSketch relative accuracy: every quantile is within 1% of a true value of that rank.
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
#: Values with |x| below this fall in the zero bucket.
TINY = 1e-12
#: ln|x| / ln γ this close to an integer may be on the other side of a bucket edge in Spark's log.
_EDGE = 1e-9
#: Shifts bucket indexes (>= ceil(ln 1e-12 / ln γ) = -1381) above 0 so that the sign can carry
#: the value's sign.
_BIAS = 2048
#: HyperLogLog: 2^P registers of the first P hash bits; rsd 1.04 / sqrt(2^P).
HLL_P = 14
HLL_RSE = 1.04 / math.sqrt(1 << HLL_P)
_HLL_Q = 64 - HLL_P

_NAN_BITS = np.uint64(0x7FF8000000000000)  # np.nan's: every NaN counts as one distinct value
_NEG_ZERO = np.uint64(0x8000000000000000)
_LOW = np.uint64((1 << _HLL_Q) - 1)


# Helpers of fold_numbers, inlined into it by numba (inline="always"), so the compiled loop is
# the same as when they were written out in it.
@kernel(error_model="numpy", inline="always")
def _hll_add(registers, h):  # pragma: no cover (compiled)
    """Update the HLL register that the hash `h` selects with its rank."""
    index = h >> np.uint64(_HLL_Q)
    rest = h & _LOW
    rank = np.uint8(_HLL_Q + 1) if rest == 0 else np.uint8(leading_zeros(rest) - (64 - _HLL_Q) + 1)
    if rank > registers[index]:
        registers[index] = rank


@kernel(error_model="numpy", inline="always")
def _squared_deviations(x, valid, mean):  # pragma: no cover (compiled)
    """Sum of (v - mean)^2 over the finite valid values: the second pass that keeps m2 exact."""
    m2 = 0.0
    for i in range(x.shape[0]):
        if valid is not None and not valid[i]:
            continue
        v = x[i]
        if abs(v) < math.inf:
            m2 += (v - mean) * (v - mean)
    return m2


@kernel(error_model="numpy")
def fold_numbers(x, bits, logs, valid, registers, codes, near):  # pragma: no cover (compiled)
    """Fold the valid values of `x` (`logs` comes in: numpy's vectorised log takes a fifth of the
    time of a scalar one in the loop). Returns (nulls, nan, inf, finite, mean, m2, min, max,
    number of codes, number of near, smallest code, largest code).

    Args:
        x: the values (float64).
        bits: the same memory as uint64.
        logs: ln|x|.
        valid: false for nulls (None: none).
        registers: the HLL registers, updated in place.
        codes: out, as long as `x`: each finite value's bucket code.
        near: out, as long as `x`: the positions of values on a bucket edge.
    """
    nulls = nan = inf = finite = n_codes = n_near = 0
    total, lo, hi = 0.0, math.inf, -math.inf
    code_lo, code_hi = 1 << 30, -(1 << 30)
    for i in range(x.shape[0]):
        if valid is not None and not valid[i]:
            nulls += 1
            continue
        v = x[i]
        if v != v:
            nan += 1
            h = _NAN_BITS
        else:
            h = bits[i]
            if h == _NEG_ZERO:
                h = np.uint64(0)
            a = abs(v)
            if a == math.inf:
                inf += 1
            else:
                finite += 1
                total += v
                lo, hi = min(lo, v), max(hi, v)
                e = logs[i] / _LOG_GAMMA
                if a >= TINY and abs(e - np.rint(e)) < _EDGE and e != 0.0:
                    near[n_near] = i
                    n_near += 1
                else:
                    # Without a branch on the sign: a random sign would mispredict half the time.
                    code = 0 if a < TINY else (int(math.ceil(e)) + _BIAS) * (1 - 2 * (v < 0))
                    codes[n_codes] = code
                    n_codes += 1
                    code_lo, code_hi = min(code_lo, code), max(code_hi, code)
        _hll_add(registers, splitmix64(h))
    mean = total / finite if finite else 0.0
    m2 = _squared_deviations(x, valid, mean)
    return nulls, nan, inf, finite, mean, m2, lo, hi, n_codes, n_near, code_lo, code_hi


@kernel
def tally(counts, first, codes):  # pragma: no cover (compiled)
    """counts[code - first] += 1 for each code.

    Args:
        counts: the counts, updated in place.
        first: the code of counts[0].
        codes: bucket codes.
    """
    for c in codes:
        counts[c - first] += 1
