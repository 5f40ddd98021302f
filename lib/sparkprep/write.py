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

from dataclasses import dataclass

from pyspark.sql import DataFrame, DataFrameWriter, SparkSession

from sparkprep.errors import InputError
from sparkprep.io.fs import HadoopFS
from sparkprep.session import temporary_conf

MANIFEST = "manifest.json"
REPORT = "report.html"
BLOCKED_DIR = "_blocked"
_DICTIONARY_PAGE = "parquet.dictionary.page.size"


@dataclass(frozen=True)
class OutputTarget:
    """Where a run writes (`work`) and where the finished dataset lives (`final`)."""

    final: str
    work: str
    format: str

    @property
    def data(self) -> str:
        return f"{self.work}/data"

    @property
    def quarantine(self) -> str:
        return f"{self.work}/quarantine"

    def file(self, name: str) -> str:
        return f"{self.work}/{name}"


def prepare_target(fs: HadoopFS, final: str, fmt: str, run_id: str) -> OutputTarget:
    """Refuse to replace a directory that is not a sparkprep output; pick the work directory."""
    final = final.rstrip("/")
    if fs.exists(final) and not fs.is_empty_dir(final):
        if not any(fs.exists(f"{final}/{name}") for name in (MANIFEST, "data", BLOCKED_DIR)):
            raise InputError(f"output.path {final} exists and is not a sparkprep output "
                             f"(no {MANIFEST}, no data/, no {BLOCKED_DIR}/): refusing to replace it")
    if fmt == "delta":
        return OutputTarget(final, final, fmt)
    parent, _, name = final.rpartition("/")
    return OutputTarget(final, f"{parent}/.{name}.staging-{run_id}", fmt)


def blocked_dir(target: OutputTarget, run_id: str) -> str:
    """Where a run stopped by the quality gate leaves its manifest and report (see the module doc)."""
    return f"{target.final}/{BLOCKED_DIR}/{run_id}"


def scratch_dir(target: OutputTarget, run_id: str) -> str:
    """Intermediate data of one run, beside the output (same filesystem), removed at the end."""
    parent, _, name = target.final.rpartition("/")
    return f"{parent}/.{name}.scratch-{run_id}"


def overwriting(df: DataFrame, dictionary_page_bytes: int) -> DataFrameWriter:
    """`df.write` in overwrite mode, Parquet's dictionary limited to `dictionary_page_bytes` per
    column chunk (output.dictionary_page_bytes says why)."""
    return df.write.mode("overwrite").option(_DICTIONARY_PAGE, dictionary_page_bytes)


def write_table(df: DataFrame, uri: str, fmt: str, partition_by: list[str], max_rows: int,
                dictionary_page_bytes: int) -> int | None:
    """Overwrite `uri` with `df`; returns the Delta version committed (None for Parquet)."""
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


def delta_version(spark: SparkSession, uri: str) -> int:
    from delta.tables import DeltaTable  # the JVM side exists only once the session has the jars

    return int(DeltaTable.forPath(spark, uri).history(1).collect()[0]["version"])


def read_table(spark: SparkSession, uri: str, fmt: str, version: int | None) -> DataFrame:
    if fmt == "parquet":
        return spark.read.parquet(uri)
    return spark.read.format("delta").option("versionAsOf", version).load(uri)


def publish(fs: HadoopFS, target: OutputTarget, run_id: str) -> None:
    """Make the work directory the output (Parquet); Delta output is already in place. Either way
    the record of an earlier blocked run goes (Parquet: with the replaced directory)."""
    if target.work == target.final:
        fs.delete(f"{target.final}/{BLOCKED_DIR}")
        return
    old = None
    if fs.exists(target.final):
        parent, _, name = target.final.rpartition("/")
        old = f"{parent}/.{name}.old-{run_id}"
        fs.rename(target.final, old)
    fs.rename(target.work, target.final)
    if old:
        fs.delete(old)


def abandon(fs: HadoopFS, target: OutputTarget) -> None:
    """Remove what a failed run staged (Delta tables keep their committed history)."""
    if target.work != target.final and fs.exists(target.work):
        fs.delete(target.work)
