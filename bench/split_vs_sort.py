"""Benchmark (issue 5): split + rebalance against a plain sort of the same rows, in the same run.

Input: the demo generator's CSV (classes 90 / 9 / 1 %) of about `--gb` GB, built as bench/run.py
builds it (`--replicate` copies with distinct ids), reduced once, untimed, to what the split sees in
`prepare` (labelled rows with `row_id`) and written as Parquet: the pipeline too splits
deduplicated rows from a Parquet scratch copy. Then, with the driver capped at `--driver-memory`
(local mode: one JVM holds driver and executors), best of one run each:
- sort: read that Parquet, sort every row by xxhash64(row_id) (a global range-partitioned sort:
  one sampling pass, one shuffle), write Parquet;
- split: read it, `SplitPlan.measure` + `assign_folds` (holdout 10 %, k = 5), write Parquet
  partitioned by fold as `prepare` does;
- split+rebalance: the same plus `oversample_training_rows` (every class up to the majority of
  its fold, so the output holds about 2.6x the rows of the input).
Per job group, from Spark's event log: shuffle bytes, spill, and the largest single task's input
(records read from files plus records fetched from shuffles, and its shuffle MB), as the Spark UI
shows per task; set against the input rows, it says whether any task holds a whole class. Writes
bench/results/<date>-split-<G>gb.json and adds rows to bench/RESULTS.md.

    .venv/etl/bin/python bench/split_vs_sort.py --gb 10 --replicate 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from prepare_vs_floor import HERE, bench_config, timed  # bench/ is sys.path[0] when a bench script runs
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from results_table import insert_rows
from run import CSV_BYTES_PER_ROW, event_log_figures, replicated

from sparkprep.contract import FOLD_RANK, ROW_ID
from sparkprep.io.fs import HadoopFS, qualify
from sparkprep.stages.rebalance import oversample_training_rows
from sparkprep.io.session import build_session
from sparkprep.stages.split import SplitPlan, assign_folds

BENCHES = ("sort", "split", "split+rebalance")


def _split(df: DataFrame, rebalance: bool, k: int = 5, holdout: float = 0.1, seed: int = 42) -> DataFrame:
    plan = SplitPlan.measure(df, "label", k, holdout, seed)
    folded = assign_folds(df, "label", plan)
    out = oversample_training_rows(folded, "label", plan) if rebalance else folded.withColumn("replica", F.lit(0))
    return out.drop(FOLD_RANK).sortWithinPartitions("fold", F.xxhash64(ROW_ID, F.lit(seed)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, required=True, help="size of the generated CSV")
    parser.add_argument("--replicate", type=int, default=1, help="generate 1/N of the rows and write N copies")
    parser.add_argument("--only", nargs="+", choices=BENCHES, default=list(BENCHES))
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--shuffle-partitions", type=int, default=400,
                        help="initial shuffle partitions; AQE coalesces them to ~64 MB each")
    parser.add_argument("--input", help="reuse the Parquet rows of an earlier run (left behind when it failed) "
                        "instead of generating them")
    args = parser.parse_args()
    rows = int(args.gb * 1e9 / CSV_BYTES_PER_ROW)
    work = Path(tempfile.mkdtemp(prefix="sparkprep-split-"))
    (work / "events").mkdir()
    config = bench_config(work, rows, extra=(
        f"spark.driver_memory={args.driver_memory}", f"spark.shuffle_partitions={args.shuffle_partitions}",
        "spark.conf.spark.eventLog.enabled=true", f"spark.conf.spark.eventLog.dir=file://{work / 'events'}",
        "spark.conf.spark.eventLog.compress=false"))
    result: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "gb": args.gb,
                    "driver_memory": args.driver_memory, "shuffle_partitions": args.shuffle_partitions,
                    "load_avg_start": os.getloadavg()[0]}
    spark = build_session(config.spark, "sparkprep-bench-split")
    sc = spark.sparkContext
    source = Path(args.input) if args.input else work / "rows"
    try:
        fs = HadoopFS(spark, qualify(str(work)))
        if not args.input:
            sc.setJobGroup("generate", "generate")
            replicated(spark, config.generate, rows, args.replicate, work)
            result["csv_mb"] = round(fs.total_size(qualify(str(work / "raw"))) / 1e6, 1)
            columns = ", ".join(f"{c} string" for c in config.input.schema_)
            labelled = spark.read.schema(columns).csv(str(work / "raw")).where(F.col("label").isin("class_0", "class_1", "class_2"))
            labelled.withColumn(ROW_ID, F.xxhash64(*labelled.columns)).write.parquet(str(source))
            for scratch in ("raw", "base"):  # the disk is needed for the outputs and shuffle files at 10 GB
                shutil.rmtree(work / scratch, ignore_errors=True)
        result["input_mb"] = round(fs.total_size(qualify(str(source))) / 1e6, 1)
        rows_in = spark.read.parquet(str(source))
        result["input_rows"] = rows_in.count()
        stages = {"sort": lambda df: df.sort(F.xxhash64(ROW_ID)),
                  "split": lambda df: _split(df, rebalance=False),
                  "split+rebalance": lambda df: _split(df, rebalance=True)}
        for name in args.only:
            sc.setJobGroup(name, name)
            out = work / name.replace("+", "-")
            partitioned = ["fold"] if name != "sort" else []
            result[name] = {"seconds": round(timed(
                lambda: stages[name](spark.read.parquet(str(source))).write.partitionBy(*partitioned)
                .parquet(str(out))), 2)}
            result[name]["output_rows"] = spark.read.parquet(str(out)).count()
            shutil.rmtree(out, ignore_errors=True)
    finally:
        spark.stop()
    try:
        groups = event_log_figures(work / "events")
        for name in args.only:
            result[name].update(groups.get(name, {}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_avg_end"] = os.getloadavg()[0]
    if "sort" in result:
        for name in BENCHES[1:]:
            if name in result:
                result[name]["ratio_to_sort"] = round(result[name]["seconds"] / result["sort"]["seconds"], 2)
    print(json.dumps(result, indent=2))
    out = HERE / "results" / f"{result['date'][:10]}-split-{args.gb:g}gb{'-reused-input' if args.input else ''}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    csv = result.get("csv_mb", "an earlier run's")
    if "sort" in result:
        insert_rows(HERE / "RESULTS.md", [
            f"| {result['date'][:10]} | {name} vs plain sort | {result['input_rows']:,} rows, {result['input_mb']} MB "
            f"Parquet (from {csv} MB CSV), local[2], {args.driver_memory} heap | sort "
            f"{result['sort']['seconds']:.0f} s | {name} {result[name]['seconds']:.0f} s, largest task "
            f"{result[name]['largest_task_in_records']:,.0f} records in | **{result[name]['ratio_to_sort']}x** sort |"
            for name in BENCHES[1:] if name in result])


if __name__ == "__main__":
    main()
