"""Benchmark: fitting every fold's transform against one plain aggregation, in the same run.

Generated Parquet shaped like a sparkprep output (row_id, fold, replica, label_index, numeric columns with
nulls and x1e6 outliers, a categorical column, an array column). The floor is
`df.agg(mean of every numeric column)`, the least any statistic over these columns costs (one
scan). Ours: `measure_groups` + `count_categories` + `fit_transforms` for k folds and final.
Three specs: "moments" (the floor's columns: standard, minmax, log1p; no quantiles), "sketches"
(the same columns with robust, robust+clip and median imputation on 4 of the 10: quantiles, once
KLL sketches, now exact over a hash sample), "all" (those plus the categorical and the array
column); the quantiles see prepare's default hash sample (normalise.sketch_sample_rows); `--only`
picks some. After one warm-up, the
measurements run interleaved, `--rounds` times; each figure is its best (the machine is shared),
in wall time and in CPU time of the driver, the JVM and its Python workers (which other
processes' load barely moves). Prints the
ratios, writes bench/results/<date>-fit-vs-agg-<rows>-<specs>.json and adds rows to bench/RESULTS.md.

    .venv/etl/bin/python bench/fit_vs_agg.py --rows 70000000 --only moments sketches --rounds 1
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from prepare_vs_floor import best_interleaved  # bench/ is sys.path[0] when a bench script runs
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from results_table import insert_rows

from sparkprep.config import ArrayTransform, CategoricalTransform, NormaliseConfig, NumericTransform, SparkConfig
from sparkprep.io.fs import HadoopFS, qualify
from sparkprep.stages.normalise.fit import FitSpec, count_categories, fit_transforms, measure_groups
from sparkprep.io.session import build_session

HERE = Path(__file__).resolve().parent
NUMERIC = [f"num_{i}" for i in range(10)]
WIDTH = 8
MOMENTS = [NumericTransform(), NumericTransform(method="minmax"), NumericTransform(log1p=True)]
SKETCHED = [NumericTransform(), NumericTransform(method="minmax"),
            NumericTransform(method="robust", impute="median", clip=(0.01, 0.99)),
            NumericTransform(method="robust", impute="median"), NumericTransform(log1p=True)]


def _generate(spark: SparkSession, rows: int, k: int, path: str) -> None:
    """Deterministic hash-based values (no rand()): 10% holdout, k folds, 90/9/1 labels, 20% copies."""
    def u(salt: str) -> F.Column:
        return (F.xxhash64(F.lit(salt), "id").bitwiseAND(F.lit((1 << 53) - 1)).cast("double") / float(1 << 53))

    fold = F.when(u("holdout") < 0.1, F.lit(-1)).otherwise(F.pmod(F.xxhash64(F.lit("fold"), "id"), F.lit(k)))
    label = F.when(u("label") < 0.9, 0).when(u("label") < 0.99, 1).otherwise(2)
    cols = {"row_id": F.xxhash64("id"), "fold": fold.cast("int"), "label_index": label.cast("int"),
            "replica": F.when((u("copy") < 0.2) & (fold >= 0), 1).otherwise(0).cast("int")}
    for c in NUMERIC:
        value = F.when(u(c + "/out") < 0.005, u(c) * 1e6).otherwise(u(c) * 10 - 5 + F.col("label_index"))
        cols[c] = F.when(u(c + "/null") < 0.01, F.lit(None)).otherwise(value)
    cols["cat_0"] = F.concat(F.lit("v"), F.pmod(F.xxhash64(F.lit("cat"), "id"), F.lit(50)).cast("string"))
    cols["emb"] = F.array(*[u(f"emb{i}") for i in range(WIDTH)])
    spark.range(rows, numPartitions=max(2, rows // 2_000_000)).withColumns(cols).drop("id") \
        .write.mode("overwrite").parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timed rounds after the warm-up")
    parser.add_argument("--only", nargs="+", choices=("moments", "sketches", "all"), default=["moments", "sketches", "all"],
                        help="which fits to measure against the floor")
    parser.add_argument("--data", help="reuse generated data at this path (kept), instead of a temporary copy")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkprep-bench-fit-"))
    spark = build_session(SparkConfig(master=args.master, driver_memory="4g", shuffle_partitions=8,
                                      conf={"spark.ui.showConsoleProgress": "false"}), "sparkprep-bench-fit")
    try:
        data = args.data or str(work / "data")
        if not (args.data and Path(data).exists()):
            _generate(spark, args.rows, args.k, data)
        size = HadoopFS(spark, qualify(str(work))).total_size(qualify(data))
        df = spark.read.parquet(data)
        sample = NormaliseConfig().sketch_sample_rows  # prepare's default
        moments = FitSpec({c: MOMENTS[i % len(MOMENTS)] for i, c in enumerate(NUMERIC)})
        sketches = FitSpec({c: SKETCHED[i % len(SKETCHED)] for i, c in enumerate(NUMERIC)}, sketch_sample=sample)
        everything = FitSpec(sketches.numeric, {"cat_0": CategoricalTransform(min_count=5)},
                             {"emb": ArrayTransform()}, {"emb": WIDTH}, sketch_sample=sample)

        def floor() -> None:
            df.agg(*[F.mean(c) for c in df.columns if c not in ("row_id", "cat_0", "emb")]).collect()

        def fit(spec: FitSpec) -> None:
            groups = measure_groups(df, NUMERIC, spec)
            fit_transforms(groups, count_categories(df, list(spec.categorical)), spec, args.k)

        specs = {"moments": moments, "sketches": sketches, "all": everything}
        runs = {"floor": floor, **{n: functools.partial(fit, specs[n]) for n in args.only}}
        cpu: dict[str, float] = {}
        best = best_interleaved(runs, args.rounds, cpu)
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)

    floor_s = best["floor"]
    result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "rows": args.rows, "k": args.k,
              "parquet_bytes": size, "master": args.master, "seconds": {n: round(t, 3) for n, t in best.items()},
              "ratio_to_floor": {n: round(t / floor_s, 3) for n, t in best.items() if n != "floor"},
              "cpu_s": {n: round(t, 2) for n, t in cpu.items()},
              "cpu_ratio_to_floor": {n: round(t / cpu["floor"], 3) for n, t in cpu.items() if n != "floor"},
              "load_avg_end": os.getloadavg()[0]}
    print(json.dumps(result, indent=2))
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{result['date']}-fit-vs-agg-{args.rows}-{'-'.join(args.only)}.json").write_text(json.dumps(result, indent=2) + "\n")
    shape = f"{args.rows:,} rows, {size / 1e9:.2f} GB Parquet, k={args.k}, {args.master}, load {result['load_avg_end']:.1f}"
    floor_txt = f"floor (agg mean of 13 columns) {floor_s:.1f} s, {cpu['floor']:.1f} s CPU"
    what = {"moments": "10 numeric: standard, minmax, log1p (no sketch)",
            "sketches": "10 numeric, 4 with KLL sketches (robust, robust+clip, median)",
            "all": "sketches + categorical + array[8]"}
    insert_rows(HERE / "RESULTS.md", [
        f"| {result['date']} | fit all {args.k} folds + final ({what[name]}) vs one plain aggregation | "
        f"{shape} | {floor_txt} | fit {best[name]:.1f} s, {cpu[name]:.1f} s CPU | "
        f"**{result['ratio_to_floor'][name]:.2f}x** (CPU {result['cpu_ratio_to_floor'][name]:.2f}x) |" for name in args.only])


if __name__ == "__main__":
    main()
