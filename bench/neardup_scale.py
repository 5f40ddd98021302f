"""Benchmark: near-duplicate detection (band keys → candidate pairs → verified pairs → components)
as the number of texts grows, and on long documents, against a floor measured in the same run.

The floor is Spark reading the same texts and writing them back as Parquet, after a warm-up run;
near-dup, too, runs once on 20,000 of the texts before it is timed. For each size the
bench prints the time of `add_dup_clusters`, its ratio to the floor, microseconds per text, the
growth factor between sizes (near-linear means time per text stays flat) and where the time went
(each scratch copy's seconds, summed by name). `--documents N` runs the same on N documents of
2-8 KB (truncated concatenations of generated texts, 2% of them copied with one character changed)
and reports MB/s per core. Writes bench/results/<date>-neardup.json and adds rows to
bench/RESULTS.md (first table).

    .venv/etl/bin/python bench/neardup_scale.py --sizes 1000000 10000000 --documents 200000
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from results_table import insert_rows

from sparkprep.contract import DUP_CLUSTER
from sparkprep.config import GenerateConfig, NearDupConfig, SparkConfig
from sparkprep.generate import generate_rows
from sparkprep.stages.dedup.near import add_dup_clusters
from sparkprep.io.session import build_session

HERE = Path(__file__).resolve().parent
TEXTS_PER_DOCUMENT = 90  # ~8.1 KB before each document is cut to 2-8 KB
WARM_UP_TEXTS = 20_000


class Scratch:
    """Numbered scratch copies under one directory, with the seconds each name took."""

    def __init__(self, spark: SparkSession, root: Path) -> None:
        self.spark, self.root, self.calls, self.laps = spark, root, itertools.count(), {}

    def __call__(self, df: DataFrame, name: str) -> DataFrame:
        path, start = str(self.root / f"{name}-{next(self.calls)}"), time.perf_counter()
        df.write.parquet(path)
        self.laps[name] = round(self.laps.get(name, 0) + time.perf_counter() - start, 2)
        return self.spark.read.parquet(path)


def generated_texts(spark: SparkSession, work: Path, n: int) -> DataFrame:
    """(row_id, text): n generated ~90-character texts, about 2% of them near-duplicates."""
    source = str(work / f"texts-{n}")
    generated = generate_rows(spark, GenerateConfig(path=source, rows=n, files=max(2, n // 125_000)))
    generated.select(F.col("row").alias("row_id"), "text").write.parquet(source)
    return spark.read.parquet(source)


def documents(spark: SparkSession, work: Path, n: int) -> DataFrame:
    """(row_id, text): n documents of 2-8 KB, 2% of them copies of another with one character changed."""
    texts = generated_texts(spark, work, n * TEXTS_PER_DOCUMENT)
    whole = (texts.groupBy(F.floor(F.col("row_id") / TEXTS_PER_DOCUMENT).alias("row_id"))
             .agg(F.concat_ws(" ", F.collect_list("text")).alias("text")))
    cut = whole.select("row_id", F.substring("text", 1, 2000 + F.pmod(F.xxhash64("row_id"), F.lit(6001)).cast("int")).alias("text"))
    copies = cut.where(F.pmod(F.xxhash64(F.lit("copy"), "row_id"), F.lit(50)) == 0).select(
        (F.col("row_id") + n).alias("row_id"), F.overlay("text", F.lit("q"), F.lit(1000)).alias("text"))
    source = str(work / f"documents-{n}")
    cut.unionByName(copies).write.parquet(source)
    return spark.read.parquet(source)


def measure(spark: SparkSession, work: Path, texts: DataFrame, label: str) -> dict:
    """The floor and add_dup_clusters on `texts`, with the breakdown by scratch copy."""
    source = texts.inputFiles()

    def floor() -> None:
        spark.read.parquet(*source).write.mode("overwrite").parquet(str(work / "floor"))

    floor()  # warm-up
    start = time.perf_counter()
    floor()
    floor_s = time.perf_counter() - start
    # Near-dup warmed up as the floor is: its Python workers' first numba calls (a cache load, and
    # scipy and pandas imported by numba's registries) are a one-off start, not a cost per text.
    add_dup_clusters(texts.limit(WARM_UP_TEXTS), NearDupConfig(column="text"), Scratch(spark, work / f"warm-{label}")
                     ).write.format("noop").mode("overwrite").save()
    scratch = Scratch(spark, work / f"scratch-{label}")
    start = time.perf_counter()
    clustered = scratch(add_dup_clusters(texts, NearDupConfig(column="text"), scratch), "clusters")
    near_s = time.perf_counter() - start
    n = texts.count()
    mb = texts.select(F.sum(F.length("text"))).first()[0] / 1e6
    return {"texts": n, "text_mb": round(mb, 1), "floor_s": round(floor_s, 2), "neardup_s": round(near_s, 2),
            "ratio_to_floor": round(near_s / floor_s, 1), "us_per_text": round(near_s / n * 1e6, 1),
            "mb_per_s_per_core": round(mb / near_s / spark.sparkContext.defaultParallelism, 2),
            "rows_joined_to_a_cluster": clustered.where(F.col(DUP_CLUSTER) != F.col("row_id")).count(),
            "seconds_by_step": scratch.laps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--documents", type=int, default=0, help="also run on this many 2-8 KB documents")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="1g", help="the JVM heap (local mode: all of Spark's)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkprep-neardup-"))
    spark = build_session(SparkConfig(master=args.master, shuffle_partitions=16, driver_memory=args.driver_memory,
                                      conf={"spark.ui.showConsoleProgress": "false"}), "sparkprep-bench-neardup")
    results, long = [], None
    try:
        for n in args.sizes:
            results.append(measure(spark, work, generated_texts(spark, work, n), f"texts-{n}"))
            print(json.dumps(results[-1]), flush=True)
        if args.documents:
            long = measure(spark, work, documents(spark, work, args.documents), "documents")
            print(json.dumps(long), flush=True)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    for before, after in zip(results, results[1:]):
        after["growth_vs_previous"] = round(after["neardup_s"] / before["neardup_s"], 2)
        after["size_growth"] = round(after["texts"] / before["texts"], 2)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (HERE / "results" / f"{date[:10]}-neardup.json").write_text(json.dumps(
        {"date": date, "master": args.master, "driver_memory": args.driver_memory, "runs": results, **({"documents": long} if long else {})}, indent=2) + "\n")
    rows = []
    for r in results:
        growth = f", {r['growth_vs_previous']}x time for {r['size_growth']}x texts" if "growth_vs_previous" in r else ""
        rows.append(f"| {date[:10]} | near-dup (band keys 25x8, Jaccard 0.8) vs floor | {r['texts']:,} texts "
                    f"(~90 chars), {args.master}, heap {args.driver_memory} | floor {r['floor_s']:.1f} s | near-dup {r['neardup_s']:.1f} s | "
                    f"**{r['ratio_to_floor']}x** floor, {r['us_per_text']} us/text{growth} |")
    if long:
        rows.append(f"| {date[:10]} | near-dup on 2-8 KB documents vs floor | {long['texts']:,} documents, "
                    f"{long['text_mb']:,} MB, {args.master} | floor {long['floor_s']:.1f} s | near-dup {long['neardup_s']:.1f} s | "
                    f"**{long['ratio_to_floor']}x** floor, {long['mb_per_s_per_core']} MB/s per core |")
    insert_rows(HERE / "RESULTS.md", rows)


if __name__ == "__main__":
    main()
