"""Real clusters on loopback, one per test session: the standalone Spark cluster of deploy/standalone.sh.

Every server listens on 127.0.0.1 on a free port and is stopped by PID when the session ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds
import pytest

ROOT = Path(__file__).resolve().parents[2]
# The prepare job as every deploy/ file submits it (tests/cluster/test_deploy.py holds them to it).
PREPARE_JOB = ["jobs/prepare.py", "--config", "conf/demo.yaml"]
# Near-duplicate detection is most of prepare's time and none of what these tests are about
# (storage, submission, executor loss); tests/etl covers it.
SMALL = ["--set", "generate.rows=3000", "--set", "generate.files=2", "--set", "spark.shuffle_partitions=4",
         "--set", "dedup.near=null"]


def run(cmd: list[str], timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command from the repo root (with `env` added to the environment); fail the test with
    its stderr tail if it fails."""
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**_env(), **(env or {})})
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "lib"), "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable}


def submit_cmd(master: str, job: str, *args: str) -> list[str]:
    """The tested wrapper, deploy/spark-submit.sh, with the small-data settings."""
    return [str(ROOT / "deploy/spark-submit.sh"), "--master", master, "--conf", "spark.ui.enabled=false",
            "--conf", "spark.ui.showConsoleProgress=false", job, *args]


def submit_env() -> dict:
    return _env()


@dataclass(frozen=True)
class Standalone:
    url: str
    state: Path

    def pid(self, daemon: str) -> int:
        return int((self.state / f"{daemon}.pid").read_text())

    def script(self, command: str) -> subprocess.CompletedProcess:
        return run([str(ROOT / "deploy/standalone.sh"), command, str(self.state)])


@pytest.fixture(scope="session")
def standalone(tmp_path_factory):
    """A master and 2 one-core workers started by deploy/standalone.sh; stopped by PID afterwards."""
    state = tmp_path_factory.mktemp("standalone")
    cluster = Standalone("", state)
    try:
        url = cluster.script("start").stdout.strip().splitlines()[-1]
        yield Standalone(url, state)
    finally:
        cluster.script("stop")


@pytest.fixture(scope="session")
def raw_csv(tmp_path_factory, worker_id) -> Path:
    """3000 generated rows (2 CSV files) in local mode: the shared input of the cluster tests, made
    once per test session: under pytest-xdist by the first worker that needs it, the others waiting
    on a lock in the workers' common directory (a generate job is ~18 CPU s)."""
    shared = tmp_path_factory.mktemp("raw") if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    path = shared / "raw-csv"
    with (shared / "raw-csv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "_SUCCESS").exists():
            run([*submit_cmd("local[2]", "jobs/generate.py", "--config", "conf/demo.yaml", *SMALL,
                             "--set", f"generate.path={path}")])
    return path


def prepare_args(raw: Path | str, out: Path | str, *extra: str) -> list[str]:
    """PREPARE_JOB's arguments with the small input at `raw` and the output at `out`."""
    return [*PREPARE_JOB[1:], *SMALL, "--set", f"input.paths=[{raw}]",
            "--set", f"output.path={out}", *extra]


def prepare_cmd(master: str, raw: Path | str, out: Path | str, *extra: str) -> list[str]:
    return submit_cmd(master, PREPARE_JOB[0], *prepare_args(raw, out, *extra))


def rows_of(out: Path) -> list[tuple]:
    """Every output row (all columns, the fold from the partition path), sorted: the row set."""
    table = ds.dataset(out / "data", format="parquet", partitioning="hive").to_table()
    names = sorted(table.column_names)
    columns = [table[n].to_pylist() for n in names]
    return sorted(zip(*columns), key=repr)


def manifest_counts(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    return {"rows": manifest["rows"], "per_fold_per_class": manifest["counts"]["per_fold_per_class"]}
