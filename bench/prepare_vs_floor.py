"""Benchmark: `prepare` against the I/O floor measured in the same run.

The floor is Spark reading the same CSV (same all-string schema) and writing it back as Parquet,
the least any pipeline over this input must do. Prints the figures and the ratio, writes
bench/results/<date>-prepare.json and adds a row to bench/RESULTS.md (first table).

    .venv/etl/bin/python bench/prepare_vs_floor.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from results_table import insert_rows

from sparkprep.config import Config, load_config
from sparkprep.generate import write_generated
from sparkprep.io.read import csv_options
from sparkprep.io.fs import HadoopFS, qualify
from sparkprep.pipeline import run
from sparkprep.io.session import build_session
from sparkprep.io.write import overwriting

HERE = Path(__file__).resolve().parent


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def tree_cpu_s() -> float:
    """CPU seconds (user + system) of this process and all its descendants: the driver, Spark's JVM
    and its Python workers (from /proc; ended processes count through their reaped parents)."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
            stats[int(entry)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))  # utime stime cutime cstime
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


def best_interleaved(fns: dict, rounds: int = 2, cpu: dict[str, float] | None = None) -> dict[str, float]:
    """Best time of each function over `rounds` interleaved rounds, after one warm-up run of the
    first (JIT, page cache): interleaving spreads a noisy neighbour's load over all of them.

    With `cpu`, also the least CPU seconds of each function's runs (`tree_cpu_s`: the JVM and the
    Python workers; wall time on this shared machine moves with the neighbours' load, CPU time of
    the same work barely does)."""
    timed(next(iter(fns.values())))
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            before = tree_cpu_s()
            best[name] = min(best[name], timed(fn))
            if cpu is not None:
                cpu[name] = min(cpu.get(name, float("inf")), tree_cpu_s() - before)
    return best


def bench_config(work: Path, rows: int, fmt: str = "parquet", master: str = "local[2]",
                 rebalance: str = "none", extra: tuple[str, ...] = ()) -> Config:
    """The demo config pointed at generated data of `rows` rows under `work`."""
    return load_config(HERE.parent / "conf/demo.yaml", [
        f"generate.rows={rows}", f"generate.files={max(2, rows // 250_000)}",
        f"generate.path={work / 'raw'}", f"input.paths=[{work / 'raw'}]",
        f"output.path={work / 'out'}", f"output.format={fmt}", f"spark.master={master}", f"rebalance.method={rebalance}",
        "spark.conf.spark.ui.showConsoleProgress=false", *extra])


def floor(spark: SparkSession, config: Config, work: Path, *between: Callable[[DataFrame], DataFrame],
          dictionary_page_bytes: int | None = None) -> None:
    """The I/O floor: read the input CSV as strings (as prepare reads it), write it back as Parquet; `between` (applied
    last first) turns it into the same I/O with one stage in the middle. `dictionary_page_bytes`:
    Parquet's dictionary limit (default: parquet-mr's 1 MB), as prepare's output.dictionary_page_bytes."""
    schema = ", ".join(f"{c} string" for c in config.input.schema_)
    # The same CSV options as prepare (RFC 4180: multi-line records, one task per file).
    df = spark.read.schema(schema).options(**csv_options(config.input)).csv(str(work / "raw"))
    for stage in reversed(between):
        df = stage(df)
    writer = overwriting(df, dictionary_page_bytes) if dictionary_page_bytes else df.write.mode("overwrite")
    writer.parquet(str(work / "floor"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["parquet", "delta"], default="parquet")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rebalance", choices=["none", "oversample"], default="none",
                        help="oversampling writes ~2.7x the rows of the input on the demo's 90/9/1 labels")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkprep-bench-"))
    config = bench_config(work, args.rows, args.format, args.master, args.rebalance)
    spark = build_session(config.spark, "sparkprep-bench")
    try:
        write_generated(spark, config.generate)
        size = HadoopFS(spark, qualify(str(work))).total_size(qualify(str(work / "raw")))
        timed(lambda: floor(spark, config, work))  # warm-up: JIT, file cache
        floor_s = min(timed(lambda: floor(spark, config, work)), timed(lambda: floor(spark, config, work)))
        result_box = []
        prepare_s = timed(lambda: result_box.append(run(spark, config)))
        stages = result_box[0].manifest["timings_s"]
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": args.rows, "input_mb": round(size / 1e6, 1), "master": args.master, "format": args.format,
        "floor_s": round(floor_s, 2), "prepare_s": round(prepare_s, 2),
        "ratio_to_floor": round(prepare_s / floor_s, 2),
        "prepare_mb_per_s": round(size / 1e6 / prepare_s, 1),
        "rebalance": args.rebalance, "prepare_stages_s": stages,
    }
    print(json.dumps(result, indent=2))
    out = HERE / "results" / f"{result['date'][:10]}-prepare-{args.rows}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    insert_rows(HERE / "RESULTS.md", [
        f"| {result['date'][:10]} | prepare vs floor | {args.rows:,} rows, {result['input_mb']} MB CSV, "
        f"{args.master}, {args.format}, rebalance {args.rebalance} | floor {floor_s:.1f} s | prepare {prepare_s:.1f} s | "
        f"**{result['ratio_to_floor']}x** floor, {result['prepare_mb_per_s']} MB/s |"])


if __name__ == "__main__":
    main()
