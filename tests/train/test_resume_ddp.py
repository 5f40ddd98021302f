"""A real 2-rank torchrun job (gloo, CPU) killed with SIGKILL mid-epoch after a checkpoint, twice
(in epoch 0, then in epoch 1 after resuming), and restarted each time: every rank receives the same
sequence of (row_id, replica) as in an uninterrupted run (tests/train/resume_ranks.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from handmade import K, generated_rows, manifest_for, table_of, write_manifest, write_parquet_output
from sparkprep.train.loader import BACKENDS

RANKS = Path(__file__).resolve().parent / "resume_ranks.py"


def launch(out: Path, work: Path, backend: str, halt: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(RANKS), str(out),
         str(work), "--backend", backend, *(["--halt", str(halt)] if halt is not None else [])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(job: subprocess.Popen) -> None:
    output, _ = job.communicate(timeout=180)
    assert job.returncode == 0, output[-3000:]


def kill_when_halted(job: subprocess.Popen, work: Path) -> None:
    """SIGKILL the ranks (torchrun starts each in a session of its own) and torchrun itself, once
    both ranks are past their checkpoint."""
    halted = [work / f"halted{rank}" for rank in (0, 1)]
    deadline = time.monotonic() + 180
    while not all(h.exists() and h.read_text() for h in halted):
        assert job.poll() is None, job.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the ranks never reached their checkpoint"
        time.sleep(0.2)
    for pid in [int(h.read_text()) for h in halted] + [job.pid]:
        os.kill(pid, signal.SIGKILL)
    job.communicate(timeout=60)
    assert job.returncode == -signal.SIGKILL
    for h in halted:
        h.unlink()


def seen(work: Path) -> list[list[str]]:
    return [(work / f"rank{rank}.log").read_text().splitlines() for rank in (0, 1)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_job_killed_mid_epoch_twice_sees_the_same_rows_in_the_same_order_as_an_uninterrupted_one(
        tmp_path: Path, backend: str) -> None:
    out = tmp_path / "out"
    write_parquet_output(out, table_of(generated_rows()), files={-1: 2, 0: 3, 1: 2, 2: 3}, row_group_size=7)
    write_manifest(out, manifest_for("parquet", k=K, run_id="20261206T000000Z-cccccc"))
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    whole.mkdir(), interrupted.mkdir()

    finish(launch(out, whole, backend))
    kill_when_halted(launch(out, interrupted, backend, halt=0), interrupted)
    kill_when_halted(launch(out, interrupted, backend, halt=1), interrupted)
    finish(launch(out, interrupted, backend))

    expected = seen(whole)
    # Two epochs of 11 batches of 8 (the last short) per rank: the kills were mid-epoch.
    assert len(expected[0]) == len(expected[1]) > 100 and {line[0] for line in expected[0]} == {"0", "1"}
    assert seen(interrupted) == expected
