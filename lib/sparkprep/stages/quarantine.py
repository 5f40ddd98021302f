"""What a run rejects, beside the rows each stage rejects: whole input files that could not be read,
the counts by reason and column, the warning for a file that loses most of its records, and the
error for a run that has no row left.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from sparkprep.config import InputConfig, OutputConfig
from sparkprep.contract import QUARANTINE_DIR, QUARANTINE_SCHEMA, REASON, SOURCE_FILE, UNREADABLE_FILE
from sparkprep.errors import InputError
from sparkprep.io.csv_files import likely_cause as csv_likely_cause
from sparkprep.io.fs import HadoopFS
from sparkprep.io.read import csv_options
from sparkprep.io.write import OutputTarget, failed_dir, write_table

log = logging.getLogger(__name__)


def unreadable_rows(spark: SparkSession, files: list[str]) -> DataFrame:
    """Quarantine entries for whole input files that could not be read (no rows, no raw line).

    Args:
        spark: the session.
        files: the unreadable input files.
    """
    message = "the file could not be read and gave no rows; skipped (input.on_unreadable_file=quarantine)"
    schema = ", ".join(f"{name} {kind}" for name, kind in QUARANTINE_SCHEMA if name != "record")
    return spark.createDataFrame([(UNREADABLE_FILE, None, message, f, None) for f in files], schema)


def skipped_files(spark: SparkSession, files: list[str]) -> dict[str, int]:
    """The unreadable input files a run skipped, each with its size in bytes (what the manifest,
    the report and the summary list: a skipped file's rows are in no count), each logged.

    Args:
        spark: the session.
        files: the files Spark's reader skipped (read.unread_files).
    """
    sizes = {uri: HadoopFS(spark, uri).total_size(uri) for uri in files}
    for uri, size in sizes.items():
        log.warning("skipped unreadable input file %s (%d bytes; input.on_unreadable_file=quarantine)", uri, size)
    return sizes


def by_reason_and_column(*counted: dict[tuple[str, str | None], int]
                         ) -> tuple[dict[tuple[str, str | None], int], dict[str, int]]:
    """The quarantine's rows per (reason, column), and per reason, from what each stage counted.

    Args:
        counted: rows per (reason, column), as each stage counted its rejections (cleaning's
            tally, dedup's count).
    """
    by_column: dict[tuple[str, str | None], int] = {}
    for stage in counted:
        for key, n in stage.items():
            by_column[key] = by_column.get(key, 0) + n
    rejections = {reason: sum(n for (r, _), n in by_column.items() if r == reason)
                  for reason in sorted({r for r, _ in by_column})}
    return by_column, rejections


def likely_cause(spark: SparkSession, uri: str, input_cfg: InputConfig) -> str | None:
    """A guess at why a file's records fail (io/csv_files.likely_cause); CSV only.

    Args:
        spark: the session.
        uri: the input file.
        input_cfg: the input section (its format and CSV options).
    """
    if input_cfg.format != "csv":
        return None
    return csv_likely_cause(spark, uri, csv_options(input_cfg))


def warn_failing_files(spark: SparkSession, by_file: list[Row], input_cfg: InputConfig) -> None:
    """Log the files that lost more than half their records, with the likely cause.

    Args:
        spark: the session.
        by_file: clean's tally: rows `n` per (reason, source file).
        input_cfg: the input section.
    """
    totals: dict[str, list[int]] = {}
    for r in by_file:
        seen = totals.setdefault(r[SOURCE_FILE], [0, 0])
        seen[0] += r["n"]
        seen[1] += r["n"] if r[REASON] else 0
    for uri, (n, rejected) in sorted(totals.items()):
        if rejected * 2 > n:
            cause = likely_cause(spark, uri, input_cfg)
            log.warning("%s: %d of %d records rejected%s", uri, rejected, n, f"; likely cause: {cause}" if cause else "")


def nothing_left(stage: str, counts: str, quarantine: DataFrame, fs: HadoopFS, target: OutputTarget,
                 run_id: str, out_cfg: OutputConfig, input_cfg: InputConfig) -> InputError:
    """The error for a run that has no row left after `stage`: the counts, the most common
    reasons with an example raw record each, and the quarantine kept where the user can read it
    (`<out>.failed-<run_id>/quarantine`; the dataset in force is not touched).

    Args:
        stage: the stage after which no row is left.
        counts: what the stage counted, in words.
        quarantine: every rejected row so far, in the quarantine schema.
        fs: the output's filesystem.
        target: the run's output target.
        run_id: the run's id.
        out_cfg: the output section (its write options).
        input_cfg: the input section (for the likely cause).
    """
    top = (quarantine.groupBy("reason", "column")
           .agg(F.count(F.lit(1)).alias("n"), F.min_by(F.struct("source_file", "record", "raw"), "raw").alias("example"))
           .orderBy(F.desc("n")).limit(3).collect())
    kept = f"{failed_dir(target, run_id)}/{QUARANTINE_DIR}"
    write_table(quarantine, kept, "parquet", [], out_cfg.max_rows_per_file, out_cfg.dictionary_page_bytes)
    example = top[0]["example"] if top else None
    cause = likely_cause(quarantine.sparkSession, example["source_file"], input_cfg) if example and example["source_file"] else None
    return InputError(f"no rows left after {stage}: {counts}; nothing was published"
                      f"{f' (the dataset at {target.final} is unchanged)' if fs.exists(target.final) else ''}."
                      f"\nMost common reasons:{_reasons(top)}{f'{chr(10)}Likely cause: {cause}' if cause else ''}"
                      f"\nEvery rejected row, with its raw record: {kept} "
                      f"(remove it when done)")


def _reasons(top: list[Row]) -> str:
    """One line per common reason, with an example record."""
    reasons = ""
    for r in top:
        column = f" ({r['column']})" if r["column"] else ""
        at = r["example"] and r["example"]["record"]
        example = (f", e.g. {r['example']['source_file']}{f' record {at}' if at else ''}: "
                   f"{(r['example']['raw'] or '')[:200]!r}" if r["example"] else "")
        reasons += f"\n  {r['n']} x {r['reason']}{column}{example}"
    return reasons
