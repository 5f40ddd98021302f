"""The pyarrow task engine: Parquet files read by pyarrow in Python tasks, no Spark rows (the
profile's fast path, quality/profile.py, and the normalise fit's, stages/normalise/parquet.py).

Spark 4.2 hands Python only rows (`mapInArrow` converts its columnar Parquet batches to rows and
back to Arrow, which costs more than the scan itself). When the DataFrame to profile is the bare
read of local Parquet files (or of a Delta table, whose snapshot is a list of Parquet files), this
module plans *pieces of files* on the driver instead: the file list (`df.inputFiles()`, for Delta
the pinned snapshot's files only) and the Parquet footers give each file's row groups and their
compressed sizes; files are packed, and a file larger than a split cut by row-group ranges, into
tasks of about Spark's own split size (`spark.sql.files.maxPartitionBytes`, `openCostInBytes`,
the default parallelism: `FilePartition.maxSplitBytes`). ONE Spark job, `sc.parallelize(tasks,
len(tasks))` + `tree_merge`, runs the tasks; each reads only the profiled columns, row group by
row group in chunks of CHUNK_ROWS rows, converts them as Spark's projection
would (`profile._projections`), and the profile folds them into the same `PartialProfile`.

It applies only when it gives Spark's numbers exactly; `parquet_source` says why not otherwise:
- the optimized plan is a `LogicalRelation` over Parquet (Spark's or Delta's format), under at
  most a projection of its columns (internal `_sp_*` columns, such as ingest's source file, may be
  computed: they are not profiled): no filter, join, cast or rename;
- no `ignoreCorruptFiles`/`ignoreMissingFiles` (Spark would skip files), no partition columns
  (their values are in directory names, not in the files); Delta: no column mapping (physical
  names differ), no deletion vectors (rows deleted outside the files), no change-data feed;
- every file is a local `file:` path: pyarrow cannot reach hdfs:// here (no libhdfs), and s3a://
  would need Hadoop's credentials in the executors;
- every profiled column is int8/16/32/64, float, double (-> double: numpy's int64 -> float64
  rounds to nearest as Java's cast does), string, boolean (-> "true"/"false"), an array (-> its
  size), a timestamp, timestamp_ntz or date (-> `unix_micros(cast(c as timestamp)) / 1e6`: int64
  epoch micros, to double, one division, as Spark); the label a string, boolean or integer (-> its
  decimal digits, as Spark's cast); no column name with a dot (pyarrow reads "a.b" as a nested path);
- a date or timestamp_ntz only when the session time zone is UTC (Spark's cast to timestamp puts
  them at local time in that zone; a timestamp is an instant, any zone);
- every file's footer has every profiled column under its exact name with exactly that Arrow type
  (a file written with another type is converted by Spark: left to Spark): a date is date32, a
  timestamp INT64 millis or micros with a time zone (isAdjustedToUTC), a timestamp_ntz without;
  INT96 timestamps (pyarrow: timestamp[ns], which wraps outside 1677-2262) and nanos are left to Spark;
- with a date or timestamp column, no file Spark would rebase from the hybrid Julian calendar
  (`DataSourceUtils.datetimeRebaseSpec`): none written by Spark before 3.0 or carrying its
  `org.apache.spark.legacyDateTime`/`legacyINT96` footer keys, and files of other writers only
  under the CORRECTED read mode (`datetimeRebaseMode` option, else
  `spark.sql.parquet.datetimeRebaseModeInRead`; LEGACY rebases, EXCEPTION may fail).
Decimals, a float label and anything else go to the Spark path.
"""

from __future__ import annotations

import functools
import math
import re
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from py4j.protocol import Py4JJavaError
from pyspark.errors.exceptions.captured import CapturedException
from pyspark import RDD
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparkprep.errors import InputError

#: Arrow batches (Spark sends 10,000 rows each; the Parquet path reads batches of this size) are
#: folded in chunks of this many rows, so the numpy calls amortise their fixed costs yet their
#: arrays stay in cache (measured: 32k rows beat 10k and 64k+).
CHUNK_ROWS = 1 << 15

#: Spark type -> the Arrow types pyarrow reads its Parquet column as (arrays: checked apart).
_ARROW = {T.ByteType(): (pa.int8(),), T.ShortType(): (pa.int16(),), T.IntegerType(): (pa.int32(),),
          T.LongType(): (pa.int64(),), T.FloatType(): (pa.float32(),), T.DoubleType(): (pa.float64(),),
          T.StringType(): (pa.string(), pa.large_string()), T.BooleanType(): (pa.bool_(),),
          T.DateType(): (pa.date32(),)}
#: Spark types numbered as epoch seconds (`profile._projections`).
TIME_TYPES = (T.DateType, T.TimestampType, T.TimestampNTZType)
#: Kinds whose values a task reads as numbers (numeric: the value, array: its size); the others as strings.
NUMBER_KINDS = ("numeric", "array")
#: Timestamp units whose epoch micros pyarrow gives exactly (ns overflows int64 outside 1677-2262).
_TIME_UNITS = ("ms", "us")
#: Session time zones that are UTC at every instant: there `cast(date|timestamp_ntz as timestamp)`
#: adds no offset.
_UTC_ZONES = ("UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z", "+00:00")
#: Footer keys of files Spark wrote in the hybrid Julian calendar: Spark rebases their values.
_SPARK_VERSION = "org.apache.spark.version"
_LEGACY_KEYS = ("org.apache.spark.legacyDateTime", "org.apache.spark.legacyINT96")
_LABEL_TYPES = (T.ByteType(), T.ShortType(), T.IntegerType(), T.LongType(), T.StringType(), T.BooleanType())
_PARQUET_FORMATS = ("org.apache.spark.sql.execution.datasources.parquet.ParquetFileFormat",
                    "org.apache.spark.sql.delta.DeltaParquetFileFormat")
#: How a task's unreadable file travels from the executor's traceback to the driver's InputError.
_UNREADABLE = "sparkprep-unreadable-parquet"
_UNREADABLE_RE = re.compile(_UNREADABLE + r"\[(.*?)\]: (.*)")


@dataclass(frozen=True)
class Piece:
    """Row groups `row_groups` of the local Parquet file `path`, and their compressed bytes."""

    path: str
    row_groups: tuple[int, ...]
    size: int


@dataclass(frozen=True)
class ParquetSource:
    """The local Parquet files a DataFrame reads and the profiled columns' kinds, in kinds order."""

    files: tuple[str, ...]
    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    #: Spark's datetime rebase mode for files without a Spark version (None: no date/timestamp column).
    rebase_mode: str | None = None


def _unsupported_type(name: str, dtype: T.DataType, is_label: bool, zone: str) -> str | None:
    if "." in name:
        return f"column {name!r} has a dot in its name"
    if is_label:
        return None if dtype in _LABEL_TYPES else f"label {name!r} is {dtype.simpleString()}"
    if isinstance(dtype, (T.DateType, T.TimestampNTZType)) and zone not in _UTC_ZONES:
        return f"column {name!r} is {dtype.simpleString()}, cast to timestamp in the session time zone {zone}, not UTC"
    if dtype in _ARROW or isinstance(dtype, (T.ArrayType, T.TimestampType, T.TimestampNTZType)):
        return None
    return f"column {name!r} is {dtype.simpleString()}"


def _relation(df: DataFrame, columns: tuple[str, ...]) -> tuple[object | None, str]:
    """The HadoopFsRelation `df` reads with nothing but a projection of its profiled columns."""
    plan = df._jdf.queryExecution().optimizedPlan()
    while plan.getClass().getSimpleName() == "Project":
        projected = plan.projectList()
        for i in range(projected.size()):
            e = projected.apply(i)
            if e.name() in columns and e.getClass().getSimpleName() != "AttributeReference":
                return None, f"column {e.name()!r} is computed ({e.toString()[:80]}), not read as stored"
        plan = plan.child()
    if plan.getClass().getSimpleName() != "LogicalRelation" or \
            plan.relation().getClass().getSimpleName() != "HadoopFsRelation":
        return None, f"the DataFrame is not a bare file read (its plan has {plan.nodeName()})"
    return plan.relation(), ""


def _relation_problem(df: DataFrame, relation: object) -> str | None:
    fmt = relation.fileFormat()
    if fmt.getClass().getName() not in _PARQUET_FORMATS:
        return f"the input format is {fmt.toString()}, not Parquet or Delta"
    options = relation.options()
    for option in ("ignoreCorruptFiles", "ignoreMissingFiles"):
        conf = df.sparkSession.conf.get(f"spark.sql.files.{option}", "false")
        if options.get(option).isDefined() or conf.lower() == "true":
            return f"{option} is set (Spark skips files there)"
    if relation.partitionSchema().size():
        return "the input is partitioned (partition values are in directory names, not in the files)"
    if fmt.getClass().getSimpleName() == "DeltaParquetFileFormat":
        if fmt.columnMappingMode().toString() != "NoMapping":
            return "the Delta table uses column mapping"
        if fmt.isCDCRead() or fmt.protocol().readerFeatureNames().contains("deletionVectors"):
            return "the Delta table supports deletion vectors (or this is a change-data read)"
    return None


def _local_path(uri: str) -> str | None:
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme == "file" and "%" not in uri else None


def parquet_source(df: DataFrame, kinds: dict[str, str], label: str | None) -> tuple[ParquetSource | None, str]:
    """The files and columns to profile `df` from with pyarrow, or None and why not (the
    conditions in the module docstring; footers are checked by `plan_pieces`).

    Args:
        df: the DataFrame to profile.
        kinds: the kind each profiled column is read as.
        label: the label column, if any.
    """
    types = {f.name: f.dataType for f in df.schema.fields}
    zone = df.sparkSession.conf.get("spark.sql.session.timeZone")
    for name in kinds:
        problem = _unsupported_type(name, types[name], name == label, zone)
        if problem:
            return None, problem + " (its Arrow conversion may differ from Spark's)"
    relation, problem = _relation(df, tuple(kinds))
    problem = problem or _relation_problem(df, relation)
    if problem:
        return None, problem
    uris = df.inputFiles()
    files = [_local_path(u) for u in uris]
    if None in files:
        return None, f"{uris[files.index(None)]} is not a local file: path pyarrow can read"
    rebase = None
    if any(isinstance(types[n], TIME_TYPES) for n in kinds):  # a read option overrides the conf, as in ParquetOptions
        option = relation.options().get("datetimeRebaseMode")
        rebase = (option.get() if option.isDefined() else
                  df.sparkSession.conf.get("spark.sql.parquet.datetimeRebaseModeInRead")).upper()
    return ParquetSource(tuple(files), tuple(kinds), tuple(kinds.values()), rebase), f"{len(files)} local Parquet files"


def _footer(path: str) -> pq.FileMetaData:
    try:
        return pq.read_metadata(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read Parquet file {path}: {exc}; replace or remove it") from None


def _type_problem(path: str, meta: pq.FileMetaData, schema: pa.Schema, name: str, dtype: T.DataType) -> str | None:
    index = schema.get_field_index(name)
    if index < 0:
        return f"{path} has no column {name!r}"
    arrow = schema.field(index).type
    if isinstance(dtype, T.ArrayType):
        fits = pa.types.is_list(arrow) or pa.types.is_large_list(arrow)
    elif isinstance(dtype, (T.TimestampType, T.TimestampNTZType)):
        # INT64 micros/millis, UTC instants (isAdjustedToUTC) for timestamp, local ones for _ntz.
        # INT96 (pyarrow: timestamp[ns], which wraps outside 1677-2262) is left to Spark.
        physical = next(meta.schema.column(i).physical_type for i in range(meta.num_columns)
                        if meta.schema.column(i).path == name)
        fits = pa.types.is_timestamp(arrow) and arrow.unit in _TIME_UNITS and physical == "INT64" and \
            (arrow.tz is None) == isinstance(dtype, T.TimestampNTZType)
    else:
        fits = arrow in _ARROW.get(dtype, ())
    return None if fits else f"{path} stores {name!r} as {arrow}, Spark reads {dtype.simpleString()}"


def _calendar_problem(path: str, meta: pq.FileMetaData, rebase_mode: str) -> str | None:
    """Why Spark may rebase (or reject) the file's dates and timestamps, as
    `DataSourceUtils.datetimeRebaseSpec` decides: a file written by Spark before 3.0 or in its
    LEGACY mode is in the hybrid Julian calendar; one without a Spark version follows the mode."""
    keys = meta.metadata or {}
    version = keys.get(_SPARK_VERSION.encode())
    if version is not None and (version.decode() < "3.0.0" or any(k.encode() in keys for k in _LEGACY_KEYS)):
        return f"{path} has dates/timestamps in Spark's legacy hybrid calendar (Spark rebases them)"
    if version is None and rebase_mode != "CORRECTED":
        return f"{path} was not written by Spark and the datetime rebase mode is {rebase_mode} (Spark may rebase)"
    return None


def plan_pieces(df: DataFrame, source: ParquetSource) -> tuple[list[list[Piece]] | None, str]:
    """Tasks of file pieces of about Spark's split size, or None and why (a footer whose column
    or type is not the DataFrame's). Footers are read in parallel threads (I/O bound).

    Args:
        df: the DataFrame read from the files.
        source: `parquet_source`'s files and columns.
    """
    with ThreadPoolExecutor(max_workers=8) as pool:
        footers = list(pool.map(_footer, source.files))
    types = {f.name: f.dataType for f in df.schema.fields}
    # Spark's own typed values of its size settings ("128m", "1k", ...), as its file scan reads them.
    sql = df.sparkSession._jsparkSession.sessionState().conf()
    pieces: list[Piece] = []
    sizes = [[sum(rg.column(c).total_compressed_size for c in range(rg.num_columns))
              for rg in (meta.row_group(i) for i in range(meta.num_row_groups))] for meta in footers]
    open_cost = int(sql.filesOpenCostInBytes())
    total = sum(sum(s) + open_cost for s in sizes)
    max_split = min(int(sql.filesMaxPartitionBytes()),
                    max(open_cost, total // max(1, df.sparkSession.sparkContext.defaultParallelism)))
    for path, meta, groups in zip(source.files, footers, sizes):
        schema = meta.schema.to_arrow_schema()
        problem = _calendar_problem(path, meta, source.rebase_mode) if source.rebase_mode else None
        for name in source.columns:
            problem = problem or _type_problem(path, meta, schema, name, types[name])
        if problem:
            return None, problem
        start, size = 0, 0
        for i, s in enumerate(groups):
            if size and size + s > max_split:  # a file larger than a split: cut between row groups
                pieces.append(Piece(path, tuple(range(start, i)), size))
                start, size = i, 0
            size += s
        if groups:
            pieces.append(Piece(path, tuple(range(start, len(groups))), size))
    return _pack(pieces, max_split, open_cost), f"{len(pieces)} pieces, splits of {max_split} bytes"


def plan(df: DataFrame, kinds: dict[str, str],
         label: str | None) -> tuple[ParquetSource | None, list[list[Piece]] | None, str]:
    """The Parquet path's source and tasks for profiling `df`, or None for them and why not.

    Args:
        df: the DataFrame to profile.
        kinds: the kind each profiled column is read as.
        label: the label column, if any.
    """
    source, why = parquet_source(df, kinds, label)
    if source is None:
        return None, None, why
    tasks, detail = plan_pieces(df, source)
    return source, tasks, f"{why}, {detail}"


def _pack(pieces: list[Piece], max_split: int, open_cost: int) -> list[list[Piece]]:
    """Spark's packing of file splits: largest first, a task closes when the next piece would
    take it past max_split (each piece also costs open_cost)."""
    tasks: list[list[Piece]] = []
    current, size = [], 0
    for piece in sorted(pieces, key=lambda p: (-p.size, p.path, p.row_groups)):
        if current and size + piece.size > max_split:
            tasks.append(current)
            current, size = [], 0
        current.append(piece)
        size += piece.size + open_cost
    return tasks + ([current] if current else [])


def chunk_numbers(batch: pa.RecordBatch, source: ParquetSource) -> tuple[list[np.ndarray], list, list[pa.Array]]:
    """A batch of the profiled columns (kinds order) as `PartialProfile.add` reads it: the
    numbers as Spark's projection casts them, the strings as Spark's cast to string writes them.

    Args:
        batch: rows of the profiled columns.
        source: the columns' kinds and Spark types.
    """
    numbers, valid, strings = [], [], []
    for name, kind in zip(source.columns, source.kinds):
        column = batch.column(name)  # by name: the batch has the file's column order
        if kind not in NUMBER_KINDS:
            strings.append(column if column.type == pa.string() else column.cast(pa.string()))
            continue
        if column.type == pa.float64() and column.buffers()[1] is not None:
            values, ok = _doubles(column)
        else:
            time = pa.types.is_timestamp(column.type) or pa.types.is_date32(column.type)
            if kind == "array":
                column = pc.list_value_length(column)
            elif time:
                column = _epoch_micros(column)
            ok = column.is_valid().to_numpy(zero_copy_only=False) if column.null_count else None
            values = (pc.fill_null(column, 0) if column.null_count else column).to_numpy(zero_copy_only=False)
            # Spark's unix_micros(...) / 1e6: the long to double (nearest, as numpy), then one division.
            values = values.astype(np.float64) / 1e6 if time else values.astype(np.float64, copy=False)
        numbers.append(values)
        valid.append(ok)
    return numbers, valid, strings


def _doubles(column: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """A double column's values in place (a null's slot holds whatever the file had: readers
    skip it) and its validity as booleans (None without nulls): no copy, no fill."""
    bitmap, data = column.buffers()
    values = np.frombuffer(data, np.float64, count=len(column), offset=column.offset * 8)
    if not column.null_count:
        return values, None
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), count=column.offset + len(column), bitorder="little")
    return values, bits[column.offset:].view(bool)


def _epoch_micros(column: pa.Array) -> pa.Array:
    """A date32 or timestamp[ms|us] column as int64 epoch microseconds: Spark's
    `unix_micros(cast(c as timestamp))` in a UTC session (overflow fails, as Spark's multiplyExact)."""
    if pa.types.is_date32(column.type):
        return pc.multiply_checked(column.cast(pa.int32()).cast(pa.int64()), 86_400_000_000)
    micros = column.cast(pa.int64())
    return pc.multiply_checked(micros, 1000) if column.type.unit == "ms" else micros


#: A row group whose read columns take at most this many bytes uncompressed is read whole and cut
#: into chunks: pyarrow's batch reader costs 2-4x the CPU per row (0.5-1.3 s against 0.3 s per 1M
#: rows x 52 columns here). Larger ones are read batch by batch, which bounds the task's memory.
WHOLE_ROW_GROUP_BYTES = 256 << 20


def read_chunks(piece: Piece, columns: tuple[str, ...], chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The `columns` of a piece's rows in batches of at most `chunk_rows` rows, row group by row
    group. A file that cannot be read raises `read_failure`.

    Args:
        piece: a file's row groups.
        columns: the columns to read.
        chunk_rows: the most rows per batch.
    """
    try:
        reader = pq.ParquetFile(piece.path)
        meta = reader.metadata
        for i in piece.row_groups:
            group = meta.row_group(i)
            size = sum(group.column(j).total_uncompressed_size for j in range(group.num_columns)
                       if group.column(j).path_in_schema.split(".")[0] in columns)
            if size <= WHOLE_ROW_GROUP_BYTES:
                yield from reader.read_row_group(i, columns=list(columns), use_threads=False).to_batches(chunk_rows)
            else:
                yield from reader.iter_batches(batch_size=chunk_rows, row_groups=[i], columns=list(columns),
                                               use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise read_failure(piece.path, exc) from None


def read_failure(path: str, error: Exception) -> RuntimeError:
    """What a task raises for a file it cannot read: `run_tasks` finds the file in it.

    Args:
        path: the file.
        error: what reading it raised.
    """
    message = str(error).replace("\n", " ")
    return RuntimeError(f"{_UNREADABLE}[{path}]: {message}")


def _unreadable_file(error: Exception) -> InputError | None:
    """The InputError naming the file for a failed job whose task could not read it."""
    match = _UNREADABLE_RE.search(str(error))
    if match is None:
        return None
    return InputError(f"cannot read Parquet file {match[1]}: {match[2].strip()[:600]}; replace or remove it")


M = TypeVar("M", bound="Mergeable")


class Mergeable(Protocol):
    def merge(self: M, other: M) -> M:
        """Add `other` into this one and return it.

        Args:
            other: another partial of the same shape.
        """


def tree_merge(partials: RDD, zero: M) -> M:
    """The partials of an RDD (one or a few per partition) merged into `zero`, in a tree of two
    levels as `treeAggregate` builds one: about sqrt(n) reduce tasks each merge about sqrt(n)
    partials, and the driver merges those, so it never holds n of them.

    Not `treeAggregate` itself: its reduceByKey runs PySpark's ExternalMerger, which spills (pickles
    to disk, collects garbage) whenever the worker's RSS is above spark.python.worker.memory, and a
    worker that has read row groups with pyarrow always is: that cost 40% more Python CPU than the
    folding itself (5 GB profile: 23 against 17 s).

    Args:
        partials: an RDD of partials.
        zero: the empty partial they merge into.
    """
    merge = type(zero).merge
    n = partials.getNumPartitions()
    width = math.isqrt(n - 1) + 1 if n > 4 else 0  # ceil(sqrt(n))

    def merged(pairs: Iterator[tuple[int, M]]) -> Iterator[M]:
        values = (p for _, p in pairs)
        first = next(values, None)
        if first is not None:
            yield functools.reduce(merge, values, first)

    if width:
        partials = partials.mapPartitionsWithIndex(lambda i, it: ((i % width, p) for p in it)) \
            .partitionBy(width, lambda key: key).mapPartitions(merged)
    return functools.reduce(merge, partials.collect(), zero)


def run_tasks(df: DataFrame, tasks: list[list[Piece]], fold: Callable[[list[Piece]], M], zero: M) -> M:
    """ONE Spark job: `fold` each task's pieces in its own Spark task, merge the results into
    `zero` (`tree_merge`). A file a task cannot read is an InputError naming it.

    Args:
        df: the DataFrame the tasks read (its session runs the job).
        tasks: the pieces of each task.
        fold: what a task computes from its pieces.
        zero: the empty result the tasks' results merge into.
    """
    sc = df.sparkSession.sparkContext
    try:
        return tree_merge(sc.parallelize(tasks, max(1, len(tasks))).map(fold), zero)
    except (CapturedException, Py4JJavaError) as exc:
        error = _unreadable_file(exc)
        if error is None:
            raise
        raise error from None
