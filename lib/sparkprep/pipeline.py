"""`prepare`: ingest → clean → dedup → split → write → measure → manifest, composed from stages.

Passes over the input: ONE. The cleaned input is materialised once as Parquet in a scratch
directory beside the output; rejection counts, the quarantine and deduplication read that copy
(column pruning makes the counts nearly free). The deduplicated rows are materialised the same way
for the class counts, the split's bucket counts and the data write. Parquet on disk rather than
`persist()`: on this stack Spark's in-memory columnar cache cost 4x a Parquet write of the same
rows, and a disk copy scales past memory by construction. Statistics, per-fold counts and the
output row count are then measured on the written data, independently of the code path that
produced it, and the row accounting law is checked before the manifest exists.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import CapturedException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkprep import HOLDOUT_FOLD, RESERVED_COLUMNS
from sparkprep.clean import REASON, accepted, mark_rejections, quarantine_rows
from sparkprep.config import Config
from sparkprep.dedup import add_row_id, drop_exact_duplicates
from sparkprep.errors import ContractError, InputError
from sparkprep.ingest import check_columns, input_version, read_input, spark_error_summary
from sparkprep.io.fs import HadoopFS, qualify
from sparkprep.manifest import RowCounts, build_manifest
from sparkprep.normalise import measure_groups
from sparkprep.quality import STATS, gate, record
from sparkprep.rebalance import oversample_training_rows
from sparkprep.report import render_report
from sparkprep.split import FOLD_RANK, SplitPlan, add_label_index, assign_folds, holdout_by_column
from sparkprep.verify import verify_dataset
from sparkprep.write import (MANIFEST, REPORT, abandon, prepare_target, publish, read_table,
                             scratch_dir, write_table)

log = logging.getLogger(__name__)


class _Clock:
    """Wall time per stage, for the log, the manifest and the summary."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()
        self.stages: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.monotonic()
        self.stages[stage] = round(now - self.last, 3)
        self.last = now
        log.info("%s done in %.1fs", stage, self.stages[stage])

    def timings(self) -> dict[str, float]:
        return {**self.stages, "total": round(time.monotonic() - self.start, 3)}


@dataclass(frozen=True)
class RunResult:
    out: str
    manifest: dict[str, Any]


def _materialise(df: DataFrame, uri: str, paths: list[str]) -> DataFrame:
    """Write `df` to scratch Parquet and read it back. The first write is the first action on the
    input: unreadable files surface here, so name them."""
    try:
        df.write.mode("overwrite").parquet(uri)
    except (CapturedException, Py4JJavaError) as exc:
        raise InputError(f"cannot read input {paths}: {spark_error_summary(exc)}") from None
    return df.sparkSession.read.parquet(uri)


def _output_columns(df: DataFrame) -> list[str]:
    data = [c for c in df.columns if c not in RESERVED_COLUMNS and not c.startswith("_sp_")]
    return [*RESERVED_COLUMNS, *data]


def _split(deduped: DataFrame, config: Config) -> tuple[DataFrame, SplitPlan, list[str], int]:
    """Folds (holdout by per-class fraction or by a column rule), label_index; also the plan, the
    classes in label_index order and the number of deduplicated rows."""
    split, label, configured = config.split, config.columns.label, config.columns.classes
    held_out = (holdout_by_column(split.holdout_column, split.holdout_values, split.holdout_from)
                if split.holdout_column else F.lit(False))
    cross_validated = deduped.where(~held_out)
    plan = SplitPlan.measure(cross_validated, label, split.k, split.holdout_fraction, split.seed)
    for warning in plan.warnings():
        log.warning(warning)
    folded, found, n_kept = assign_folds(cross_validated, label, plan), set(plan.class_counts), sum(plan.class_counts.values())
    if split.holdout_column:
        holdout = deduped.where(held_out).withColumns({"fold": F.lit(HOLDOUT_FOLD), FOLD_RANK: F.lit(None).cast("long")})
        held = {r["c"]: int(r["count"]) for r in holdout.groupBy(F.col(label).cast("string").alias("c")).count().collect()}
        folded, found, n_kept = folded.unionByName(holdout), found | set(held), n_kept + sum(held.values())
    classes = list(configured) if configured else sorted(found)
    return add_label_index(folded, label, classes), plan, classes, n_kept


def run(spark: SparkSession, config: Config) -> RunResult:
    """Run `prepare` end to end; returns the published output URI and its manifest."""
    config.require("input", "columns", "output")
    assert config.input and config.columns and config.output
    clock = _Clock()
    created = datetime.now(timezone.utc)
    run_id = f"{created:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    cols, out_cfg = config.columns, config.output
    paths = [qualify(p) for p in config.input.paths]
    input_cfg = config.input.model_copy(update={"paths": paths})
    fs = HadoopFS(spark, qualify(out_cfg.path))
    target = prepare_target(fs, qualify(out_cfg.path), out_cfg.format, run_id)

    in_version = input_version(spark, input_cfg)
    raw = check_columns(read_input(spark, input_cfg, in_version), cols, source=", ".join(paths))
    scratch = scratch_dir(target, run_id)
    try:
        marked = _materialise(mark_rejections(raw, input_cfg.schema_, cols.label, cols.classes),
                              f"{scratch}/marked", paths)
        # Profile the typed scratch copy (rejected rows included), not the raw input again.
        checked = gate(marked, config)
        by_reason = {r[REASON]: int(r["count"]) for r in marked.groupBy(REASON).count().collect()}
        n_input = sum(by_reason.values())
        if n_input == 0:
            raise InputError(f"no rows in input {paths}: nothing to prepare")
        rejections = {r: n for r, n in sorted(by_reason.items(), key=lambda kv: str(kv[0])) if r is not None}
        log.info("read %d rows, rejected %d %s", n_input, sum(rejections.values()), rejections)
        clock.lap("ingest+clean")

        q_version = write_table(quarantine_rows(marked), target.quarantine, out_cfg.format, [], out_cfg.max_rows_per_file)
        clock.lap("quarantine")
        rows = add_row_id(accepted(marked))
        deduped = _materialise(drop_exact_duplicates(rows) if config.dedup.exact else rows,
                               f"{scratch}/deduped", paths)
        folded, plan, classes, n_kept = _split(deduped, config)
        clock.lap("dedup")
        final = (oversample_training_rows(folded, cols.label, plan, config.rebalance.target)
                 if config.rebalance.method == "oversample" else folded.withColumn("replica", F.lit(0)))
        # Within each file, rows in hash order rather than the split's (class, bucket) order, so a
        # reader's row group is a fair mix of classes even before it shuffles.
        mixed = final.select(_output_columns(final)).sortWithinPartitions(
            "fold", F.xxhash64("row_id", F.lit(config.split.seed), F.lit("file-order")))
        version = write_table(mixed, target.data, out_cfg.format, ["fold"], out_cfg.max_rows_per_file)
        clock.lap("split+write")
    except Exception:
        abandon(fs, target)
        raise
    finally:
        fs.delete(scratch)

    written = read_table(spark, target.data, out_cfg.format, version)
    groups = measure_groups(written, cols.numeric)
    clock.lap("measure")
    by_fold = {str(f): sum(n for (fo, _), n in groups.rows.items() if fo == f) for f in [HOLDOUT_FOLD, *range(plan.k)]}
    counts = RowCounts(input=n_input, rejected=sum(rejections.values()), duplicates=n_input - sum(rejections.values()) - n_kept,
                       output=sum(groups.rows.values()), replicas=sum(groups.copies.values()), by_fold=by_fold)
    try:
        manifest = build_manifest(
            config=config, run_id=run_id, created_at=created.isoformat(timespec="seconds"),
            classes=classes, groups=groups, rows=counts, rejections=rejections,
            inputs=[{"path": p, "format": input_cfg.format, "delta_version": in_version} for p in paths],
            output={"format": out_cfg.format, "data_path": "data", "partition_by": ["fold"],
                    "delta_version": version},
            schema=[{"name": f.name, "type": f.dataType.simpleString()} for f in written.schema.fields],
            quarantine={"path": "quarantine", "rows": counts.rejected, "delta_version": q_version},
            warnings=plan.warnings(), timings=clock.timings())
        verdict = verify_dataset(manifest, written)
        if not verdict.ok:
            raise ContractError("the dataset failed verification; nothing was published:\n  "
                                + "\n  ".join(verdict.violations))
        manifest["verified"] = verdict.checks
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
