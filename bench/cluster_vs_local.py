"""Benchmark: the same prepare job in local[2] and on the standalone cluster (2 workers x 1 core).

The input is about `--gb` GB of CSV: a generated base of 1/`--replicate` of the rows, written
`--replicate` times with distinct ids (bench/run.py's `_replicated`; the generator alone makes only
2-5 MB/s here, so 5 GB would take an hour). Both runs go through deploy/spark-submit.sh on that
CSV, with the same job and config; the cluster is started and stopped (by PID) with
deploy/standalone.sh. Prints both wall times (spark-submit start to exit, JVM start-up included)
and the ratio, checks that the two outputs have the same manifest counts, writes
bench/results/<date>-cluster-vs-local-<G>gb.json and appends a row to bench/RESULTS.md.

    .venv/etl/bin/python bench/cluster_vs_local.py --gb 5
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

from prepare_vs_floor import bench_config
from run import CSV_BYTES_PER_ROW, _replicated

from sparkprep.session import build_session

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


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


def _write_input(work: Path, rows: int, copies: int) -> None:
    """`rows` rows of CSV at work/raw: `copies` copies of a generated base, in a local[2] session
    that is stopped before anything is timed."""
    config = bench_config(work, rows)
    spark = build_session(config.spark, "sparkprep-bench-input")
    try:
        _replicated(spark, config.generate.model_copy(update={"rows": rows // copies, "path": str(work / "base")}),
                    copies, work / "raw")
    finally:
        spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=5.0, help="size of the CSV input")
    parser.add_argument("--replicate", type=int, default=50, help="copies of a generated base of 1/N of the rows")
    args = parser.parse_args()
    rows = int(args.gb * 1e9 / CSV_BYTES_PER_ROW)
    # About 128 MB of CSV per shuffle partition (AQE coalesces), at least the demo's 8.
    job = ["--config", "conf/demo.yaml", "--set", f"spark.shuffle_partitions={max(8, round(args.gb * 1e9 / 128e6))}"]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sparkprep-bench-") as tmp:
        work = Path(tmp)
        raw = work / "raw"
        _write_input(work, rows, args.replicate)
        size = sum(f.stat().st_size for f in raw.rglob("*") if f.is_file())
        prepare = [*job, "--set", f"input.paths=[{raw}]"]
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
    print(f"input {rows} rows ({args.replicate} copies of a generated base), {size / 1e6:.1f} MB CSV, "
          f"load average {load:.1f} at the start")
    print(f"local[2]                    {local_s:8.1f} s")
    print(f"standalone 2 workers x 1c   {cluster_s:8.1f} s")
    print(f"ratio cluster / local       {ratio:8.2f}x")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    result = {"date": date, "gb": args.gb, "rows": rows, "replicate": args.replicate, "input_bytes": size,
              "load_avg_start": round(load, 1), "local_s": round(local_s, 1), "cluster_s": round(cluster_s, 1),
              "ratio": round(ratio, 2)}
    (HERE / "results" / f"{date}-cluster-vs-local-{args.gb:g}gb.json").write_text(json.dumps(result, indent=2) + "\n")
    with (HERE / "RESULTS.md").open("a") as sink:
        sink.write(f"\n| {date} | prepare: standalone (2 workers x 1 core) vs local[2], via deploy/spark-submit.sh "
                   f"| {rows:,} rows ({args.replicate} copies), {size / 1e6:.1f} MB CSV, load {load:.1f} | local[2] {local_s:.1f} s "
                   f"| cluster {cluster_s:.1f} s | **{ratio:.2f}x** |\n")


if __name__ == "__main__":
    main()
