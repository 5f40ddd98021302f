"""The last steps of a run, in the order that keeps readers safe: verify the written dataset, write
the transform, the optional normalised copy, stats.json, report_data.json, report.html and
manifest.json (last), then swap the staged output in (io/write.py). A run the quality gate stopped leaves only its record.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pyspark.sql import DataFrame

from sparkprep.config import Config
from sparkprep.contract import FOLD, MANIFEST, NORMALISED_DIR, REPORT, REPORT_DATA, STATS
from sparkprep.errors import ContractError
from sparkprep.io.fs import HadoopFS
from sparkprep.io.write import OutputTarget, blocked_dir, publish, read_table, write_table
from sparkprep.publish.manifest import (build_blocked_manifest, record_materialised, record_validation,
                                        record_verification, transform_path)
from sparkprep.publish.report import render_blocked_report, render_report
from sparkprep.publish.verify import verify_dataset
from sparkprep.quality.gate import Blocked, Checked, stats_text
from sparkprep.stages.normalise.spark import apply_spark
from sparkprep.transform import TransformParams, transform_document

log = logging.getLogger(__name__)


def publish_dataset(fs: HadoopFS, target: OutputTarget, config: Config, manifest: dict[str, Any], written: DataFrame,
                    transforms: tuple[TransformParams, dict[int, TransformParams]], checked: Checked | None,
                    quarantine_version: int | None, report_data: dict[str, Any] | None = None) -> None:
    """Verify the written dataset against its manifest, then write every file beside it and publish.

    Args:
        fs: the output's filesystem.
        target: the run's output target (data and quarantine written).
        config: the run's config (output, normalise.materialise).
        manifest: the run's manifest, completed here (verified, materialised, validation).
        written: the data, read back.
        transforms: the final and per-fold transforms.
        checked: the quality gate's verdict, if the run validated its input.
        quarantine_version: the quarantine's Delta version (None for Parquet).
        report_data: what the report shows of the data (publish/report_data.py), if measured.
    """
    out_cfg = config.output
    assert out_cfg is not None
    transform = transform_document(*transforms)
    verdict = verify_dataset(manifest, written, transform,
                             read_table(written.sparkSession, target.quarantine, out_cfg.format, quarantine_version))
    if not verdict.ok:
        raise ContractError("the dataset failed verification; nothing was published:\n  "
                            + "\n  ".join(verdict.violations))
    record_verification(manifest, verdict.checks)
    fs.write_text(target.file(transform_path(manifest)), json.dumps(transform, indent=1))
    if config.normalise.materialise:
        version = write_table(apply_spark(written, transforms[0]), target.file(NORMALISED_DIR), out_cfg.format,
                              [FOLD], out_cfg.max_rows_per_file, out_cfg.dictionary_page_bytes)
        record_materialised(manifest, NORMALISED_DIR, version)
    if checked:
        record_validation(manifest, checked.validation.to_dict())
        fs.write_text(target.file(STATS), stats_text(checked))
    if report_data is not None:
        fs.write_text(target.file(REPORT_DATA), json.dumps(report_data, indent=1))
    fs.write_text(target.file(REPORT), render_report(manifest, checked.for_report() if checked else None, report_data))
    fs.write_text(target.file(MANIFEST), json.dumps(manifest, indent=2, sort_keys=False))
    publish(fs, target, manifest["run_id"])


def record_blocked(fs: HadoopFS, config: Config, target: OutputTarget, stop: Blocked, *, run_id: str,
                   created_at: str, inputs: list[dict[str, Any]], timings: dict[str, float]) -> str:
    """Leave why the gate stopped the run where a user looks, without touching the dataset in
    force; returns the directory (blocked manifest.json, report.html, stats.json).

    Args:
        fs: the output's filesystem.
        config: the run's config.
        target: the run's output target (abandoned).
        stop: what the gate found.
        run_id: the run's id.
        created_at: when the run started (ISO 8601, seconds).
        inputs: the manifest's inputs.
        timings: seconds per stage so far.
    """
    assert config.output is not None
    where = blocked_dir(target, run_id)
    current = f"{target.final}/{MANIFEST}"
    previous = json.loads(fs.read_text(current)).get("run_id") if fs.exists(current) else None
    manifest = build_blocked_manifest(
        config=config, run_id=run_id, created_at=created_at, inputs=inputs,
        output={"format": config.output.format, "path": target.final, "published": False},
        message=str(stop), previous_run_id=previous, stats=stop.checked.summary(), timings=timings)
    record_validation(manifest, stop.checked.validation.to_dict())
    fs.write_text(f"{where}/{STATS}", stats_text(stop.checked))
    fs.write_text(f"{where}/{REPORT}", render_blocked_report(manifest, stop.checked.for_report()))
    fs.write_text(f"{where}/{MANIFEST}", json.dumps(manifest, indent=2))
    log.error("run %s blocked by validation; nothing published; report at %s/%s", run_id, where, REPORT)
    return where
