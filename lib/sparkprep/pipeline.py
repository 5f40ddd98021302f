"""`prepare`: ingest → clean → dedup → split → write → measure → manifest, composed from stages.

This module only sequences: each stage lives in its own room (io/, quality/, stages/, publish/), takes
its rows, the config and the run's scratch `Context`, and returns its rows and counts.

Passes over the input: ONE. The cleaned input is materialised once as Parquet in a scratch
directory beside the output, with each row's identity (row_id) and feature hashes; rejection
counts, the quarantine, deduplication and the split read that copy (column pruning makes the
counts nearly free). Rows without a duplicate are read from it as they are; only the rows that
may have one are collapsed and materialised (stages/dedup/exact.py). Parquet on disk rather than
`persist()`: on this stack Spark's in-memory columnar cache cost 4x a Parquet write of the same
rows, and a disk copy scales past memory by construction. Statistics, per-fold counts and the
output row count are then measured on the written data, independently of the code path that
produced it, and the row accounting law is checked before the manifest exists. The transforms of
every fold come from the same aggregation (stages/normalise/fit.py; categorical columns add one more), are
checked against the data by publish/verify.py and written to transform-<run_id>.json before the manifest.

With a `validation:` section the typed input is profiled and validated first; a blocking anomaly
(stop_on: error) stops the run before any data is written, and only a blocked manifest.json and
report.html are left, under `<out>/_blocked/<run_id>/` (io/write.py), beside the dataset in force.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkprep.config import Config, InputConfig
from sparkprep.contract import DATA_DIR, FOLD, HOLDOUT_FOLD, MANIFEST, QUARANTINE_DIR, REASON, REPLICA, REPORT, ROW_ID
from sparkprep.errors import ContractError, InputError, SparkprepError
from sparkprep.io.fs import HadoopFS, qualify
from sparkprep.io.read import check_columns, input_version, raw_record, read_input, unread_files
from sparkprep.io.session import plan_bytes, scale_shuffle_partitions
from sparkprep.io.write import (OutputTarget, abandon, output_order, prepare_target, read_table, refuse_overlap,
                                scratch_dir, write_table)
from sparkprep.publish.dataset import publish_dataset, record_blocked
from sparkprep.publish.manifest import RowCounts, build_manifest
from sparkprep.publish.report_data import REJECTED, SAMPLED_FOLD, build_report_data
from sparkprep.quality.gate import Blocked, Checked, gate
from sparkprep.quality.sample import Roles, Sample, sample_rows, sampling_rate
from sparkprep.stages import clean, quarantine, split
from sparkprep.stages.context import Context
from sparkprep.stages.dedup import stage as dedup
from sparkprep.stages.dedup.conflicts import add_feature_hash
from sparkprep.stages.dedup.exact import add_row_id
from sparkprep.stages.normalise import fit as normalise
from sparkprep.stages.rebalance import rebalance

log = logging.getLogger(__name__)

_JOB_DESCRIPTION = "spark.job.description"


class _Clock:
    """Wall time per stage, for the log, the manifest and the summary. Each stage's Spark jobs
    carry its name as their description, so Spark's UI and event log say which stage a job (a
    write, say, which Spark names only "parquet at NativeMethodAccessorImpl.java:0") belongs to."""

    def __init__(self, spark: SparkSession, first: str) -> None:
        self.sc = spark.sparkContext
        self.caller_description = self.sc.getLocalProperty(_JOB_DESCRIPTION)
        self.start = self.last = time.monotonic()
        self.stages: dict[str, float] = {}
        self._begin(first)

    def _begin(self, stage: str) -> None:
        log.info("%s ...", stage)
        self.sc.setJobDescription(f"sparkprep prepare: {stage}")

    def lap(self, stage: str, following: str, rows: str = "") -> None:
        """End `stage` (a line with its rows in and out, where known, and seconds), start `following`."""
        now = time.monotonic()
        self.stages[stage] = round(now - self.last, 3)
        self.last = now
        log.info("%s done in %.1fs%s", stage, self.stages[stage], f": {rows}" if rows else "")
        self._begin(following)

    def close(self) -> None:
        """The caller's own job description back (none: the property is removed)."""
        self.sc.setLocalProperty(_JOB_DESCRIPTION, self.caller_description)  # type: ignore[arg-type]

    def timings(self) -> dict[str, float]:
        return {**self.stages, "total": round(time.monotonic() - self.start, 3)}


@dataclass(frozen=True)
class RunResult:
    out: str
    manifest: dict[str, Any]


@dataclass(frozen=True)
class _Run:
    """One run's identity and places: its id, when it started, its input (paths qualified) and
    the manifest's record of it, and the output it writes."""

    id: str
    created_at: str
    input: InputConfig
    inputs: list[dict[str, Any]]
    fs: HadoopFS
    target: OutputTarget


@dataclass(frozen=True)
class _Written:
    """What the stages before the measure leave: the counts the manifest records and the versions written."""

    n_input: int
    rejections: dict[str, int]
    by_column: dict[tuple[str, str | None], int]
    deduped: dedup.Deduplicated
    folded: split.Folded
    unreadable: dict[str, int]  # skipped input file -> its bytes
    checked: Checked | None
    version: int | None
    quarantine_version: int | None
    as_read: Sample  # sampled as the typed input was written (quality/sample.py)
    output: Sample  # sampled as the output was written (originals)
    near_duplicates: dict[str, Any] | None  # what near-dup found, if it ran


def run(spark: SparkSession, config: Config) -> RunResult:
    """Run `prepare` end to end; returns the published output URI and its manifest.

    Args:
        spark: the session.
        config: the run's config (input, columns and output required).
    """
    config.require("input", "columns", "output")
    clock = _Clock(spark, "ingest+clean")
    try:
        return _run(spark, config, clock)
    finally:
        clock.close()


def _run(spark: SparkSession, config: Config, clock: _Clock) -> RunResult:
    run, raw = _open(spark, config)
    ctx = Context(scratch_dir(run.target, run.id), run.input.paths, config.output.dictionary_page_bytes)  # type: ignore[union-attr]
    try:
        written = _write(spark, config, run, raw, ctx, clock)
    except Blocked as stop:
        abandon(run.fs, run.target)
        where = record_blocked(run.fs, config, run.target, stop, run_id=run.id, created_at=run.created_at,
                               inputs=run.inputs, timings=clock.timings())
        raise SparkprepError(f"{stop}\nwhy, with plots: {where}/{REPORT} (blocked manifest: {where}/{MANIFEST}); "
                             f"the dataset at {run.target.final}, if any, is unchanged") from None
    except Exception:
        abandon(run.fs, run.target)
        raise
    finally:
        run.fs.delete(ctx.scratch)
    return _measure_and_publish(spark, config, run, written, clock)


def _open(spark: SparkSession, config: Config) -> tuple[_Run, DataFrame]:
    """The run's id, its output target (refusing one that overlaps the input) and its input, read."""
    assert config.input and config.columns and config.output
    created = datetime.now(timezone.utc)
    run_id = f"{created:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    paths = [qualify(p) for p in config.input.paths]
    input_cfg = config.input.model_copy(update={"paths": paths})
    fs = HadoopFS(spark, qualify(config.output.path))
    refuse_overlap(fs, paths, qualify(config.output.path))
    target = prepare_target(fs, qualify(config.output.path), config.output.format, run_id)
    in_version = input_version(spark, input_cfg)
    inputs = [{"path": p, "format": input_cfg.format, "delta_version": in_version} for p in paths]
    raw = check_columns(read_input(spark, input_cfg, in_version), config.columns, source=", ".join(paths))
    scale_shuffle_partitions(spark, raw, config)
    return _Run(run_id, created.isoformat(timespec="seconds"), input_cfg, inputs, fs, target), raw


def _write(spark: SparkSession, config: Config, run: _Run, raw: DataFrame, ctx: Context, clock: _Clock) -> _Written:
    """ingest+clean → dedup → quarantine → split+write, each stage's Spark jobs named after it."""
    out_cfg = config.output
    assert out_cfg is not None
    marked, tallied, checked, as_read = _clean(spark, config, run, raw, ctx)
    n_input = tallied.rows
    unreadable = quarantine.skipped_files(spark, unread_files(raw, marked) if run.input.on_unreadable_file == "quarantine" else [])
    accepted = tallied.by_reason.get(None, 0)
    clock.lap("ingest+clean", "dedup", f"{n_input:,} rows read, {n_input - accepted:,} rejected, {accepted:,} on")

    deduped = dedup.run(clean.accepted(marked, keep_source=True), config, replace(ctx, rows=accepted))
    rejected = clean.quarantine_rows(marked, tallied.first_positions).unionByName(
        clean.numbered(deduped.rejected, tallied.first_positions))
    by_column, rejections = quarantine.by_reason_and_column(tallied.by_column, deduped.rejected_by_column)
    log.info("duplicates %s, rejected %d %s", deduped.counts, sum(rejections.values()), rejections)
    if not sum(deduped.remaining.values()):
        raise quarantine.nothing_left("dedup", f"{n_input} rows read, {sum(rejections.values())} rejected, "
                                      f"{deduped.duplicates} duplicates", rejected, run.fs, run.target, run.id,
                                      out_cfg, run.input)
    clock.lap("dedup", "quarantine", f"{accepted:,} rows in, {deduped.duplicates:,} duplicates, "
              f"{sum(rejections.values()) - (n_input - accepted):,} quarantined, {sum(deduped.remaining.values()):,} on")
    q_version = write_table(rejected.unionByName(quarantine.unreadable_rows(spark, list(unreadable)), allowMissingColumns=True),
                            run.target.quarantine, out_cfg.format, [], out_cfg.max_rows_per_file, out_cfg.dictionary_page_bytes)
    clock.lap("quarantine", "split+write", f"{sum(rejections.values()):,} rows and {len(unreadable)} skipped file(s) written")

    folded = split.run(deduped.rows, deduped.counts, config, ctx)
    _check_accounting(n_input, sum(rejections.values()), deduped.duplicates, folded.rows_kept)
    final = rebalance(folded.rows, config.columns.label, folded.plan, config.rebalance.method,  # type: ignore[union-attr]
                      config.rebalance.target, config.rebalance.copies)
    # The report's per-fold sample of originals, taken as they are written.
    sampled = sample_rows(output_order(final, config.split.seed), Roles.of(config.columns),  # type: ignore[arg-type]
                          sampling_rate(rows=folded.rows_kept), extra={SAMPLED_FOLD: F.col(FOLD)},
                          where=F.col(REPLICA) == 0)
    version = write_table(sampled.rows, run.target.data, out_cfg.format, [FOLD],
                          out_cfg.max_rows_per_file, out_cfg.dictionary_page_bytes)
    clock.lap("split+write", "measure", f"{folded.rows_kept:,} rows in {config.split.k} folds and a holdout, "
              f"rebalance {config.rebalance.method}")
    return _Written(n_input, rejections, by_column, deduped, folded, unreadable, checked, version, q_version,
                    as_read, sampled.taken(), ctx.notes.get("near_duplicates"))


def _clean(spark: SparkSession, config: Config, run: _Run, raw: DataFrame,
           ctx: Context) -> tuple[DataFrame, clean.Tally, Checked | None, Sample]:
    """Rejections marked, row identity and feature hashes added (once, so that dedup and the split
    read them from the scratch copy instead of hashing every column again) and the report's sample
    taken as that copy is written, the typed copy profiled and gated, and what cleaning rejected
    counted."""
    cols = config.columns
    assert cols is not None
    features = [*cols.numeric, *cols.categorical, *cols.array, *cols.text]
    rejections = clean.mark_rejections(raw, run.input.schema_, cols.label, cols.classes, clean.rules(config),
                                       config.clean.non_finite, raw_record(raw, run.input))
    sampled = sample_rows(add_feature_hash(add_row_id(rejections), cols.label, features), Roles.of(cols),
                          sampling_rate(input_bytes=plan_bytes(raw)), extra={REJECTED: F.col(REASON).isNotNull()})
    marked = ctx.materialise(sampled.rows, "marked")
    # Profile the typed scratch copy (rejected rows included), not the raw input again.
    checked = gate(marked.drop(ROW_ID), config)
    tallied = clean.tally(marked)
    if tallied.rows == 0:
        raise InputError(f"no rows in input {run.input.paths}: nothing to prepare")
    quarantine.warn_failing_files(spark, tallied.by_file, run.input)
    if not tallied.by_reason.get(None):
        raise quarantine.nothing_left("ingest+clean", f"{tallied.rows} rows read, all rejected",
                                      clean.quarantine_rows(marked, tallied.first_positions), run.fs, run.target,
                                      run.id, config.output, run.input)  # type: ignore[arg-type]
    return marked, tallied, checked, sampled.taken()


def _check_accounting(n_input: int, rejected: int, duplicates: int, kept: int) -> None:
    """Every input row is rejected, a duplicate or split, checked before anything is written."""
    if kept != n_input - rejected - duplicates:
        raise ContractError(f"row accounting broken before writing: {n_input} input - {rejected} "
                            f"rejected - {duplicates} duplicates != {kept} rows to split")


def _measure_and_publish(spark: SparkSession, config: Config, run: _Run, written: _Written, clock: _Clock) -> RunResult:
    """Statistics and transforms measured on the written data, then verify and publish."""
    out_cfg = config.output
    assert out_cfg is not None
    data = read_table(spark, run.target.data, out_cfg.format, written.version)
    plan = written.folded.plan
    groups, transforms = normalise.fit(data, config, plan.k)
    report_data = build_report_data(as_read=written.as_read, output=written.output,
                                    roles=Roles.of(config.columns),  # type: ignore[arg-type]
                                    final=transforms[0], k=plan.k, near_duplicates=written.near_duplicates)
    clock.lap("measure", "verify+publish")
    by_fold = {str(f): sum(n for (fo, _), n in groups.rows.items() if fo == f) for f in [HOLDOUT_FOLD, *range(plan.k)]}
    counts = RowCounts(input=written.n_input, rejected=sum(written.rejections.values()),
                       duplicates=written.deduped.duplicates, output=sum(groups.rows.values()),
                       replicas=sum(groups.copies.values()), by_fold=by_fold, undersampled=sum(groups.undersampled.values()))
    try:
        manifest = build_manifest(
            config=config, run_id=run.id, created_at=run.created_at, classes=written.folded.classes, groups=groups,
            rows=counts, rejections=written.rejections, rejections_by_column=written.by_column,
            duplicates=written.deduped.by_kind, conflicting_rows=written.deduped.counts.get("conflicting_rows", 0),
            split_method=plan.method(), inputs=run.inputs,
            output={"format": out_cfg.format, "data_path": DATA_DIR, "partition_by": [FOLD], "delta_version": written.version},
            schema=[{"name": f.name, "type": f.dataType.simpleString()} for f in data.schema.fields],
            quarantine={"path": QUARANTINE_DIR, "rows": counts.rejected + len(written.unreadable),
                        "delta_version": written.quarantine_version, "unreadable_files": list(written.unreadable),
                        "unreadable_file_bytes": written.unreadable},
            warnings=plan.warnings(), timings=clock.timings())
        publish_dataset(run.fs, run.target, config, manifest, data, transforms, written.checked,
                        written.quarantine_version, report_data)
    except Exception:
        abandon(run.fs, run.target)
        raise
    log.info("published %s (%d rows, %.1fs)", run.target.final, counts.output, time.monotonic() - clock.start)
    return RunResult(run.target.final, manifest)
