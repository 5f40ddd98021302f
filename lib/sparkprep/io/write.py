"""Atomic output: readers never see a half-written dataset; a rerun replaces, never mixes.

Parquet: everything (data/, quarantine/, report.html, manifest.json last) is written into a
staging directory beside the output, which then replaces the output by two renames (atomic on
HDFS and local disks; on object stores a rename is a copy, so the staging window is longer but the
manifest still appears last). Delta: data/ and quarantine/ are Delta tables overwritten in place
(each overwrite is one atomic commit, and old versions stay readable); manifest.json, written last
by an atomic rename, pins the versions it describes, so a reader holding the old manifest still
reads the old snapshot and a failed run leaves the previous manifest in force.

A run stopped by the quality gate publishes nothing: its blocked manifest.json and report.html go
to `<out>/_blocked/<run_id>/`, beside the dataset that stays in force (readers of `<out>` never
look there: the leading underscore hides it from Spark, pyarrow and Petastorm). A later published
run removes `_blocked/` (Parquet replaces the whole directory; Delta deletes it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import CapturedException
from pyspark.sql import DataFrame, DataFrameWriter, Observation, SparkSession
from pyspark.sql import functions as F

from sparkprep.contract import (
    BLOCKED_DIR, COPIES, DATA_DIR, FOLD, INTERNAL_PREFIX, MANIFEST, QUARANTINE_DIR, RESERVED_COLUMNS, ROW_ID)
from sparkprep.errors import InputError
from sparkprep.io.fs import HadoopFS, relative_to
from sparkprep.io.read import delta_version, spark_error_summary
from sparkprep.io.session import temporary_conf

log = logging.getLogger(__name__)

_DICTIONARY_PAGE = "parquet.dictionary.page.size"
#: `materialise(df, name)`: write a scratch copy of `df` named `name` and read it back.
Materialise = Callable[[DataFrame, str], DataFrame]

#: The directories a run keeps beside `<out>` (`.<name>.<kind>-<run_id>`): its scratch data, the
#: staged dataset, and the replaced one until it is deleted.
_SIBLINGS = ("scratch", "staging", "old")


@dataclass(frozen=True)
class OutputTarget:
    """Where a run writes (`work`) and where the finished dataset lives (`final`)."""

    final: str
    work: str
    format: str

    @property
    def data(self) -> str:
        return f"{self.work}/{DATA_DIR}"

    @property
    def quarantine(self) -> str:
        return f"{self.work}/{QUARANTINE_DIR}"

    def file(self, name: str) -> str:
        """The path of file `name` in the work directory.

        Args:
            name: a file name (manifest.json, a transform document).
        """
        return f"{self.work}/{name}"


def _sibling(final: str, kind: str, run_id: str) -> str:
    parent, _, name = final.rpartition("/")
    return f"{parent}/.{name}.{kind}-{run_id}"


def _sibling_of(name: str, entry: str) -> tuple[str, str] | None:
    """(kind, run_id) when `entry`, a name beside the output `name`, is a directory that `_sibling`
    names; None for anything else."""
    kind, dash, run_id = entry.removeprefix(f".{name}.").partition("-")
    return (kind, run_id) if entry.startswith(f".{name}.") and dash and kind in _SIBLINGS else None


def refuse_overlap(fs: HadoopFS, inputs: list[str], final: str) -> None:
    """Refuse, before anything is read or written, an input that a run would delete or mix with
    its output: one inside `final` (publishing replaces the whole directory), inside a directory
    the run keeps beside it (`_SIBLINGS`), or one that holds `final` (the run would write into its
    own input). URIs are compared qualified, local paths with their symlinks resolved.

    Args:
        fs: the output's filesystem.
        inputs: the input paths, qualified.
        final: the output directory, qualified.
    """
    output = fs.qualified(final.rstrip("/"))
    parent, _, name = output.rpartition("/")
    for given in inputs:
        uri = fs.qualified(given)
        beside = relative_to(uri, parent)
        if relative_to(uri, output) is not None:
            where = f"inside output.path {final}: publishing a run replaces that directory"
        elif relative_to(output, uri) is not None:
            where = f"a directory that holds output.path {final}: the run would write into its own input"
        elif beside and _sibling_of(name, beside.split("/")[0]):
            where = f"inside a directory that runs writing {final} create and delete"
        else:
            continue
        raise InputError(f"input path {given} is {where}, so the input would be lost or mixed with the "
                         f"output; nothing was read or written. Move the input out of {final}, or set "
                         f"output.path to a directory outside every input path.")


def prepare_target(fs: HadoopFS, final: str, fmt: str, run_id: str) -> OutputTarget:
    """Refuse to replace a directory that is not a sparkprep output; pick the work directory.
    What earlier runs that were killed left beside the output goes first (`remove_stale_siblings`).

    Args:
        fs: the output's filesystem.
        final: the output directory.
        fmt: output.format.
        run_id: the run's id.
    """
    final = final.rstrip("/")
    remove_stale_siblings(fs, final, run_id)
    if fs.exists(final) and not fs.is_empty_dir(final):
        if not any(fs.exists(f"{final}/{name}") for name in (MANIFEST, DATA_DIR, BLOCKED_DIR)):
            raise InputError(f"output.path {final} exists and is not a sparkprep output "
                             f"(no {MANIFEST}, no data/, no {BLOCKED_DIR}/): refusing to replace it")
    if fmt == "delta":
        return OutputTarget(final, final, fmt)
    return OutputTarget(final, _sibling(final, "staging", run_id), fmt)


def remove_stale_siblings(fs: HadoopFS, final: str, run_id: str) -> list[str]:
    """Remove the directories that earlier runs left beside `final`; return their URIs.

    A run removes its scratch and staging directories when it ends, even by an error; one that was
    killed (SIGKILL, a lost driver, a cluster preempted) cannot, and without this each such run
    would leave a hidden copy of its data beside the output for good. One writer per output at a
    time (README, "S3") makes every other run's directory stale. An `old` directory is the
    previous dataset of a run killed between publish's two renames: with no output in its place it
    is renamed back, not removed.

    Args:
        fs: the output's filesystem.
        final: the output directory (`output.path`).
        run_id: this run's id, whose own directories are not touched.
    """
    parent, _, name = final.rpartition("/")
    removed = []
    for entry in sorted(fs.children(parent + "/")):  # "/": a parent that is a bucket or namenode root
        sibling = _sibling_of(name, entry)
        if sibling is None or sibling[1] == run_id:
            continue
        kind, stale_run = sibling
        uri = f"{parent}/{entry}"
        if kind == "old" and not fs.exists(final):
            log.warning("restoring %s, the dataset that a killed run had moved away from %s", uri, final)
            fs.rename(uri, final)
            continue
        log.warning("removing %s (%d bytes), left by run %s, which did not finish", uri, fs.total_size(uri), stale_run)
        fs.delete(uri)
        removed.append(uri)
    return removed


def blocked_dir(target: OutputTarget, run_id: str) -> str:
    """Where a run stopped by the quality gate leaves its manifest and report (see the module doc).

    Args:
        target: the run's output target.
        run_id: the run's id.
    """
    return f"{target.final}/{BLOCKED_DIR}/{run_id}"


def failed_dir(target: OutputTarget, run_id: str) -> str:
    """Where a run with no row left keeps its quarantine for the user: beside the output and
    visible (no leading dot), never removed by sparkprep.

    Args:
        target: the run's output target.
        run_id: the run's id.
    """
    parent, _, name = target.final.rpartition("/")
    return f"{parent}/{name}.failed-{run_id}"


def scratch_dir(target: OutputTarget, run_id: str) -> str:
    """Intermediate data of one run, beside the output (same filesystem), removed at the end.

    Args:
        target: the run's output target.
        run_id: the run's id.
    """
    return _sibling(target.final, "scratch", run_id)


def overwriting(df: DataFrame, dictionary_page_bytes: int) -> DataFrameWriter:
    """`df.write` in overwrite mode, Parquet's dictionary limited to `dictionary_page_bytes` per
    column chunk (output.dictionary_page_bytes says why).

    Args:
        df: the rows to write.
        dictionary_page_bytes: output.dictionary_page_bytes.
    """
    return df.write.mode("overwrite").option(_DICTIONARY_PAGE, dictionary_page_bytes)


def materialise(df: DataFrame, uri: str, paths: list[str], dictionary_page_bytes: int) -> DataFrame:
    """Write `df` to scratch Parquet and read it back. The first write is the first action on the
    input: unreadable files surface here, so name them.

    Args:
        df: the rows to keep a copy of.
        uri: where the copy goes (a scratch directory).
        paths: the run's input paths, named when the input cannot be read.
        dictionary_page_bytes: output.dictionary_page_bytes.
    """
    try:
        overwriting(df, dictionary_page_bytes).parquet(uri)
    except (CapturedException, Py4JJavaError) as exc:
        raise InputError(f"cannot read input {paths}: {spark_error_summary(exc)}; to skip files that cannot "
                         f"be read at all (and list them in quarantine/), set input.on_unreadable_file: quarantine") from None
    # The schema is known: read back without the footer-reading job that inferring it costs.
    return df.sparkSession.read.schema(df.schema).parquet(uri)


def counted(materialise: Materialise, df: DataFrame, name: str) -> tuple[DataFrame, int]:
    """`materialise(df, name)` and its number of rows, counted while it is written (an observed
    metric) instead of by a job of its own.

    Args:
        materialise: where the copy goes.
        df: the rows to keep a copy of.
        name: the copy's name.
    """
    observation = Observation()
    kept = materialise(df.observe(observation, F.count(F.lit(1)).alias("rows")), name)
    return kept, int(observation.get["rows"])


def write_table(df: DataFrame, uri: str, fmt: str, partition_by: list[str], max_rows: int,
                dictionary_page_bytes: int) -> int | None:
    """Overwrite `uri` with `df`; returns the Delta version committed (None for Parquet).

    Args:
        df: the rows to write.
        uri: the table's directory.
        fmt: parquet or delta.
        partition_by: the partition columns.
        max_rows: output.max_rows_per_file.
        dictionary_page_bytes: output.dictionary_page_bytes.
    """
    writer = overwriting(df, dictionary_page_bytes).option("maxRecordsPerFile", max_rows)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if fmt == "parquet":
        writer.parquet(uri)
        return None
    # Delta hands only maxRecordsPerFile and compression on to Parquet, but every SQL conf entry
    # reaches the Hadoop conf of its writer: the limit goes there, for this write only.
    with temporary_conf(df.sparkSession, _DICTIONARY_PAGE, str(dictionary_page_bytes)):
        writer.format("delta").option("overwriteSchema", "true").save(uri)
    return delta_version(df.sparkSession, uri)


def output_order(rows: DataFrame, seed: int) -> DataFrame:
    """The output columns (reserved first, then data; no internal column) and, within each file,
    the rows in hash order rather than the split's (class, bucket) order, so a reader's row group
    is a fair mix of classes even before it shuffles.

    Args:
        rows: the rows to write, with every reserved column (`copies` only when counted).
        seed: split.seed, so the order is reproducible.
    """
    data = [c for c in rows.columns if c not in RESERVED_COLUMNS and not c.startswith(INTERNAL_PREFIX)]
    reserved = [c for c in RESERVED_COLUMNS if c != COPIES or COPIES in rows.columns]
    return rows.select(*reserved, *data).sortWithinPartitions(
        FOLD, F.xxhash64(ROW_ID, F.lit(seed), F.lit("file-order")))


def read_table(spark: SparkSession, uri: str, fmt: str, version: int | None) -> DataFrame:
    """A table written by `write_table`, at `version` for Delta.

    Args:
        spark: the session.
        uri: the table's directory.
        fmt: parquet or delta.
        version: the Delta version (None: Parquet).
    """
    if fmt == "parquet":
        return spark.read.parquet(uri)
    return spark.read.format("delta").option("versionAsOf", version).load(uri)


def publish(fs: HadoopFS, target: OutputTarget, run_id: str) -> None:
    """Make the work directory the output (Parquet); Delta output is already in place. Either way
    the record of an earlier blocked run goes (Parquet: with the replaced directory).

    Args:
        fs: the output's filesystem.
        target: the run's output target.
        run_id: the run's id.
    """
    if target.work == target.final:
        fs.delete(f"{target.final}/{BLOCKED_DIR}")
        return
    old = None
    if fs.exists(target.final):
        old = _sibling(target.final, "old", run_id)
        fs.rename(target.final, old)
    fs.rename(target.work, target.final)
    if old:
        fs.delete(old)


def abandon(fs: HadoopFS, target: OutputTarget) -> None:
    """Remove what a failed run staged (Delta tables keep their committed history).

    Args:
        fs: the output's filesystem.
        target: the run's output target.
    """
    if target.work != target.final and fs.exists(target.work):
        fs.delete(target.work)
