"""Benchmark: the same prepare job in local[2] and on the standalone cluster (2 workers x 1 core).

Both runs go through deploy/spark-submit.sh on the same generated CSV; the cluster is started and
stopped (by PID) with deploy/standalone.sh. Prints both wall times (spark-submit start to exit,
JVM start-up included) and the ratio, checks that the two outputs have the same manifest counts,
writes bench/results/<date>-cluster-vs-local-<rows>.json and appends a row to bench/RESULTS.md.

    .venv/etl/bin/python bench/cluster_vs_local.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
JOB = ["--config", "conf/demo.yaml", "--set", "spark.shuffle_partitions=8"]


def _submit(master: str, job: str, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib"), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable}
    start = time.perf_counter()
    subprocess.run([str(ROOT / "deploy/spark-submit.sh"), "--master", master,
                    "--conf", "spark.executor.memory=1g", job, *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _counts(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sparkprep-bench-") as tmp:
        work = Path(tmp)
        raw = work / "raw"
        _submit("local[2]", "jobs/generate.py", *JOB, "--set", f"generate.rows={args.rows}",
                "--set", f"generate.path={raw}")
        size = sum(f.stat().st_size for f in raw.rglob("*") if f.is_file())
        prepare = [*JOB, "--set", f"input.paths=[{raw}]"]
        local_s = _submit("local[2]", "jobs/prepare.py", *prepare, "--set", f"output.path={work / 'local'}")
        state = work / "standalone"
        master = subprocess.run([str(ROOT / "deploy/standalone.sh"), "start", str(state)], check=True,
                                capture_output=True, text=True).stdout.split()[-1]
        try:
            cluster_s = _submit(master, "jobs/prepare.py", *prepare, "--set", f"output.path={work / 'cluster'}")
        finally:
            subprocess.run([str(ROOT / "deploy/standalone.sh"), "stop", str(state)], check=True)
        assert _counts(work / "local") == _counts(work / "cluster")
    ratio = cluster_s / local_s
    print(f"input {args.rows} rows, {size / 1e6:.1f} MB CSV")
    print(f"local[2]                    {local_s:8.1f} s")
    print(f"standalone 2 workers x 1c   {cluster_s:8.1f} s")
    print(f"ratio cluster / local       {ratio:8.2f}x")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    result = {"date": date, "rows": args.rows, "input_bytes": size, "local_s": round(local_s, 1),
              "cluster_s": round(cluster_s, 1), "ratio": round(ratio, 2)}
    (HERE / "results" / f"{date}-cluster-vs-local-{args.rows}.json").write_text(json.dumps(result, indent=2) + "\n")
    with (HERE / "RESULTS.md").open("a") as sink:
        sink.write(f"\n| {date} | prepare: standalone (2 workers x 1 core) vs local[2], via deploy/spark-submit.sh "
                   f"| {args.rows:,} rows, {size / 1e6:.1f} MB CSV | local[2] {local_s:.1f} s "
                   f"| cluster {cluster_s:.1f} s | **{ratio:.2f}x** |\n")


if __name__ == "__main__":
    main()
