"""The pipeline on a real standalone cluster (deploy/standalone.sh: master + 2 one-core workers on
loopback), submitted through deploy/spark-submit.sh exactly as a user would.

Rule 1 of the design: the same input and seed give the same rows on 1 core or on a cluster, and a
lost worker (Spark reschedules its tasks) changes nothing either.
"""

import subprocess
import time

import pytest

from conftest import ROOT, manifest_counts, prepare_cmd, rows_of, run, submit_env

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def local_out(raw_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    run(prepare_cmd("local[2]", raw_csv, out))
    return out


def test_cluster_output_equals_local_output_row_for_row(standalone, raw_csv, local_out, tmp_path):
    out = tmp_path / "out"
    proc = run(prepare_cmd(standalone.url, raw_csv, out))
    assert standalone.url in proc.stderr + proc.stdout  # it really ran on the cluster
    assert manifest_counts(out) == manifest_counts(local_out)
    assert rows_of(out) == rows_of(local_out)


def _executor_started(state) -> bool:
    """A worker has launched an executor for the running application (its app-* work dir exists)."""
    return any(state.glob("work-*/app-*/*/stderr"))


def test_a_worker_killed_mid_job_changes_nothing(standalone, raw_csv, local_out, tmp_path):
    out = tmp_path / "out"
    before = set(standalone.state.glob("work-*/app-*"))
    job = subprocess.Popen(prepare_cmd(standalone.url, raw_csv, out),
                           cwd=ROOT, env=submit_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        victim = standalone.state / "work-1"
        deadline = time.monotonic() + 300
        # Wait until worker-1 runs an executor of this job, then kill the worker (SIGKILL, by PID).
        while not (set(victim.glob("app-*")) - before) and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert job.poll() is None, "the job ended before worker-1 got an executor"
        time.sleep(3)  # let tasks start on it
        subprocess.run(["kill", "-9", str(standalone.pid("worker-1"))], check=True)
        standalone.script("worker")  # capacity back, as an operator (or a supervisor) would
        log, _ = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, log[-4000:]
    assert manifest_counts(out) == manifest_counts(local_out)
    assert rows_of(out) == rows_of(local_out)
