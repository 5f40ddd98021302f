"""Read the input with an explicit (or inferred) schema, capturing what cannot be parsed.

Text formats (CSV, JSON) are read with every configured column as a string plus Spark's corrupt
record column: a malformed line is kept whole, and type coercion happens in `clean`, where a bad
value is rejected naming its column. Nothing is dropped here.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote, urlparse

from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException
from pyspark.errors.exceptions.captured import CapturedException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from sparkprep import RESERVED_COLUMNS
from sparkprep.config import ColumnsConfig, InputConfig
from sparkprep.errors import InputError

log = logging.getLogger(__name__)

#: Internal columns: they never reach the output (underscore = not part of the data contract).
CORRUPT = "_sp_corrupt"
SOURCE_FILE = "_sp_source_file"
TEXT_FORMATS = ("csv", "json")


def read_input(spark: SparkSession, config: InputConfig, version: int | None = None) -> DataFrame:
    """The raw input with `_sp_source_file` (and `_sp_corrupt` for text formats).

    A Delta input is read at `version` (default: the latest, pinned once at this call)."""
    reader = spark.read.format(config.format).options(**config.options)
    if config.on_unreadable_file == "quarantine":
        reader = reader.option("ignoreCorruptFiles", "true")  # listed by `unread_files` afterwards
    if config.format in TEXT_FORMATS:
        reader = reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
        if config.schema_:
            fields = [StructField(name, StringType()) for name in config.schema_]
            reader = reader.schema(StructType([*fields, StructField(CORRUPT, StringType())]))
        elif config.format == "csv":
            reader = reader.option("inferSchema", "true").option("header", config.options.get("header", "true"))
    if config.format == "delta":
        if len(config.paths) != 1:
            raise InputError(f"input.paths: a Delta input is one table, got {len(config.paths)} paths")
        # Pin the version once, so every pass of the run reads the same snapshot.
        reader = reader.option("versionAsOf", input_version(spark, config) if version is None else version)
    try:
        df = reader.load(config.paths)
    except AnalysisException as exc:
        raise InputError(_explain_read_failure(config, exc)) from None
    except (CapturedException, Py4JJavaError) as exc:
        raise InputError(f"cannot read {config.paths} as {config.format}: {spark_error_summary(exc)}") from None
    if config.format in TEXT_FORMATS and CORRUPT not in df.columns:
        df = df.withColumn(CORRUPT, F.lit(None).cast("string"))
    return df.withColumn(SOURCE_FILE, F.col("_metadata.file_path"))


def unread_files(raw: DataFrame, read: DataFrame) -> list[str]:
    """Input files of `raw` (from its file index, no data read) that gave no row to `read` (its
    rows, with `_sp_source_file`), ignoring empty files: with `ignoreCorruptFiles`, these are
    the files Spark skipped. (A file cut part-way may yield the rows before the damage; Spark
    does not report that, so only a whole unreadable file is caught here.)"""
    def path(uri: str) -> str:
        return unquote(urlparse(uri).path).rstrip("/")

    seen = {path(r[0]) for r in read.select(SOURCE_FILE).distinct().collect() if r[0]}
    jvm = raw.sparkSession._jvm
    conf = raw.sparkSession._jsc.hadoopConfiguration()
    unread = []
    for uri in raw.inputFiles():
        if path(uri) not in seen:
            hadoop_path = jvm.org.apache.hadoop.fs.Path(uri)
            if hadoop_path.getFileSystem(conf).getFileStatus(hadoop_path).getLen() > 0:
                unread.append(uri)
    return sorted(unread)


def input_version(spark: SparkSession, config: InputConfig) -> int | None:
    """The Delta table version a run reads (None for file formats)."""
    if config.format != "delta":
        return None
    from sparkprep.write import delta_version

    try:
        return delta_version(spark, config.paths[0])
    except (AnalysisException, CapturedException, Py4JJavaError) as exc:
        raise InputError(f"{config.paths[0]} is not a readable Delta table: {spark_error_summary(exc)}") from None


def check_columns(df: DataFrame, columns: ColumnsConfig, source: str) -> DataFrame:
    """Apply renames, then fail early on reserved names and on configured columns that are absent."""
    for old, new in columns.rename.items():
        if old not in df.columns:
            raise InputError(f"columns.rename: input column {old!r} does not exist in {source}")
        df = df.withColumnRenamed(old, new)
    present = [c for c in df.columns if not c.startswith("_sp_")]
    clash = sorted(set(present) & set(RESERVED_COLUMNS))
    if clash:
        raise InputError(
            f"input column(s) {clash} in {source} use names reserved for the output "
            f"({', '.join(RESERVED_COLUMNS)}); rename them with columns.rename, e.g. --set columns.rename.{clash[0]}=src_{clash[0]}")
    wanted = {"columns.label": [columns.label], "columns.numeric": columns.numeric,
              "columns.categorical": columns.categorical, "columns.array": columns.array,
              "columns.text": columns.text}
    for key, names in wanted.items():
        missing = [n for n in names if n not in present]
        if missing:
            raise InputError(f"{key}: column(s) {missing} not found in {source}; "
                             f"the input has: {', '.join(present)}")
    return df


def spark_error_summary(exc: Exception) -> str:
    """The first line of what the JVM said (it names the file), without the stack trace."""
    text = exc.java_exception.getMessage() if isinstance(exc, Py4JJavaError) else str(exc)
    return (str(text).strip().splitlines() or [type(exc).__name__])[0][:600]


def _explain_read_failure(config: InputConfig, exc: AnalysisException) -> str:
    condition = exc.getCondition() or ""
    if "PATH_NOT_FOUND" in condition:
        return f"input path does not exist: {exc.getMessageParameters().get('path', config.paths)}"
    first = str(exc).strip().splitlines()[0]
    return f"cannot read {config.paths} as {config.format}: {first}"
