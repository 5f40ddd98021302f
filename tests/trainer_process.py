"""A script run in the trainer environment (no Spark), as a user's training job runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PYTHON = os.environ.get("SPARKPREP_TRAIN_PYTHON", str(ROOT / ".venv/train/bin/python"))

# pyarrow 14 (Petastorm's pin) can abort the interpreter at teardown, after the script has finished
# and written its output: a thread-pool worker wakes after Python has finalised and calls
# std::terminate (apache/arrow#34314; seen once in CI as exit -6, "terminate called without an
# active exception"). The script leaves through os._exit once its output is flushed, so a test
# checks what the script printed and raised, not that race.
_LEAVE = "\nimport os as _os, sys as _sys\n_sys.stdout.flush()\n_sys.stderr.flush()\n_os._exit(0)\n"


def run_trainer(script: str, *args: str, env: dict[str, str] | None = None,
                timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `script` with `args` from the repository root; fail the test with its stderr if it fails."""
    proc = subprocess.run([TRAIN_PYTHON, "-c", script + _LEAVE, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc
