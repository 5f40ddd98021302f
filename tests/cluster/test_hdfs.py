"""The pipeline against a real HDFS on loopback: Hadoop's MiniDFSCluster (NameNode + 1 DataNode) from
Maven Central's hadoop-client-minicluster of the Hadoop version pyspark bundles, run as its own JVM
(tests/cluster/MiniHdfs.java, compiled here with javac into ~/.cache/sparkprep) and stopped by PID.

Trainer side: pyarrow's HadoopFileSystem needs libhdfs.so and a Hadoop install (CLASSPATH), which
neither pyspark nor pyarrow's wheel ships; so the trainer reads file:// or s3:// outputs, and an HDFS
output is checked here with Spark's own Hadoop client (`jobs/verify.py` re-derives the contract
from the data); to train from it, copy it out (`hadoop fs -get`, distcp) or write to s3a://.
"""

import os
import socket
import subprocess
import time
from pathlib import Path

import pyspark
import pytest

from conftest import PREPARE_JOB, ROOT, SMALL, prepare_args, run, submit_cmd

pytestmark = pytest.mark.cluster

HADOOP = next((Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar")).stem.split("-")[-1]
CACHE = Path(os.environ.get("SPARKPREP_CACHE", Path.home() / ".cache/sparkprep"))
MINICLUSTER = Path.home() / f".m2/repository/org/apache/hadoop/hadoop-client-minicluster/{HADOOP}/hadoop-client-minicluster-{HADOOP}.jar"


def _classpath() -> str:
    if not MINICLUSTER.exists():
        subprocess.run(["mvn", "-q", "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:get",
                        f"-Dartifact=org.apache.hadoop:hadoop-client-minicluster:{HADOOP}"], check=True)
    jars = Path(pyspark.__file__).parent / "jars"
    return f"{MINICLUSTER}:{jars}/*"


@pytest.fixture(scope="module")
def hdfs(tmp_path_factory):
    """hdfs://127.0.0.1:<free port> served by a MiniDFSCluster JVM; killed by PID afterwards."""
    classes = CACHE / f"minihdfs-{HADOOP}"  # compiled against that Hadoop's minicluster
    classes.mkdir(parents=True, exist_ok=True)
    classpath = _classpath()
    source, compiled = ROOT / "tests/cluster/MiniHdfs.java", classes / "MiniHdfs.class"
    if not compiled.exists() or compiled.stat().st_mtime < source.stat().st_mtime:
        subprocess.run(["javac", "-cp", classpath, "-d", str(classes), str(source)], check=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("hdfs") / "minihdfs.log"
    with log.open("w") as sink:
        server = subprocess.Popen(["java", "-cp", f"{classes}:{classpath}", "MiniHdfs",
                                   str(log.parent / "base"), str(port)], stdout=sink, stderr=sink)
    try:
        deadline = time.monotonic() + 180
        while "READY" not in log.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield f"hdfs://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def raw_hdfs(hdfs):
    raw = f"{hdfs}/raw/csv"
    run(submit_cmd("local[2]", "jobs/generate.py", "--config", "conf/demo.yaml", *SMALL, "--set", f"generate.path={raw}"))
    return raw


# Delta uses HDFSLogStore here (rename without overwrite is atomic on HDFS): concurrent writers are safe.
@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_prepare_from_hdfs_to_hdfs_keeps_the_contract(hdfs, raw_hdfs, fmt):
    out = f"{hdfs}/out/{fmt}"
    run(submit_cmd("local[2]", PREPARE_JOB[0], *prepare_args(raw_hdfs, out, "--set", f"output.format={fmt}")))
    log = run(submit_cmd("local[2]", "jobs/verify.py", out, "--config", "conf/demo.yaml")).stdout
    assert "FAIL" not in log and "ok" in log
