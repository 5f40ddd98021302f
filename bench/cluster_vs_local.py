"""Benchmark: the same job (prepare or profile) in local[2] and on the standalone cluster (2 workers x 1 core).

The input is about `--gb` GB of CSV: a generated base of 1/`--replicate` of the rows, written
`--replicate` times with distinct ids (bench/run.py's `replicated`; the generator alone makes only
2-5 MB/s here, so 5 GB would take an hour). Both runs go through deploy/spark-submit.sh on that
CSV, with the same job and config; the cluster is started and stopped (by PID) with
deploy/standalone.sh. Prints both wall times (spark-submit start to exit, JVM start-up included)
and the ratio, checks that the two outputs agree (prepare: the manifest's row counts; profile:
an identical stats.json), writes bench/results/<date>-cluster-vs-local-<job>-<G>gb.json and
adds a row to bench/RESULTS.md (the cluster table).

    .venv/etl/bin/python bench/cluster_vs_local.py --gb 5 [--job profile] [--set dedup.near=null]
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
from results_table import insert_rows
from run import CSV_BYTES_PER_ROW, replicated

from sparkprep.io.session import build_session

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


#: Per job: the spark-submit script, the option naming its output, and what of the output must be
#: equal between the two runs (prepare: the manifest's row counts; profile: all of stats.json).
JOBS = {
    "prepare": ("jobs/prepare.py", lambda out: ["--set", f"output.path={out}"],
                lambda out: json.loads((out / "manifest.json").read_text())["rows"]),
    "profile": ("jobs/profile_stats.py", lambda out: ["--out", str(out)], lambda out: json.loads(out.read_text())),
}


def _write_input(work: Path, rows: int, copies: int) -> None:
    """`rows` rows of CSV at work/raw: `copies` copies of a generated base, in a local[2] session
    that is stopped before anything is timed."""
    config = bench_config(work, rows)
    spark = build_session(config.spark, "sparkprep-bench-input")
    try:
        replicated(spark, config.generate, rows, copies, work)
    finally:
        spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=5.0, help="size of the CSV input")
    parser.add_argument("--replicate", type=int, default=50, help="copies of a generated base of 1/N of the rows")
    parser.add_argument("--job", choices=sorted(JOBS), default="prepare")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for the job, e.g. dedup.near=null (recorded in the JSON)")
    args = parser.parse_args()
    rows = int(args.gb * 1e9 / CSV_BYTES_PER_ROW)
    # About 128 MB of CSV per shuffle partition (AQE coalesces), at least the demo's 8.
    script, output, result_of = JOBS[args.job]
    job = ["--config", "conf/demo.yaml", "--set", f"spark.shuffle_partitions={max(8, round(args.gb * 1e9 / 128e6))}",
           *(x for kv in args.set for x in ("--set", kv))]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sparkprep-bench-") as tmp:
        work = Path(tmp)
        raw = work / "raw"
        _write_input(work, rows, args.replicate)
        size = sum(f.stat().st_size for f in raw.rglob("*") if f.is_file())
        job += ["--set", f"input.paths=[{raw}]"]
        local_s = _submit("local[2]", script, *job, *output(work / "local"))
        state = work / "standalone"
        master = subprocess.run([str(ROOT / "deploy/standalone.sh"), "start", str(state)], check=True,
                                capture_output=True, text=True).stdout.split()[-1]
        try:
            cluster_s = _submit(master, script, *job, *output(work / "cluster"))
        finally:
            subprocess.run([str(ROOT / "deploy/standalone.sh"), "stop", str(state)], check=True)
        if result_of(work / "local") != result_of(work / "cluster"):
            raise SystemExit(f"{args.job}: local and cluster outputs differ")
    ratio = cluster_s / local_s
    print(f"input {rows} rows ({args.replicate} copies of a generated base), {size / 1e6:.1f} MB CSV, "
          f"load average {load:.1f} at the start")
    print(f"local[2]                    {local_s:8.1f} s")
    print(f"standalone 2 workers x 1c   {cluster_s:8.1f} s")
    print(f"ratio cluster / local       {ratio:8.2f}x")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    result = {"date": date, "job": args.job, "overrides": args.set, "gb": args.gb, "rows": rows, "replicate": args.replicate, "input_bytes": size,
              "load_avg_start": round(load, 1), "local_s": round(local_s, 1), "cluster_s": round(cluster_s, 1),
              "ratio": round(ratio, 2)}
    (HERE / "results" / f"{date}-cluster-vs-local-{args.job}-{args.gb:g}gb.json").write_text(json.dumps(result, indent=2) + "\n")
    insert_rows(HERE / "RESULTS.md", [
        f"| {date} | {' '.join([args.job, *args.set])}: standalone (2 workers x 1 core) vs local[2], via deploy/spark-submit.sh "
        f"| {rows:,} rows ({args.replicate} copies), {size / 1e6:.1f} MB CSV, load {load:.1f} | local[2] {local_s:.1f} s "
        f"| cluster {cluster_s:.1f} s | **{ratio:.2f}x** |"], header="| date | job |")


if __name__ == "__main__":
    main()
