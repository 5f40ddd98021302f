"""The pipeline against a real S3-compatible server on loopback, through `s3a://` (hadoop-aws
matching pyspark's Hadoop, sparkprep.io.session.hadoop_aws_package()).

Server: moto's server mode (`python -m moto.server -H 127.0.0.1 -p PORT`, a real HTTP endpoint speaking the S3
REST API) in its own venv (.venv/s3, requirements/s3.txt: botocore pins python-dateutil<3, which
the ETL lock cannot take), started as a separate process and stopped by PID; not MinIO. MinIO builds from the Go module proxy but is a ~100 MB, minutes-long build on this
2-core machine, and CI would rebuild it each time; moto installs from PyPI in seconds and s3a talks to
it over HTTP exactly as to S3 (path-style requests, multipart uploads, listings, renames by copy).

Credentials come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the first
provider in s3a's default chain) and must never appear in the run's output or logs.
"""

import csv
import json
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from conftest import PREPARE_JOB, ROOT, prepare_args, run, submit_cmd

from sparkprep.io.session import hadoop_aws_package
from trainer_process import run_trainer

pytestmark = pytest.mark.cluster

BUCKET = "sparkprep-test"
SECRET = "s3secret-" + secrets.token_hex(12)
# `python -m moto.server`, not the moto_server script: a venv's scripts name the interpreter by the
# path the venv was created at, so they break when .venv is moved or linked from another checkout.
MOTO = [os.environ["SPARKPREP_MOTO_SERVER"]] if "SPARKPREP_MOTO_SERVER" in os.environ else \
    [str(ROOT / ".venv/s3/bin/python"), "-m", "moto.server"]
# The trainer side in its own environment (pyarrow 14, delta-rs; no Spark), given the s3a:// URL
# the ETL wrote to: the rows of the final-training and test splits, through make_loader.
TRAINER_ROWS = """
import json, sys
from sparkprep.train import Sampling, make_loader
rows = {}
for split in ("final", "test"):
    with make_loader(sys.argv[1], split=split, columns=["replica"], sampling=Sampling(shuffle=False)) as loader:
        rows[split] = sum(len(batch["replica"]) for batch in loader)
print(json.dumps(rows))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _s3fs(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(endpoint_override=endpoint, access_key="sparkprep-key", secret_key=SECRET,
                             region="us-east-1", allow_bucket_creation=True)


@pytest.fixture(scope="module")
def s3(monkeypatch_module, tmp_path_factory):
    """moto's S3 server on 127.0.0.1:<free port> with one bucket; credentials in the environment."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as sink:
        server = subprocess.Popen([*MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=sink, stderr=sink)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, log.read_text()
                time.sleep(0.2)
        monkeypatch_module.setenv("AWS_ACCESS_KEY_ID", "sparkprep-key")
        monkeypatch_module.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        monkeypatch_module.setenv("AWS_REGION", "us-east-1")
        _s3fs(endpoint).create_dir(BUCKET)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _s3a_conf(endpoint: str) -> list[str]:
    """What a user sets for an S3-compatible endpoint (README, 'S3'); no credentials here."""
    conf = {"spark.hadoop.fs.s3a.endpoint": endpoint, "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
            "spark.hadoop.fs.s3a.endpoint.region": "us-east-1"}
    return [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]


def _submit(endpoint: str, job: str, *args: str) -> str:
    cmd = submit_cmd("local[2]", job, *args)
    cmd[1:1] = [*_s3a_conf(endpoint), "--packages", hadoop_aws_package()]
    proc = run(cmd)
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def raw_s3(s3, raw_csv):
    """The session's generated CSV, uploaded: a generate job of its own on s3a:// took 70-90 s of
    the module and tested no s3a path that prepare's own reads and writes do not."""
    pafs.copy_files(str(raw_csv), f"{BUCKET}/raw/csv", destination_filesystem=_s3fs(s3))
    return f"s3a://{BUCKET}/raw/csv"


def _records(raw: Path) -> int:
    """Records of the generated CSV as Python's csv module reads them (RFC 4180)."""
    return sum(len(list(csv.reader(f.open(newline="")))) for f in raw.glob("part-*.txt"))


# Delta on s3a:// commits through S3SingleDriverLogStore, Delta's default for s3/s3a/s3n: one
# writing driver per table at a time, which a sparkprep run is (README "S3" for several writers).
@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_prepare_from_s3_to_s3_keeps_the_contract_and_never_logs_the_secret(s3, raw_csv, raw_s3, fmt):
    out = f"s3a://{BUCKET}/out/{fmt}"
    log = _submit(s3, PREPARE_JOB[0], *prepare_args(raw_s3, out, "--set", f"output.format={fmt}"))
    log += _submit(s3, "jobs/verify.py", out, "--config", "conf/demo.yaml")
    assert "FAIL" not in log

    # Read back outside Spark, as a trainer does: its environment, the same URL, the endpoint and
    # credentials from the environment (AWS_ALLOW_HTTP: delta-rs refuses plain http otherwise).
    trainer = run_trainer(TRAINER_ROWS, out, env={"AWS_ENDPOINT_URL": s3, "AWS_ALLOW_HTTP": "true"})
    log += trainer.stdout + trainer.stderr
    assert SECRET not in log
    with _s3fs(s3).open_input_stream(f"{BUCKET}/out/{fmt}/manifest.json") as stream:
        manifest = json.loads(stream.read())
    rows, read = manifest["rows"], json.loads(trainer.stdout)
    assert rows["input"] == _records(raw_csv) == rows["rejected"] + rows["duplicates"] + rows["output"]
    assert manifest["output"]["format"] == fmt
    assert read["test"] == sum(manifest["counts"]["per_fold_per_class"]["-1"].values())
    assert read["final"] + read["test"] == rows["output"] + rows["replicas"]
