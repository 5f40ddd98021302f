"""Benchmark: `profile` against a plain scan of the same data, in the same run.

Data: the demo generator's rows, widened to --columns numeric columns derived from its five (so
every column has its own distribution), plus cat_0 and label; with --copies N, 1/N of the rows
are generated and each appears N times, shifted by copy x 0.001 (distinct values). Stored as
Parquet (default) or CSV (`--format`; read with the declared schema). The scan reads every column
(`dropna(how="all").count()`: a bare `count()` would read no column at all). "profile" profiles
the DataFrame `sparkprep profile` would (Parquet: ingest's bare read, so `profile` takes its Parquet
path; CSV: the declared-schema read, the Spark path); the result names the path. Prints the figures,
writes bench/results/<date>-profile-<rows>x<columns>-<format>.json and adds a row to RESULTS.md.

    .venv/etl/bin/python bench/profile_vs_scan.py --rows 2000000 --columns 50 [--copies 8] [--format csv]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from prepare_vs_floor import best_interleaved, timed  # bench/ is sys.path[0] when a bench script runs
from pyspark.sql import functions as F
from results_table import insert_rows

from sparkprep.config import InputConfig, load_config
from sparkprep.generate import write_generated
from sparkprep.io.read import read_input
from sparkprep.io.fs import HadoopFS, qualify
from sparkprep.quality.profile import column_kinds, profile
from sparkprep.io.arrow_tasks import plan
from sparkprep.io.session import build_session

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved timed rounds after the warm-ups")
    parser.add_argument("--copies", type=int, default=1, help="generate rows/N rows and widen N shifted copies "
                        "of them (the generator makes ~2-5 MB/s here)")
    parser.add_argument("--data", help="reuse the widened Parquet data at this path (kept), instead of a temporary copy")
    args = parser.parse_args()
    if args.data and args.format != "parquet":
        parser.error("--data keeps Parquet data only")
    work = Path(tempfile.mkdtemp(prefix="sparkprep-bench-profile-"))
    config = load_config(HERE.parent / "conf/demo.yaml", [
        f"generate.rows={args.rows // args.copies}", f"generate.files={max(2, args.rows // args.copies // 250_000)}",
        "generate.format=parquet",
        f"generate.path={work / 'raw'}", f"spark.master={args.master}", "spark.conf.spark.ui.showConsoleProgress=false"])
    spark = build_session(config.spark, "sparkprep-bench-profile")
    try:
        wide_path = args.data or str(work / "wide")
        if not (args.data and Path(wide_path).exists()):
            write_generated(spark, config.generate)
            raw = spark.read.parquet(str(work / "raw"))
            copy = F.col("_copy").cast("double")
            wide = raw.crossJoin(spark.range(args.copies).withColumnRenamed("id", "_copy")).select(
                *[(F.col(f"num_{i % 5}").cast("double") * (1 + i // 5) + i + copy * 1e-3).alias(f"x{i:02d}")
                  for i in range(args.columns)], "cat_0", "label")
            wide.write.format(args.format).save(wide_path)
            schema = wide.schema
        else:
            schema = spark.read.parquet(wide_path).schema
        size = HadoopFS(spark, qualify(str(work))).total_size(qualify(wide_path))
        # CSV is read with the declared schema, as `sparkprep profile` reads it with a config's.
        data = spark.read.schema(schema).format(args.format).load(wide_path)
        profiled = read_input(spark, InputConfig(paths=[wide_path], format="parquet")) \
            if args.format == "parquet" else data
        path = "parquet" if plan(profiled, column_kinds(profiled, "label"), "label")[1] is not None else "spark"

        def scan() -> None:
            data.dropna(how="all").count()

        def run_profile() -> None:
            profile(profiled, label="label")

        timed(run_profile)  # its own warm-up (Python workers); best_interleaved warms the scan
        cpu: dict[str, float] = {}
        best = best_interleaved({"scan": scan, "profile": run_profile}, rounds=args.rounds, cpu=cpu)
        scan_s, profile_s = best["scan"], best["profile"]
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rows": args.rows,
        "columns": args.columns + 2, "format": args.format, "input_mb": round(size / 1e6, 1), "master": args.master,
        "rounds": args.rounds, "profile_path": path,
        "scan_s": round(scan_s, 2), "profile_s": round(profile_s, 2), "ratio_to_scan": round(profile_s / scan_s, 2),
        "cpu_s": {n: round(t, 2) for n, t in cpu.items()}, "cpu_ratio_to_scan": round(cpu["profile"] / cpu["scan"], 2),
    }
    print(json.dumps(result, indent=2))
    out = HERE / "results" / f"{result['date'][:10]}-profile-{args.rows}x{result['columns']}-{args.format}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    insert_rows(HERE / "RESULTS.md", [
        f"| {result['date'][:10]} | profile vs scan (all columns read) | {args.rows:,} rows x {result['columns']} columns, "
        f"{result['input_mb']} MB {args.format}, {args.master}, {path} path | scan {scan_s:.1f} s | profile {profile_s:.1f} s | "
        f"**{result['ratio_to_scan']}x** scan (CPU {result['cpu_ratio_to_scan']}x) |"])

if __name__ == "__main__":
    main()
