"""Benchmark: near-duplicate detection (MinHash LSH → verified pairs → components) as the number of
texts grows, against a floor measured in the same run.

The floor is Spark reading the same texts and writing them back as Parquet. For each size the
bench prints the time of `add_dup_clusters`, its ratio to the floor, microseconds per text, and
the growth factor between sizes (near-linear means time per text stays flat). Writes
bench/results/<date>-neardup.json and adds rows to bench/RESULTS.md (first table).

    .venv/etl/bin/python bench/neardup_scale.py --sizes 250000 500000 1000000
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

from pyspark.sql import functions as F
from results_table import insert_rows

from sparkprep.contract import DUP_CLUSTER
from sparkprep.config import GenerateConfig, NearDupConfig, SparkConfig
from sparkprep.generate import generate_rows
from sparkprep.stages.dedup.near import add_dup_clusters
from sparkprep.io.session import build_session

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkprep-neardup-"))
    spark = build_session(SparkConfig(master=args.master, shuffle_partitions=16,
                                      conf={"spark.ui.showConsoleProgress": "false"}), "sparkprep-bench-neardup")
    calls = itertools.count()

    def materialise(df, name):
        path = str(work / f"{name}-{next(calls)}")
        df.write.parquet(path)
        return spark.read.parquet(path)

    results = []
    try:
        for n in args.sizes:
            source = str(work / f"texts-{n}")
            generated = generate_rows(spark, GenerateConfig(path=source, rows=n, files=max(2, n // 125_000)))
            generated.select(F.col("row").alias("row_id"), "text").write.parquet(source)
            texts = spark.read.parquet(source)

            def floor() -> None:
                spark.read.parquet(source).write.mode("overwrite").parquet(str(work / "floor"))

            floor()  # warm-up
            start = time.perf_counter()
            floor()
            floor_s = time.perf_counter() - start
            start = time.perf_counter()
            clustered = materialise(add_dup_clusters(texts, NearDupConfig(column="text"), materialise), "clusters")
            near_s = time.perf_counter() - start
            in_clusters = clustered.where(F.col(DUP_CLUSTER) != F.col("row_id")).count()
            results.append({"texts": n, "floor_s": round(floor_s, 2), "neardup_s": round(near_s, 2),
                            "ratio_to_floor": round(near_s / floor_s, 1), "us_per_text": round(near_s / n * 1e6, 1),
                            "rows_joined_to_a_cluster": in_clusters})
            print(json.dumps(results[-1]))
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    for before, after in zip(results, results[1:]):
        after["growth_vs_previous"] = round(after["neardup_s"] / before["neardup_s"], 2)
        after["size_growth"] = round(after["texts"] / before["texts"], 2)
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (HERE / "results" / f"{date[:10]}-neardup.json").write_text(json.dumps({"date": date, "master": args.master,
                                                                             "runs": results}, indent=2) + "\n")
    rows = []
    for r in results:
        growth = f", {r['growth_vs_previous']}x time for {r['size_growth']}x texts" if "growth_vs_previous" in r else ""
        rows.append(f"| {date[:10]} | near-dup (MinHash LSH, 25x8, Jaccard 0.8) vs floor | {r['texts']:,} texts "
                    f"(~90 chars), {args.master} | floor {r['floor_s']:.1f} s | near-dup {r['neardup_s']:.1f} s | "
                    f"**{r['ratio_to_floor']}x** floor, {r['us_per_text']} us/text{growth} |")
    insert_rows(HERE / "RESULTS.md", rows)


if __name__ == "__main__":
    main()
