"""`prepare`: ingest → clean → dedup → split → write → measure → manifest, composed from stages.

Passes over the input: ONE. The cleaned input is materialised once as Parquet in a scratch
directory beside the output, with each row's identity (row_id) and feature hashes; rejection
counts, the quarantine, deduplication and the split read that copy (column pruning makes the
counts nearly free). Rows without a duplicate are read from it as they are; only the rows that
may have one are collapsed and materialised (exact.deduplicate). Parquet on disk rather than
`persist()`: on this stack Spark's in-memory columnar cache cost 4x a Parquet write of the same
rows, and a disk copy scales past memory by construction. Statistics, per-fold counts and the
output row count are then measured on the written data, independently of the code path that
produced it, and the row accounting law is checked before the manifest exists. The transforms of
every fold come from the same aggregation (normalise/fit.py; categorical columns add one more), are
checked against the data by publish/verify.py and written to transform-<run_id>.json before the manifest.

With a `validation:` section the typed input is profiled and validated first; a blocking anomaly
(stop_on: error) stops the run before any data is written, and only a blocked manifest.json and
report.html are left, under `<out>/_blocked/<run_id>/` (io/write.py), beside the dataset in force.
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import CapturedException
from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from sparkprep.contract import (
    CONFLICT, DUP_CLUSTER, FOLD, HOLDOUT_FOLD, MANIFEST, MESSAGE, POSITION, RARE_LABEL, RAW, REASON,
    REASON_COLUMN, REPORT, RESERVED_COLUMNS, ROW_ID, SOURCE_FILE, STATS, UNREADABLE_FILE)
from sparkprep.stages.clean import accepted, mark_rejections, quarantine_rows, rules_from_schema
from sparkprep.config import ColumnRule, Config, InputConfig, OutputConfig
from sparkprep.stages.dedup.exact import ABSORBED, FEATURE_HASH, add_feature_hash, add_row_id, collapse, conflicting_groups, deduplicate, mark_label_conflicts
from sparkprep.stages.groups import add_groups
from sparkprep.errors import ContractError, InputError, SparkprepError
from sparkprep.io.read import check_columns, csv_options, input_version, raw_record, read_input, spark_error_summary, unread_files
from sparkprep.io.csv_files import likely_cause
from sparkprep.io.fs import HadoopFS, qualify, read_local
from sparkprep.publish.manifest import RowCounts, build_blocked_manifest, build_manifest
from sparkprep.stages.dedup.near import add_dup_clusters
from sparkprep.stages.normalise.fit import (FitSpec, apply_spark, array_widths, count_categories, fit_transforms,
                                 measure_groups)
from sparkprep.quality.gate import Blocked, gate, record
from sparkprep.quality.schema_rules import load_schema
from sparkprep.stages.rebalance import rebalance
from sparkprep.publish.report import render_blocked_report, render_report
from sparkprep.stages.split import (FOLD_RANK, SplitPlan, add_label_index, assign_folds,
                             assign_group_folds, holdout_by_column)
from sparkprep.transform import transform_document
from sparkprep.publish.verify import verify_dataset
from sparkprep.io.write import OutputTarget, abandon, blocked_dir, failed_dir, overwriting, prepare_target, publish, read_table, refuse_overlap, scratch_dir, write_table

log = logging.getLogger(__name__)

NORMALISED = "normalised"  # the optional Spark-transformed copy (normalise.materialise)
_JOB_DESCRIPTION = "spark.job.description"
#: Up to this many conflicting feature groups (about 60 bytes each) are broadcast to the rows.
_BROADCAST_CONFLICT_GROUPS = 500_000


class _Clock:
    """Wall time per stage, for the log, the manifest and the summary. Each stage's Spark jobs
    carry its name as their description, so Spark's UI and event log say which stage a job (a
    write, say, which Spark names only "parquet at NativeMethodAccessorImpl.java:0") belongs to."""

    def __init__(self, spark: SparkSession, first: str) -> None:
        self.sc = spark.sparkContext
        self.caller_description = self.sc.getLocalProperty(_JOB_DESCRIPTION)
        self.start = self.last = time.monotonic()
        self.stages: dict[str, float] = {}
        self.sc.setJobDescription(f"sparkprep prepare: {first}")

    def lap(self, stage: str, following: str) -> None:
        now = time.monotonic()
        self.stages[stage] = round(now - self.last, 3)
        self.last = now
        log.info("%s done in %.1fs", stage, self.stages[stage])
        self.sc.setJobDescription(f"sparkprep prepare: {following}")

    def close(self) -> None:
        """The caller's own job description back (none: the property is removed)."""
        self.sc.setLocalProperty(_JOB_DESCRIPTION, self.caller_description)  # type: ignore[arg-type]

    def timings(self) -> dict[str, float]:
        return {**self.stages, "total": round(time.monotonic() - self.start, 3)}


@dataclass(frozen=True)
class RunResult:
    out: str
    manifest: dict[str, Any]


def _materialise(df: DataFrame, uri: str, paths: list[str], dictionary_page_bytes: int) -> DataFrame:
    """Write `df` to scratch Parquet and read it back. The first write is the first action on the
    input: unreadable files surface here, so name them."""
    try:
        overwriting(df, dictionary_page_bytes).parquet(uri)
    except (CapturedException, Py4JJavaError) as exc:
        raise InputError(f"cannot read input {paths}: {spark_error_summary(exc)}; to skip files that cannot "
                         f"be read at all (and list them in quarantine/), set input.on_unreadable_file: quarantine") from None
    return df.sparkSession.read.parquet(uri)


def _clean_rules(config: Config) -> dict[str, ColumnRule]:
    """Rules derived from the schema file (if any), overridden column by column by `clean.rules`."""
    source = config.clean.rules_from_schema
    derived = rules_from_schema(load_schema(read_local(source, "schema"), source)) if source else {}
    return {**derived, **config.clean.rules}


def _unreadable_rows(spark: SparkSession, files: list[str]) -> DataFrame:
    """Quarantine entries for whole input files that could not be read (no rows, no raw line)."""
    message = "the file could not be read and gave no rows; skipped (input.on_unreadable_file=quarantine)"
    return spark.createDataFrame([(UNREADABLE_FILE, None, message, f, None) for f in files],
                                 "reason string, column string, message string, source_file string, raw string")


def _likely_cause(spark: SparkSession, uri: str, input_cfg: InputConfig) -> str | None:
    """A guess at why a file's records fail (io/csv_files.likely_cause); CSV only."""
    if input_cfg.format != "csv":
        return None
    return likely_cause(spark, uri, csv_options(input_cfg))


def _warn_failing_files(spark: SparkSession, by_file: list[Row], input_cfg: InputConfig) -> None:
    """Log the files that lost more than half their records, with the likely cause."""
    totals: dict[str, list[int]] = {}
    for r in by_file:
        seen = totals.setdefault(r[SOURCE_FILE], [0, 0])
        seen[0] += r["n"]
        seen[1] += r["n"] if r[REASON] else 0
    for uri, (n, rejected) in sorted(totals.items()):
        if rejected * 2 > n:
            cause = _likely_cause(spark, uri, input_cfg)
            log.warning("%s: %d of %d records rejected%s", uri, rejected, n, f"; likely cause: {cause}" if cause else "")


def _nothing_left(stage: str, counts: str, quarantine: DataFrame, fs: HadoopFS, target: OutputTarget,
                  run_id: str, out_cfg: OutputConfig, input_cfg: InputConfig) -> InputError:
    """The error for a run that has no row left after `stage`: the counts, the most common
    reasons with an example raw record each, and the quarantine kept where the user can read it
    (`<out>.failed-<run_id>/quarantine`; the dataset in force is not touched)."""
    top = (quarantine.groupBy("reason", "column")
           .agg(F.count(F.lit(1)).alias("n"), F.min_by(F.struct("source_file", "record", "raw"), "raw").alias("example"))
           .orderBy(F.desc("n")).limit(3).collect())
    kept = f"{failed_dir(target, run_id)}/quarantine"
    write_table(quarantine, kept, "parquet", [], out_cfg.max_rows_per_file, out_cfg.dictionary_page_bytes)
    reasons = ""
    for r in top:
        column = f" ({r['column']})" if r["column"] else ""
        at = r["example"] and r["example"]["record"]
        example = (f", e.g. {r['example']['source_file']}{f' record {at}' if at else ''}: "
                   f"{(r['example']['raw'] or '')[:200]!r}" if r["example"] else "")
        reasons += f"\n  {r['n']} x {r['reason']}{column}{example}"
    example = top[0]["example"] if top else None
    cause = _likely_cause(quarantine.sparkSession, example["source_file"], input_cfg) if example and example["source_file"] else None
    return InputError(f"no rows left after {stage}: {counts}; nothing was published"
                      f"{f' (the dataset at {target.final} is unchanged)' if fs.exists(target.final) else ''}."
                      f"\nMost common reasons:{reasons}{f'{chr(10)}Likely cause: {cause}' if cause else ''}"
                      f"\nEvery rejected row, with its raw record: {kept} "
                      f"(remove it when done)")


def _output_columns(df: DataFrame) -> list[str]:
    data = [c for c in df.columns if c not in RESERVED_COLUMNS and not c.startswith("_sp_")]
    return [*RESERVED_COLUMNS, *data]


@dataclass(frozen=True)
class _Deduplicated:
    rows: DataFrame
    #: Rows that a label-conflict policy rejects, in the quarantine schema.
    rejected: DataFrame
    #: Input rows absorbed by each step (exact, key, near) and the conflicting rows found.
    counts: dict[str, int]
    #: Rows kept per (class, held out by a column rule).
    remaining: dict[tuple[str, bool], int]

    def cross_validation_rows(self, holdout_fraction: float) -> dict[str, int]:
        """Per class, the rows left for cross-validation: not held out by a column rule, less the
        holdout fraction's share (as the row split takes it)."""
        rows: dict[str, int] = {}
        for (c, held), n in self.remaining.items():
            rows[c] = rows.get(c, 0) + (0 if held else n)
        return {c: n - int(math.floor(holdout_fraction * n + 0.5)) for c, n in rows.items()}


def _rare_classes(deduped: _Deduplicated, config: Config) -> _Deduplicated:
    """A class with fewer cross-validation rows than columns.min_class_rows (default k) cannot be
    stratified: some folds get none of it. Usually it is no class at all (a typo, a stray value, a
    shifted column), so by default the run stops here, before anything is written; with
    columns.rare_classes: quarantine its rows are rejected as rare_label."""
    assert config.columns is not None
    cols, k = config.columns, config.split.k
    minimum = cols.min_class_rows or k
    rare = {c: n for c, n in sorted(deduped.cross_validation_rows(config.split.holdout_fraction).items()) if n < minimum}
    if not rare:
        return deduped
    listed = ", ".join(f"{c!r}: {n}" for c, n in rare.items())
    if cols.rare_classes == "stop":
        raise InputError(
            f"label column {cols.label}: {len(rare)} class(es) with fewer than {minimum} rows for cross-validation "
            f"(after dedup and the holdout; k={k}): {listed}. Nothing was written.\nWays out: list the expected "
            f"labels in columns.classes (any other value is quarantined as unknown_label); or set "
            f"columns.rare_classes: quarantine to quarantine rare classes as rare_label (columns.min_class_rows "
            f"sets the threshold); or lower split.k.")
    log.warning("quarantining rare classes (columns.rare_classes=quarantine): %s", listed)
    label = F.col(cols.label).cast("string")
    is_rare = label.isin(list(rare))
    counts = F.create_map(*[F.lit(x) for c, n in rare.items() for x in (c, n)])
    data = [c for c in deduped.rows.columns if not c.startswith("_sp_") and c not in RESERVED_COLUMNS]
    rejected = deduped.rows.where(is_rare).select(
        F.lit(RARE_LABEL).alias("reason"), F.lit(cols.label).alias("column"),
        F.format_string(f"label %s has %d rows for cross-validation, fewer than {minimum} (columns.min_class_rows)",
                        label, counts[label]).alias("message"),
        F.col(SOURCE_FILE).alias("source_file"), F.to_json(F.struct(*data)).alias("raw"))
    remaining = {key: n for key, n in deduped.remaining.items() if key[0] not in rare}
    return _Deduplicated(deduped.rows.where(~is_rare), deduped.rejected.unionByName(rejected), deduped.counts, remaining)


def _held_out(config: Config) -> Column:
    """Rows that a column rule puts in the holdout (none with the fraction rule)."""
    split = config.split
    return (holdout_by_column(split.holdout_column, split.holdout_values, split.holdout_from)
            if split.holdout_column else F.lit(False))


def _deduplicate(rows: DataFrame, config: Config, scratch: str, paths: list[str]) -> _Deduplicated:
    """Exact and by key (only rows whose key repeats are shuffled: exact.deduplicate) → label
    conflicts (groups broadcast when few) → near duplicates. Counters carried by each row (see
    stages/dedup/exact.py) give every count in one aggregation."""
    dedup, label = config.dedup, config.columns.label  # type: ignore[union-attr]

    def materialise(df: DataFrame, name: str) -> DataFrame:
        return _materialise(df, f"{scratch}/dedup/{name}", paths, config.output.dictionary_page_bytes)  # type: ignore[union-attr]
    rows = deduplicate(rows, dedup.exact, dedup.key, dedup.keep, dedup.order_by, materialise)
    groups = materialise(conflicting_groups(rows, label), "conflicts")
    # Few conflicting groups (the usual case) are broadcast, so marking the rows shuffles nothing.
    small = groups.count() <= _BROADCAST_CONFLICT_GROUPS
    rows = mark_label_conflicts(rows, label, dedup.conflicts, groups=F.broadcast(groups) if small else groups)
    kept = rows.where(F.col(REASON).isNull())
    if dedup.near:
        kept = add_dup_clusters(kept, dedup.near, lambda df, name: materialise(df, f"near/{name}"))
        if dedup.near.keep == "representative":
            kept = collapse(kept, [DUP_CLUSTER], F.col(ROW_ID), "near", largest=False)
        kept = materialise(kept, "unique")
    # Counted per (class, held out by a column rule): the rows each class keeps, for the rare-class check.
    cls, held = F.col(label).cast("string").alias("_sp_class"), _held_out(config).alias("_sp_held")
    found = rows.groupBy(cls, held, F.col(REASON).isNull().alias("_sp_kept")).agg(
        *[F.sum(c).alias(k) for k, c in ABSORBED.items() if k != "near"],
        F.count_if(CONFLICT).alias("conflicting_rows"), F.count(F.lit(1)).alias("_sp_n")).collect()
    sums = {k: sum(r[k] or 0 for r in found) for k in [*ABSORBED, "conflicting_rows"] if k != "near"}
    remaining = {(r["_sp_class"], r["_sp_held"]): r["_sp_n"] for r in found if r["_sp_kept"]}
    if dedup.near:
        found = kept.groupBy(cls, held).agg(F.sum(ABSORBED["near"]).alias("near"), F.count(F.lit(1)).alias("_sp_n")).collect()
        sums["near"] = sum(r["near"] or 0 for r in found)
        remaining = {(r["_sp_class"], r["_sp_held"]): r["_sp_n"] for r in found}
    else:
        sums["near"] = 0
    rejected = rows.where(F.col(REASON).isNotNull()).select(
        F.col(REASON).alias("reason"), F.col(REASON_COLUMN).alias("column"), F.col(MESSAGE).alias("message"),
        F.col(SOURCE_FILE).alias("source_file"), F.col(RAW).alias("raw"))
    return _Deduplicated(kept.drop(REASON, REASON_COLUMN, MESSAGE, RAW), rejected,
                         {k: int(v or 0) for k, v in sums.items()}, remaining)


def _group_keys(config: Config, counts: dict[str, int]) -> list[Column]:
    """What must stay in one fold: the group column, near-duplicate clusters kept whole, and rows
    whose features conflict in their label (when they are all kept)."""
    keys = [F.col(config.split.group_column)] if config.split.group_column else []
    if config.dedup.near and config.dedup.near.keep == "all":
        keys.append(F.col(DUP_CLUSTER))
    if config.dedup.conflicts == "keep_all" and counts.get("conflicting_rows"):
        keys.append(F.when(F.col(CONFLICT), F.col(FEATURE_HASH)))
    return keys


def _split(deduped: _Deduplicated, config: Config, scratch: str, paths: list[str]) -> tuple[DataFrame, SplitPlan, list[str], int]:
    """Folds (holdout by per-class fraction or by a column rule), label_index; also the plan, the
    classes in label_index order and the number of deduplicated rows. Whole groups per fold when
    anything groups rows (see `_group_keys`), else the exact row split."""
    split, label, configured = config.split, config.columns.label, config.columns.classes  # type: ignore[union-attr]
    held_out = _held_out(config)
    keys = _group_keys(config, deduped.counts)
    if keys:
        def materialise(df: DataFrame, name: str) -> DataFrame:
            return _materialise(df, f"{scratch}/groups/{name}", paths, config.output.dictionary_page_bytes)  # type: ignore[union-attr]
        grouped = materialise(add_groups(deduped.rows, keys, materialise), "grouped")
        folded, plan = assign_group_folds(grouped, label, split.k, split.holdout_fraction, split.seed,
                                          held_out, materialise)
        found, n_kept = set(plan.class_counts), sum(plan.class_counts.values())
    else:
        cross_validated = deduped.rows.where(~held_out)
        plan = SplitPlan.measure(cross_validated, label, split.k, split.holdout_fraction, split.seed)
        folded, found, n_kept = assign_folds(cross_validated, label, plan), set(plan.class_counts), sum(plan.class_counts.values())
        if split.holdout_column:
            holdout = deduped.rows.where(held_out).withColumns({FOLD: F.lit(HOLDOUT_FOLD), FOLD_RANK: F.lit(None).cast("long")})
            held = {r["c"]: int(r["count"]) for r in holdout.groupBy(F.col(label).cast("string").alias("c")).count().collect()}
            folded, found, n_kept = folded.unionByName(holdout), found | set(held), n_kept + sum(held.values())
    for warning in plan.warnings():
        log.warning(warning)
    classes = list(configured) if configured else sorted(found)
    return add_label_index(folded, label, classes), plan, classes, n_kept


def _record_blocked(fs: HadoopFS, config: Config, target: OutputTarget, stop: Blocked, *, run_id: str,
                    created_at: str, inputs: list[dict[str, Any]], timings: dict[str, float]) -> str:
    """Leave why the gate stopped the run where a user looks, without touching the dataset in
    force; returns the directory (blocked manifest.json, report.html, stats.json)."""
    assert config.output is not None
    where = blocked_dir(target, run_id)
    current = f"{target.final}/{MANIFEST}"
    previous = json.loads(fs.read_text(current)).get("run_id") if fs.exists(current) else None
    manifest = build_blocked_manifest(
        config=config, run_id=run_id, created_at=created_at, inputs=inputs,
        output={"format": config.output.format, "path": target.final, "published": False},
        message=str(stop), previous_run_id=previous, stats=stop.checked.summary(), timings=timings)
    fs.write_text(f"{where}/{STATS}", record(stop.checked, manifest) or "")
    fs.write_text(f"{where}/{REPORT}", render_blocked_report(manifest, stop.checked.for_report()))
    fs.write_text(f"{where}/{MANIFEST}", json.dumps(manifest, indent=2))
    log.error("run %s blocked by validation; nothing published; report at %s/%s", run_id, where, REPORT)
    return where


def scale_shuffle_partitions(spark: SparkSession, raw: DataFrame, config: Config) -> None:
    """spark.sql.shuffle.partitions = max(spark.shuffle_partitions, input bytes /
    spark.shuffle_partition_bytes), the input's size as Spark's plan states it (the files' total)."""
    per = config.spark.shuffle_partition_bytes
    if per is None or "spark.sql.shuffle.partitions" in config.spark.conf:
        return
    size = int(str(raw._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))  # a BigInt
    width = max(config.spark.shuffle_partitions, -(-size // per))
    if width != int(spark.conf.get("spark.sql.shuffle.partitions")):
        log.info("shuffle partitions: %d (input %.0f MB / %d MB per partition)", width, size / 1e6, per >> 20)
        spark.conf.set("spark.sql.shuffle.partitions", str(width))


def run(spark: SparkSession, config: Config) -> RunResult:
    """Run `prepare` end to end; returns the published output URI and its manifest."""
    config.require("input", "columns", "output")
    clock = _Clock(spark, "ingest+clean")
    try:
        return _run(spark, config, clock)
    finally:
        clock.close()


def _run(spark: SparkSession, config: Config, clock: _Clock) -> RunResult:
    assert config.input and config.columns and config.output
    created = datetime.now(timezone.utc)
    run_id = f"{created:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    cols, out_cfg = config.columns, config.output
    paths = [qualify(p) for p in config.input.paths]
    input_cfg = config.input.model_copy(update={"paths": paths})
    fs = HadoopFS(spark, qualify(out_cfg.path))
    refuse_overlap(fs, paths, qualify(out_cfg.path))
    target = prepare_target(fs, qualify(out_cfg.path), out_cfg.format, run_id)

    in_version = input_version(spark, input_cfg)
    inputs = [{"path": p, "format": input_cfg.format, "delta_version": in_version} for p in paths]
    raw = check_columns(read_input(spark, input_cfg, in_version), cols, source=", ".join(paths))
    scale_shuffle_partitions(spark, raw, config)
    scratch = scratch_dir(target, run_id)
    try:
        # Row identity and feature hashes are computed here, once, so that dedup and the split
        # read them from the scratch copy (a few columns) instead of hashing every column again.
        features = [*cols.numeric, *cols.categorical, *cols.array, *cols.text]
        identified = add_feature_hash(add_row_id(mark_rejections(raw, input_cfg.schema_, cols.label, cols.classes,
                                                                 _clean_rules(config), config.clean.non_finite,
                                                                 raw_record(raw, input_cfg))),
                                      cols.label, features)
        marked = _materialise(identified, f"{scratch}/marked", paths, out_cfg.dictionary_page_bytes)
        # Profile the typed scratch copy (rejected rows included), not the raw input again.
        checked = gate(marked.drop(ROW_ID), config)
        # Per reason and file: the counts, and each file's first position (quarantine_rows' record numbers).
        by_file = marked.groupBy(REASON, SOURCE_FILE).agg(F.count(F.lit(1)).alias("n"), F.min(POSITION).alias("p")).collect()
        by_reason: dict[str | None, int] = {}
        starts: dict[str, int] = {}
        for r in by_file:
            by_reason[r[REASON]] = by_reason.get(r[REASON], 0) + r["n"]
            if r["p"] is not None:
                starts[r[SOURCE_FILE]] = min(r["p"], starts.get(r[SOURCE_FILE], r["p"]))
        first_positions = spark.createDataFrame(list(starts.items()), f"{SOURCE_FILE} string, _sp_first long")
        n_input = sum(by_reason.values())
        if n_input == 0:
            raise InputError(f"no rows in input {paths}: nothing to prepare")
        log.info("read %d rows, rejected %d while cleaning", n_input, n_input - by_reason.get(None, 0))
        _warn_failing_files(spark, by_file, input_cfg)
        if not by_reason.get(None):
            raise _nothing_left("ingest+clean", f"{n_input} rows read, all rejected", quarantine_rows(marked, first_positions),
                                fs, target, run_id, out_cfg, input_cfg)
        unreadable = unread_files(raw, marked) if input_cfg.on_unreadable_file == "quarantine" else []
        for uri in unreadable:
            log.warning("skipped unreadable input file %s (input.on_unreadable_file=quarantine)", uri)
        clock.lap("ingest+clean", "dedup")

        deduped = _rare_classes(_deduplicate(accepted(marked, keep_source=True), config, scratch, paths), config)
        quarantine = quarantine_rows(marked, first_positions).unionByName(deduped.rejected, allowMissingColumns=True)
        by_column = {(r["reason"], r["column"]): int(r["count"])
                     for r in quarantine.groupBy("reason", "column").count().collect()}
        rejections = {reason: sum(n for (r, _), n in by_column.items() if r == reason)
                      for reason in sorted({r for r, _ in by_column})}
        log.info("duplicates %s, rejected %d %s", deduped.counts, sum(rejections.values()), rejections)
        n_duplicates = sum(deduped.counts[k] for k in ABSORBED)
        if not sum(deduped.remaining.values()):
            raise _nothing_left("dedup", f"{n_input} rows read, {sum(rejections.values())} rejected, "
                                f"{n_duplicates} duplicates", quarantine, fs, target, run_id, out_cfg, input_cfg)
        clock.lap("dedup", "quarantine")
        q_version = write_table(quarantine.unionByName(_unreadable_rows(spark, unreadable), allowMissingColumns=True), target.quarantine,
                                out_cfg.format, [], out_cfg.max_rows_per_file, out_cfg.dictionary_page_bytes)
        clock.lap("quarantine", "split+write")
        folded, plan, classes, n_kept = _split(deduped, config, scratch, paths)
        if n_kept != n_input - sum(rejections.values()) - n_duplicates:
            raise ContractError(f"row accounting broken before writing: {n_input} input - {sum(rejections.values())} "
                                f"rejected - {n_duplicates} duplicates != {n_kept} rows to split")
        final = rebalance(folded, cols.label, plan, config.rebalance.method, config.rebalance.target)
        # Within each file, rows in hash order rather than the split's (class, bucket) order, so a
        # reader's row group is a fair mix of classes even before it shuffles.
        mixed = final.select(_output_columns(final)).sortWithinPartitions(
            FOLD, F.xxhash64(ROW_ID, F.lit(config.split.seed), F.lit("file-order")))
        version = write_table(mixed, target.data, out_cfg.format, [FOLD], out_cfg.max_rows_per_file,
                              out_cfg.dictionary_page_bytes)
        clock.lap("split+write", "measure")
    except Blocked as stop:
        abandon(fs, target)
        where = _record_blocked(fs, config, target, stop, run_id=run_id, created_at=created.isoformat(timespec="seconds"),
                                inputs=inputs, timings=clock.timings())
        raise SparkprepError(f"{stop}\nwhy, with plots: {where}/{REPORT} (blocked manifest: {where}/{MANIFEST}); "
                             f"the dataset at {target.final}, if any, is unchanged") from None
    except Exception:
        abandon(fs, target)
        raise
    finally:
        fs.delete(scratch)

    written = read_table(spark, target.data, out_cfg.format, version)
    spec = FitSpec.of(config.normalise, cols, array_widths(written, cols.array))
    groups = measure_groups(written, cols.numeric, spec)
    transforms = fit_transforms(spark, groups, count_categories(written, cols.categorical), spec, plan.k)
    clock.lap("measure", "verify+publish")
    by_fold = {str(f): sum(n for (fo, _), n in groups.rows.items() if fo == f) for f in [HOLDOUT_FOLD, *range(plan.k)]}
    counts = RowCounts(input=n_input, rejected=sum(rejections.values()), duplicates=n_duplicates,
                       output=sum(groups.rows.values()), replicas=sum(groups.copies.values()), by_fold=by_fold,
                       undersampled=sum(groups.undersampled.values()))
    try:
        manifest = build_manifest(
            config=config, run_id=run_id, created_at=created.isoformat(timespec="seconds"),
            classes=classes, groups=groups, rows=counts, rejections=rejections,
            rejections_by_column=by_column, dedup_counts=deduped.counts,
            split_method=plan.method(),
            inputs=inputs,
            output={"format": out_cfg.format, "data_path": "data", "partition_by": [FOLD],
                    "delta_version": version},
            schema=[{"name": f.name, "type": f.dataType.simpleString()} for f in written.schema.fields],
            quarantine={"path": "quarantine", "rows": counts.rejected + len(unreadable), "delta_version": q_version,
                        "unreadable_files": unreadable},
            warnings=plan.warnings(), timings=clock.timings())
        transform = transform_document(*transforms)
        verdict = verify_dataset(manifest, written, transform,
                                 read_table(spark, target.quarantine, out_cfg.format, q_version))
        if not verdict.ok:
            raise ContractError("the dataset failed verification; nothing was published:\n  "
                                + "\n  ".join(verdict.violations))
        manifest["verified"] = verdict.checks
        fs.write_text(target.file(manifest["normalisation"]["transform"]["path"]), json.dumps(transform, indent=1))
        if config.normalise.materialise:
            manifest["normalisation"]["transform"]["materialised"] = {
                "path": NORMALISED, "with": "final", "delta_version": write_table(
                    apply_spark(written, transforms[0]), target.file(NORMALISED), out_cfg.format, [FOLD],
                    out_cfg.max_rows_per_file, out_cfg.dictionary_page_bytes)}
        stats_text = record(checked, manifest)
        if stats_text:
            fs.write_text(target.file(STATS), stats_text)
        fs.write_text(target.file(REPORT), render_report(manifest, checked.for_report() if checked else None))
        fs.write_text(target.file(MANIFEST), json.dumps(manifest, indent=2, sort_keys=False))
        publish(fs, target, run_id)
    except Exception:
        abandon(fs, target)
        raise
    log.info("published %s (%d rows, %.1fs)", target.final, counts.output, time.monotonic() - clock.start)
    return RunResult(target.final, manifest)
