"""Benchmark suite at a chosen size: `prepare` and a pandas baseline against the I/O floor.

Generates the demo dataset (CSV) of about `--gb` GB, then in ONE Spark session with the driver
capped at `--driver-memory` (local mode: one JVM holds driver and executors, so this caps both):
- floor: Spark reads the CSV (all strings) and writes it back as Parquet (below 1 GB the best of
  two after a warm-up; from 1 GB the faster of one run before the other benches and one after);
- floor-tuned: the floor written with prepare's Parquet dictionary limit
  (output.dictionary_page_bytes, 64 KB against parquet-mr's 1 MB): prepare writes that way, and
  the setting speeds up the floor's own write more than it speeds up prepare, so prepare's ratio
  to this floor is given too;
- copies: the floor's read, and the rows written as many times as prepare's oversampling writes
  them (about 2.5x on the demo's 90/9/1 labels): what any pipeline with prepare's output pays at
  least, before typing, dedup, split and fold directories;
- dedup: the floor's read and write with exact deduplication between them (row_id, the 128-bit
  content hash and the collapse of identical rows: one shuffle of every row), issue 4's figure;
- prepare: `sparkprep.pipeline.run` with conf/demo.yaml (oversampling, near-duplicates, robust
  normalisation); time, MB/s, stages that scan the CSV input, shuffle bytes and spill (from
  Spark's event log, by job group), peak RSS of the JVM (VmHWM, reset before the run);
- prepare-counted: prepare again with rebalance.copies: count (each original once, its copies
  counted in `copies`; the loaders expand them), the same figures and the output's size beside
  prepare's (copies as rows), to measure what writing the copies costs;
- pandas: bench/pandas_baseline.py on the same CSV in a subprocess, uncapped and under an
  address-space cap (`--pandas-cap-gb`, RLIMIT_AS as `ulimit -v`).
Every time is also given as a ratio to the floor of the same run. Writes
bench/results/<date>T<HHMM>-suite-<G>gb.json and .png and adds rows to bench/RESULTS.md (first table).

    .venv/etl/bin/python bench/run.py --gb 0.25 [--only floor copies prepare prepare-counted pandas pandas-capped]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import shutil
import string
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from datetime import datetime, timezone
from functools import reduce
from pathlib import Path
from typing import Callable

from prepare_vs_floor import HERE, bench_config, floor, timed
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from results_table import insert_rows

from sparkprep.config import Config, GenerateConfig
from sparkprep.stages.dedup.exact import add_row_id, drop_exact_duplicates
from sparkprep.generate import write_generated
from sparkprep.io.fs import HadoopFS, qualify
from sparkprep.pipeline import run
from sparkprep.io.session import build_session

#: Bytes of generated CSV per row (264.1 MB for 1,000,000 rows, RESULTS.md).
CSV_BYTES_PER_ROW = 264.1
BENCHES = ("floor", "floor-tuned", "copies", "dedup", "prepare", "prepare-counted", "pandas", "pandas-capped")
#: The prepare benches and how each stores oversampled copies (rebalance.copies).
PREPARES = {"prepare": "rows", "prepare-counted": "count"}


def _jvm_pid() -> int | None:
    """The JVM that PySpark launched: a child of this process."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and "java" in (stat.parent / "comm").read_text():
            return int(stat.parent.name)
    return None


class _DiskPeak:
    """The most disk the block added on the filesystem of `where` (sampled every second): the
    output, the run's scratch copies and Spark's shuffle and spill files together."""

    def __init__(self, where: Path) -> None:
        self.where, self.peak, self._done = where, 0, threading.Event()

    def __enter__(self) -> _DiskPeak:
        start = shutil.disk_usage(self.where).used

        def sample() -> None:
            while not self._done.wait(1.0):
                self.peak = max(self.peak, shutil.disk_usage(self.where).used - start)
        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def _reset_peak_rss(pid: int) -> None:
    (Path("/proc") / str(pid) / "clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)


def _peak_rss_mb(pid: int) -> float:
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def event_log_figures(log_dir: Path, rows: int | None = None) -> dict[str, dict]:
    """Per job group: stages run, stages scanning a CSV (the raw input: scratch copies are
    Parquet), shuffle bytes written, memory and disk spill, input bytes read, records written; tasks, their total
    input in records (read from files + fetched from shuffles) and the largest task's input
    (records, and shuffle MB fetched); and the 8 slowest stages by wall time, each named by its
    job's description (prepare's stage, e.g. "sparkprep prepare: split+write") and Spark's call
    site (a sparkprep file and line for collects and counts; a write is only "parquet at
    NativeMethodAccessorImpl.java:0"). Given the input's `rows`, also the full passes over the
    rows: the stages whose tasks read (from files or a shuffle) at least half as many records as
    the input has rows, each named as above with its records, in the order they ran."""
    stage_group: dict[int, str] = {}
    stage_job: dict[int, str | None] = {}
    walls: dict[str, list[tuple[float, str]]] = defaultdict(list)
    names: dict[int, str] = {}
    stage_in: dict[int, int] = defaultdict(int)
    figures: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    # Spark 4 writes a directory of rolled files, events_<n>_<app id>, in order of n.
    logs = sorted(log_dir.rglob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    for path in logs:
        with open(path) as events:
            for line in events:
                event = json.loads(line)
                kind = event["Event"]
                if kind == "SparkListenerJobStart":
                    properties = event.get("Properties") or {}
                    group = properties.get("spark.jobGroup.id", "none")
                    for stage in event["Stage IDs"]:
                        stage_group[stage] = group
                        stage_job[stage] = properties.get("spark.job.description")
                elif kind == "SparkListenerStageCompleted":
                    info = event["Stage Info"]
                    group = figures[stage_group.get(info["Stage ID"], "none")]
                    group["stages"] += 1
                    scopes = " ".join(str(rdd.get("Scope", "")) for rdd in info["RDD Info"])
                    group["csv_scan_stages"] += "Scan csv" in scopes
                    if info.get("Submission Time") and info.get("Completion Time"):
                        seconds = (info["Completion Time"] - info["Submission Time"]) / 1e3
                        job = stage_job.get(info["Stage ID"])
                        name = f"{job} | {info['Stage Name']}" if job else info["Stage Name"]
                        names[info["Stage ID"]] = name
                        walls[stage_group.get(info["Stage ID"], "none")].append((seconds, name))
                elif kind == "SparkListenerTaskEnd" and event.get("Task Metrics"):
                    metrics = event["Task Metrics"]
                    group = figures[stage_group.get(event["Stage ID"], "none")]
                    group["shuffle_write_mb"] += metrics["Shuffle Write Metrics"]["Shuffle Bytes Written"] / 1e6
                    group["spill_memory_mb"] += metrics["Memory Bytes Spilled"] / 1e6
                    group["spill_disk_mb"] += metrics["Disk Bytes Spilled"] / 1e6
                    group["input_read_mb"] += metrics["Input Metrics"]["Bytes Read"] / 1e6
                    group["output_records"] += metrics["Output Metrics"]["Records Written"]
                    # Records, not bytes: Spark 4.2 counts almost no input bytes for local Parquet
                    # (a few KB a task), while records read are exact for files and shuffles alike.
                    shuffle_in = metrics["Shuffle Read Metrics"]
                    task_in = metrics["Input Metrics"]["Records Read"] + shuffle_in["Total Records Read"]
                    shuffle_mb = (shuffle_in["Remote Bytes Read"] + shuffle_in["Local Bytes Read"]) / 1e6
                    group["tasks"] += 1
                    stage_in[event["Stage ID"]] += task_in
                    group["task_in_records"] += task_in
                    group["largest_task_in_records"] = max(group["largest_task_in_records"], task_in)
                    group["largest_task_shuffle_mb"] = max(group["largest_task_shuffle_mb"], shuffle_mb)
    out: dict[str, dict] = {g: {k: round(v, 1) for k, v in f.items()} for g, f in figures.items()}
    for g, stages in walls.items():
        out[g]["slowest_stages"] = [[name, round(seconds, 1)] for seconds, name in sorted(stages, reverse=True)[:8]]
    if rows:
        for stage in sorted(s for s, n in stage_in.items() if 2 * n >= rows):
            out[stage_group.get(stage, "none")].setdefault("full_pass_stages", []).append(
                [names.get(stage, str(stage)), stage_in[stage]])
        for figures_of_group in out.values():
            figures_of_group["full_passes"] = len(figures_of_group.get("full_pass_stages", []))
    return out


def with_copies(ratios: list[float], holdout: float) -> Callable[[DataFrame], DataFrame]:
    """Rows repeated as prepare's oversampling repeats them, without the split: a row of class i
    (label `class_<i>`) outside the holdout gets round(max(ratios) / ratios[i]) - 1 copies. On the
    generator's labels that writes about 7% more rows than prepare, which drops rejected and
    duplicate rows first (9.68M against 9.04M at 1.2 GB)."""
    copies = [round(max(ratios) / r) - 1 for r in ratios]

    def repeat(df: DataFrame) -> DataFrame:
        n = F.get(F.array(*map(F.lit, copies)), F.regexp_extract("label", r"^class_(\d+)$", 1).try_cast("int"))
        held = F.pmod(F.xxhash64("id"), F.lit(1000)) < int(holdout * 1000)
        return df.withColumn("replica", F.explode(F.sequence(F.lit(0), F.when(held, 0).otherwise(F.coalesce(n, F.lit(0))))))
    return repeat


def _replicated(spark: SparkSession, base: GenerateConfig, copies: int, out: Path) -> None:
    """The generated CSV `copies` times: copy i prefixes every id with i (ids are the first field
    and every line of the generator's CSV starts with one; a cut line keeps its id too), so the
    generator's defects repeat in every copy but no row of one copy duplicates another's. Copy i
    also spells its texts (the quoted field) through its own permutation of the letters: a
    bijection keeps every Jaccard similarity inside a copy (its planted near-duplicates stay
    near-duplicates), while texts of two copies share almost no character shingle, so the copies
    add no near-duplicate of each other and near-dup detection sees the input's own rate at any
    size, not clusters of `copies` identical texts."""
    write_generated(spark, base)
    lines = spark.read.text(base.path)
    letters = string.ascii_lowercase
    quoted = r'^([^"]*)"([^"]*)"(.*)$'
    parts = [F.regexp_extract("value", quoted, g) for g in (1, 2, 3)]
    ident = F.regexp_extract("value", r"^(\d+),", 1)
    rest = F.expr(r"substring(value, length(regexp_extract(value, '^(\\d+),', 1)) + 1)")

    def copy(i: int) -> DataFrame:
        # One select per copy with its permutation as a literal: translate builds its table once.
        spelled = F.translate(parts[1], letters, "".join(random.Random(i).sample(letters, len(letters))))
        line = F.when(F.col("value").rlike(quoted), F.concat(parts[0], F.lit('"'), spelled, F.lit('"'), parts[2]))
        spelled_lines = lines.select(line.otherwise(F.col("value")).alias("value"))
        return spelled_lines.select(F.when(ident != "", F.concat(F.lit(str(i)), F.lpad(ident, 12, "0"), rest))
                                    .otherwise(F.col("value")).alias("value"))
    reduce(DataFrame.union, [copy(i) for i in range(1, copies + 1)]).write.text(str(out))


def replicated(spark: SparkSession, base: GenerateConfig, rows: int, copies: int, work: Path) -> None:
    """The generated CSV of about `rows` rows at work/raw: made whole by the generator, or
    (copies > 1) 1/copies of it made and copied as `_replicated` does."""
    if copies > 1:
        _replicated(spark, base.model_copy(update={"rows": rows // copies, "path": str(work / "base")}), copies, work / "raw")
    else:
        write_generated(spark, base)


def _pandas(raw: Path, out: Path, cap_gb: float | None) -> dict:
    cmd = [sys.executable, str(HERE / "pandas_baseline.py"), str(raw), str(out)]
    done = subprocess.run([*cmd, *(["--cap-gb", str(cap_gb)] if cap_gb else [])], capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    lines = done.stdout.strip().splitlines()
    if lines:
        return json.loads(lines[-1])
    # Killed before it could report (the kernel, or a crash inside a C allocation).
    return {"cap_gb": cap_gb, "status": f"exit {done.returncode}: {done.stderr.strip()[-200:]}"}


def _plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in ("prepare", "pandas") if isinstance(result.get(n, {}).get("ratio_to_floor"), float)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(["floor", *names], [1.0, *[result[n]["ratio_to_floor"] for n in names]], color=["grey", "C0", "C1"][: 1 + len(names)])
    ax.axhline(3.0, color="red", linestyle="--", label="goal: 3x floor")
    ax.set_ylabel("time / floor time (same run)")
    ax.set_title(f"{result['input_mb']} MB CSV, {result['rows']:,} rows, driver {result['driver_memory']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _append_table(result: dict) -> None:
    day = result["date"][:10]
    size = (f"{result['rows']:,} rows, {result['input_mb']} MB CSV, {result['master']}, driver {result['driver_memory']}, "
            f"load {result['load_avg_start']:.1f} -> {result['load_avg_end']:.1f}")
    settings = "demo.yaml: oversample, near-dup, robust" + "".join(f", {o}" for o in result["overrides"])
    floor_text = f"floor {result['floor_s']} s" if "floor_s" in result else "floor not run"
    rows = []
    for name, layout in PREPARES.items():
        if name not in result:
            continue
        p = result[name]
        rows.append(f"| {day} | suite: prepare ({settings}, copies as {layout}) vs floor | {size} | {floor_text} | "
                    f"prepare {p['seconds']} s, {p['mb_per_s']} MB/s, {p['csv_scan_stages']} CSV-scan stages, "
                    f"{p.get('full_passes')} full passes over the rows, shuffle {p['shuffle_write_mb']} MB, "
                    f"spill {p['spill_disk_mb']} MB disk, JVM peak RSS {p['jvm_peak_rss_mb']} MB, disk peak {p.get('disk_peak_mb')} MB, "
                    f"{p.get('rows_written', 0) / 1e6:.2f}M rows, {p.get('output_mb')} MB written | **{p.get('ratio_to_floor')}x** floor"
                    + (f"; {p['ratio_to_tuned_floor']}x the tuned floor ({result['floor_tuned_s']} s)" if "ratio_to_tuned_floor" in p else "") + " |")
    if "copies" in result:
        p = result["copies"]
        rows.append(f"| {day} | suite: the floor's read, writing prepare's oversampled rows (no split) vs floor | {size} | "
                    f"{floor_text} | {p['seconds']} s, {p.get('output_records', 0) / 1e6:.2f}M rows written | "
                    f"**{p.get('ratio_to_floor')}x** floor |")
    if "dedup" in result:
        p = result["dedup"]
        rows.append(f"| {day} | suite: exact dedup (read, row_id + 128-bit content hash, collapse, write) vs floor | {size} | "
                    f"{floor_text} | dedup {p['seconds']} s, shuffle {p['shuffle_write_mb']} MB, spill {p['spill_memory_mb']} MB "
                    f"memory / {p['spill_disk_mb']} MB disk | **{p.get('ratio_to_floor')}x** floor |")
    for name in ("pandas", "pandas-capped"):
        if name in result:
            p = result[name]
            ratio = f"**{p['ratio_to_floor']}x** floor" if "ratio_to_floor" in p else "stops"
            cap = f", RLIMIT_AS {p['cap_gb']} GB" if p.get("cap_gb") else ""
            rows.append(f"| {day} | suite: pandas + sklearn + imblearn{cap} vs floor | {size} | {floor_text} | "
                        f"{p.get('seconds')} s, peak RSS {p.get('peak_rss_mb')} MB, {p['status']} | {ratio} |")
    insert_rows(HERE / "RESULTS.md", rows)


def _prepare(spark: SparkSession, config: Config, work: Path, input_bytes: int, name: str) -> dict:
    """One prepare run under the job group `name`: its time, MB/s, peaks, stage times and what it wrote."""
    shutil.rmtree(work / "out", ignore_errors=True)  # an earlier prepare's output would count in the disk peak
    jvm = _jvm_pid()
    if jvm:
        _reset_peak_rss(jvm)
    spark.sparkContext.setJobGroup(name, name)
    box = []
    with _DiskPeak(work) as disk:
        seconds = timed(lambda: box.append(run(spark, config)))
    rows = box[0].manifest["rows"]
    data = qualify(str(work / "out" / "data"))
    return {"seconds": round(seconds, 2), "mb_per_s": round(input_bytes / 1e6 / seconds, 2),
            "jvm_peak_rss_mb": _peak_rss_mb(jvm) if jvm else None, "disk_peak_mb": round(disk.peak / 1e6, 1),
            "rows_written": rows["output"] + (rows["replicas"] if config.rebalance.copies == "rows" else 0),
            "output_mb": round(HadoopFS(spark, data).total_size(data) / 1e6, 1), "stages_s": box[0].manifest["timings_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, required=True, help="size of the generated CSV input")
    parser.add_argument("--only", nargs="+", choices=BENCHES, default=list(BENCHES))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="1g")
    parser.add_argument("--pandas-cap-gb", type=float, default=2.0)
    parser.add_argument("--replicate", type=int, default=1, help="generate 1/N of the rows and write N copies "
                        "whose ids differ (the generator makes ~2-5 MB/s here; copying is ~10x faster)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for prepare, e.g. dedup.near=null (recorded in the JSON)")
    args = parser.parse_args()
    # prepare's own log (stage laps, dedup's repeated keys) goes with the figures.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("sparkprep").setLevel(logging.INFO)
    rows = int(args.gb * 1e9 / CSV_BYTES_PER_ROW)
    work = Path(tempfile.mkdtemp(prefix="sparkprep-suite-"))
    (work / "events").mkdir()
    config = bench_config(work, rows, master=args.master, rebalance="oversample", extra=(
        f"spark.driver_memory={args.driver_memory}", "spark.conf.spark.eventLog.enabled=true",
        f"spark.conf.spark.eventLog.dir=file://{work / 'events'}", "spark.conf.spark.eventLog.compress=false", *args.set))
    result: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "gb": args.gb, "rows": rows,
                    "master": args.master, "driver_memory": args.driver_memory, "overrides": args.set, "load_avg_start": os.getloadavg()[0]}
    spark = build_session(config.spark, "sparkprep-suite")
    sc = spark.sparkContext
    try:
        sc.setJobGroup("generate", "generate")
        replicated(spark, config.generate, rows, args.replicate, work)
        size = HadoopFS(spark, qualify(str(work))).total_size(qualify(str(work / "raw")))
        result["input_mb"] = round(size / 1e6, 1)
        if "floor" in args.only:
            if args.gb < 1:  # a warm-up and the best of two; from 1 GB one run amortises the JIT (and one more after)
                sc.setJobGroup("warm-up", "warm-up")
                timed(lambda: floor(spark, config, work))
            sc.setJobGroup("floor", "floor")
            floor_runs = [timed(lambda: floor(spark, config, work)) for _ in range(2 if args.gb < 1 else 1)]
            shutil.rmtree(work / "floor")  # disk for prepare's scratch at 20 GB
        if "floor-tuned" in args.only:
            sc.setJobGroup("floor-tuned", "floor-tuned")
            result["floor_tuned_s"] = round(timed(lambda: floor(
                spark, config, work, dictionary_page_bytes=config.output.dictionary_page_bytes)), 2)
            shutil.rmtree(work / "floor")
        if "copies" in args.only:
            # What any pipeline writing prepare's output pays at least: the floor's read, and the
            # oversampled rows written (no typing, dedup, split or fold directories).
            sc.setJobGroup("copies", "copies")
            repeat = with_copies(config.generate.class_ratios, config.split.holdout_fraction)
            result["copies"] = {"seconds": round(timed(lambda: floor(spark, config, work, repeat)), 2)}
            shutil.rmtree(work / "floor")
        if "dedup" in args.only:
            sc.setJobGroup("dedup", "dedup")
            result["dedup"] = {"seconds": round(timed(lambda: floor(spark, config, work, drop_exact_duplicates, add_row_id)), 2)}
        for name, layout in PREPARES.items():
            if name in args.only:
                rebalance = config.rebalance.model_copy(update={"copies": layout})
                result[name] = _prepare(spark, config.model_copy(update={"rebalance": rebalance}), work, size, name)
        if "floor" in args.only:
            if args.gb >= 1:
                # This machine's speed moves 10-50% within an hour (a 20 GB floor once took 48% longer than
                # the run before it): where the benches take long, the floor is taken again after them
                # and the faster run kept, so that a slow floor never flatters a ratio.
                shutil.rmtree(work / "out", ignore_errors=True)
                sc.setJobGroup("floor", "floor")
                floor_runs.append(timed(lambda: floor(spark, config, work)))
                shutil.rmtree(work / "floor")
            result["floor_runs"] = len(floor_runs)
            result["floor_runs_s"] = [round(t, 2) for t in floor_runs]
            result["floor_s"] = round(min(floor_runs), 2)
    finally:
        spark.stop()
    try:
        groups = event_log_figures(work / "events", result.get("rows"))
        if "floor" in groups:
            result["floor_metrics"] = {k: round(v / result["floor_runs"], 1) if isinstance(v, float) else v
                                       for k, v in groups["floor"].items()}
        for name in ("copies", "dedup", *PREPARES):
            if name in result:
                result[name].update(groups.get(name, {}))
        for name, cap in (("pandas", None), ("pandas-capped", args.pandas_cap_gb)):
            if name in args.only:
                result[name] = _pandas(work / "raw", work / "pandas-out", cap)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["python_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["load_avg_end"] = os.getloadavg()[0]
    if "floor_s" in result:
        for name in ("copies", "dedup", *PREPARES, "pandas", "pandas-capped"):
            if result.get(name, {}).get("status", "ok") == "ok" and result.get(name, {}).get("seconds"):
                result[name]["ratio_to_floor"] = round(result[name]["seconds"] / result["floor_s"], 2)
    for name in PREPARES:
        if "floor_tuned_s" in result and name in result:
            result[name]["ratio_to_tuned_floor"] = round(result[name]["seconds"] / result["floor_tuned_s"], 2)
    print(json.dumps(result, indent=2))
    # Date and minute (UTC) in the name: two runs of one day keep both files.
    stem = f"{HERE / 'results'}/{result['date'][:16].replace(':', '')}-suite-{args.gb:g}gb{'-custom' if args.set else ''}"
    Path(f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    if "floor_s" in result:
        _plot(result, Path(f"{stem}.png"))
    _append_table(result)


if __name__ == "__main__":
    main()
