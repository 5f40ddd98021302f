"""`profile`: per-column statistics of a DataFrame in ONE scan of the input (format: docs/stats.md).

Two paths fold the rows into the same mergeable state (`PartialProfile`, numpy/pyarrow,
`sparkprep.quality.state`), fed the same thing by both: per chunk of about CHUNK_ROWS rows, a
float64 matrix of the numeric values and array sizes with validity masks, and the categorical/text
columns as Arrow strings. `profile` picks one, and logs at INFO which and why:
- Parquet path (`sparkprep.io.arrow_tasks`), when `df` is the bare read of local (`file:`) Parquet
  files or of a Delta table and every profiled column converts in Arrow exactly as in Spark (ints,
  float, double, string, boolean, arrays, INT64 timestamps, and dates/timestamp_ntz in a UTC
  session; an integer, string or boolean label; the full list and what falls back is in that module). The driver plans pieces of files (row-group ranges, about
  `spark.sql.files.maxPartitionBytes` each) from the footers; `sc.parallelize(tasks)` runs one
  Python task per list of pieces, which reads the profiled columns itself with pyarrow. Spark's
  conversion of its columnar Parquet batches to rows and back to Arrow (more than the scan itself
  costs) is skipped. hdfs:// and s3a:// inputs take the Spark path (no libhdfs for pyarrow here;
  s3a would need Hadoop's credentials in the executors), as do a cast, rename, filter or any
  other computation in the plan, INT96 or legacy-calendar timestamps, decimals, a float label and
  partitioned input.
- Spark path, for everything else: one Spark projection gives every profiled column a simple type
  (numeric -> double, with dates/timestamps as epoch seconds, and array -> its size, all in ONE
  array<double> per row, which Spark hands to Arrow about twice as fast as as many columns;
  categorical and text -> string), then `mapInArrow` folds each partition's Arrow batches into
  ONE `PartialProfile` and yields it pickled as one row.
Either way `arrow_tasks.tree_merge` merges the partials on the executors (a tree level, for more
than four partitions) and the driver merges the last ones (about sqrt(partitions) of them, each of
bounded size: no row-sized state), then turns the result into `ColumnStats` (top-k, quantiles and
histograms from the bucket counts).

Jobs: `profile` runs exactly ONE Spark job on either path (the tree merge's final collect; its
tree level is a shuffle stage of that job), which reads the input once; `tests/etl/test_profile.py`
counts both, on both paths. (A Delta input's snapshot is listed when it is
read, before `profile`.) An unreadable Parquet file is an InputError naming it, on either path.

What is exact and mergeable (so stats.json does not depend on partitioning, row order, how files
are split into tasks, or the path: `tests/etl/test_profile_files.py` compares the two): integer
counts (nulls, NaN, inf, DDSketch bucket counts, string/array length counts, categorical value
counts below CATEGORICAL_CAP), min/max, HyperLogLog registers (merged by max). Quantiles and
histograms come from the bucket counts, never from an order-dependent sketch (KLL, GK). The
moments of numeric columns are per-chunk two-pass sums combined with Chan's formula: they differ
across partitionings in the last bits only, so stats round floats to FLOAT_DIGITS significant digits.
"""

from __future__ import annotations

import functools
import logging
import math
import pickle
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from sparkprep.contract import INTERNAL_PREFIX
from sparkprep.quality.kernels import ALPHA, GAMMA, HLL_RSE
from sparkprep.quality.state import (CATEGORICAL_CAP, HLL_P, CategoricalState, LengthState, NumericState, PartialProfile,
                                     TextState, bucket_key, hll_estimate)
from sparkprep.io.arrow_tasks import (CHUNK_ROWS, NUMBER_KINDS, TIME_TYPES, ParquetSource, Piece, chunk_numbers, plan,
                                     read_chunks, run_tasks, tree_merge)

log = logging.getLogger(__name__)

STATS_FORMAT_VERSION = 1
FLOAT_DIGITS = 12
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
HISTOGRAM_BINS = 20

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)


@dataclass(frozen=True)
class ColumnStats:
    """Statistics of one column; fields that do not apply to its kind stay empty/None."""

    name: str
    kind: str  # numeric | categorical | text | array
    type: str
    count: int
    nulls: int
    nan: int = 0
    inf: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None
    distinct: int | None = None
    distinct_exact: bool = False
    quantiles: dict[str, float] = field(default_factory=dict)
    histogram: dict[str, list] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=dict)
    top: list[list] = field(default_factory=list)
    length: dict[str, Any] = field(default_factory=dict)
    is_label: bool = False


@dataclass(frozen=True)
class Profile:
    """The statistics of one dataset (one batch)."""

    rows: int
    columns: dict[str, ColumnStats]
    version: int = STATS_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "rows": self.rows, "sketch": {
                    "quantiles": f"DDSketch relative accuracy {ALPHA}",
                    "distinct": f"HyperLogLog p={HLL_P} per column, rsd {HLL_RSE:.4f}; exact for categorical "
                                f"up to {CATEGORICAL_CAP} distinct values (distinct_exact)"},
                "columns": {n: _round(vars(c)) for n, c in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        """A stats.json document read back (another `version` is refused).

        Args:
            data: the parsed document.
        """
        if data.get("version") != STATS_FORMAT_VERSION:
            raise ValueError(f"stats format version {data.get('version')!r} is not {STATS_FORMAT_VERSION}")
        return cls(rows=data["rows"], columns={n: ColumnStats(**c) for n, c in data["columns"].items()})


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return value if not math.isfinite(value) or value == 0 else float(f"{value:.{FLOAT_DIGITS}g}")
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value


def column_kinds(df: DataFrame, label: str | None = None, text: tuple[str, ...] = ()) -> dict[str, str]:
    """The kind each column is profiled as, from its Spark type (`text` names free-text strings).

    Args:
        df: the DataFrame to profile.
        label: the label column, if any.
        text: the free-text columns.
    """
    kinds = {}
    for f in df.schema.fields:
        if f.name.startswith(INTERNAL_PREFIX):
            continue
        if f.name == label:
            kinds[f.name] = "categorical"
        elif isinstance(f.dataType, _NUMERIC + TIME_TYPES):
            kinds[f.name] = "numeric"
        elif isinstance(f.dataType, T.ArrayType):
            kinds[f.name] = "array"
        elif f.name in text:
            kinds[f.name] = "text"
        elif isinstance(f.dataType, (T.StringType, T.BooleanType)):
            kinds[f.name] = "categorical"
    return kinds


def _projections(kinds: dict[str, str], types: dict[str, T.DataType]) -> list[Column]:
    """The columns as PartialProfile.add reads them: one array<double> of the numeric values and
    array sizes (dates/timestamps as epoch seconds; a null stays a null element), then each
    categorical/text column as a string."""
    def number(name: str, kind: str) -> Column:
        c = F.col(f"`{name}`")
        if kind == "array":
            return F.when(c.isNotNull(), F.size(c)).cast("double")
        return (F.unix_micros(c.cast("timestamp")) / 1e6) if isinstance(types[name], TIME_TYPES) else c.cast("double")

    numbers = [number(n, k) for n, k in kinds.items() if k in NUMBER_KINDS]
    strings = [F.col(f"`{n}`").cast("string").alias(f"_s{i}") for i, (n, k) in enumerate(kinds.items())
               if k not in NUMBER_KINDS]
    return ([F.array(*numbers).alias("_numbers")] if numbers else []) + strings


def add_projected(partial: PartialProfile, table: pa.Table) -> None:
    """Fold a table of `_projections`' layout: the numbers of each row as one list<double>, then
    the strings. One transposing copy makes each column's values contiguous for the passes over them.

    Args:
        partial: the partial profile to fold into.
        table: rows in `_projections`' layout.
    """
    n, rows = sum(k in NUMBER_KINDS for k in partial.kinds), table.num_rows
    numbers, valid = np.empty((0, rows)), []
    if n:
        flat = table.column(0).combine_chunks().flatten()
        numbers = flat.to_numpy(zero_copy_only=False).reshape(rows, n).T.copy()
        valid = list(flat.is_valid().to_numpy(zero_copy_only=False).reshape(rows, n).T.copy()) \
            if flat.null_count else [None] * n
    partial.add(rows, numbers, valid, [c.combine_chunks() for c in table.columns[1 if n else 0:]])


def _fold_partition(kinds: tuple[str, ...], batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow: all batches of one partition -> one row holding the pickled PartialProfile."""
    partial, chunk, rows = PartialProfile(kinds), [], 0
    for batch in batches:
        chunk.append(batch)
        rows += batch.num_rows
        if rows >= CHUNK_ROWS:
            add_projected(partial, pa.Table.from_batches(chunk))
            chunk, rows = [], 0
    if chunk:
        add_projected(partial, pa.Table.from_batches(chunk))
    yield pa.RecordBatch.from_arrays([pa.array([pickle.dumps(partial, protocol=5)], pa.binary())], names=["blob"])


def _spark_partials(df: DataFrame, kinds: dict[str, str]) -> PartialProfile:
    """The Spark path: project, fold each partition with mapInArrow, merge (one job)."""
    types = {f.name: f.dataType for f in df.schema.fields}
    order = tuple(kinds.values())
    partials = df.select(*_projections(kinds, types) or [F.lit(0).alias("_rows")]).mapInArrow(
        functools.partial(_fold_partition, order), "blob binary")
    return tree_merge(partials.rdd.map(lambda row: pickle.loads(row[0])), PartialProfile(order))


def profile(df: DataFrame, label: str | None = None, text: tuple[str, ...] = (), top_k: int = 1000) -> Profile:
    """Statistics of every column of `df` (internal `_sp_*` columns skipped) in one input scan
    and one Spark job, by the Parquet path when it applies (module docstring), else by Spark's.

    >>> stats = profile(spark.read.parquet("data/"), label="label")
    >>> stats.columns["num_0"].quantiles["0.5"]

    Args:
        df: the rows to profile.
        label: the label column, if any.
        text: the free-text columns.
        top_k: the most frequent values kept per categorical column.
    """
    kinds = column_kinds(df, label, text)
    types = {f.name: f.dataType for f in df.schema.fields}
    source, tasks, why = plan(df, kinds, label)
    if source is not None and tasks is not None:
        log.info("profile: Parquet path (pyarrow reads the files, %d tasks): %s", len(tasks), why)
        merged = run_tasks(df, tasks, functools.partial(_fold_files, source, CHUNK_ROWS), PartialProfile(source.kinds))
    else:
        log.info("profile: Spark path (mapInArrow over Spark's rows): %s", why)
        merged = _spark_partials(df, kinds)
    columns = {n: _column(n, kinds[n], types[n].simpleString(), state, merged.rows, n == label, top_k)
               for n, state in zip(kinds, merged.states)}
    return Profile(rows=merged.rows, columns=columns)


def _fold_files(source: ParquetSource, chunk_rows: int, task: list[Piece]) -> PartialProfile:
    """One task of the Parquet path: its pieces' rows, chunk by chunk, folded into one PartialProfile."""
    partial = PartialProfile(source.kinds)
    for piece in task:
        for batch in read_chunks(piece, source.columns, chunk_rows):
            partial.add(batch.num_rows, *chunk_numbers(batch, source))
    return partial


def _column(name: str, kind: str, dtype: str, state: Any, rows: int, is_label: bool, top_k: int) -> ColumnStats:
    base = dict(name=name, kind=kind, type=dtype, count=rows - state.nulls, nulls=state.nulls, is_label=is_label)
    if isinstance(state, CategoricalState):
        return ColumnStats(**base, top=[[v, n] for v, n in state.items()[:top_k]], distinct=state.distinct(),
                           distinct_exact=state.exact)
    if isinstance(state, NumericState):
        return ColumnStats(**base, **_numeric(state), distinct=hll_estimate(state.registers))
    return ColumnStats(**base, length=_lengths(state),
                       distinct=hll_estimate(state.registers) if isinstance(state, TextState) else None)


def _numeric(state: NumericState) -> dict[str, Any]:
    if not state.n:
        moments: dict[str, Any] = {"min": None, "max": None, "mean": None, "std": None}
    elif state.min == state.max:  # a constant: exactly, whatever the rounding of the sums
        moments = {"min": state.min, "max": state.max, "mean": state.min, "std": 0.0}
    else:
        moments = {"min": state.min, "max": state.max, "mean": state.mean,
                   "std": math.sqrt(max(state.m2, 0.0) / state.n)}
    codes, counts = state.buckets
    buckets = {bucket_key(int(c)): int(n) for c, n in zip(codes, counts)}  # code order is value order
    return {**moments, "nan": state.nan, "inf": state.inf, "buckets": buckets,
            "quantiles": quantiles(buckets, moments["min"], moments["max"]),
            "histogram": histogram(buckets, moments["min"], moments["max"])}


def _lengths(state: LengthState) -> dict[str, Any]:
    """min/max/mean/std and counts of the lengths, from the integer length counts (exact)."""
    lengths, counts = ([int(v) for v in a] for a in state.lengths)
    n = sum(counts)
    if not n:
        return {"min": None, "max": None, "mean": None, "std": None, "counts": {}}
    s1 = sum(v * c for v, c in zip(lengths, counts))
    s2 = sum(v * v * c for v, c in zip(lengths, counts))
    return {"min": float(lengths[0]), "max": float(lengths[-1]), "mean": s1 / n,
            "std": math.sqrt((n * s2 - s1 * s1) / (n * n)), "counts": {str(v): c for v, c in zip(lengths, counts)}}


def bucket_value(key: str) -> float:
    """The representative value of a DDSketch bucket key (within ALPHA of every value in it).

    Args:
        key: a stats.json bucket key.
    """
    if key == "0":
        return 0.0
    i = int(key[1:])
    v = GAMMA ** i * (2 / (GAMMA + 1))  # not 2 * γ^i: that overflows in the last bucket below 1.8e308
    return v if key[0] == "+" else -v


def quantiles(buckets: dict[str, int], lo: float | None, hi: float | None,
              qs: tuple[float, ...] = QUANTILES) -> dict[str, float]:
    """Quantiles from DDSketch bucket counts (buckets in value order), clamped to [min, max].

    Args:
        buckets: bucket key -> count.
        lo: the column's min.
        hi: its max.
        qs: the quantiles wanted.
    """
    total = sum(buckets.values())
    if not total or lo is None or hi is None:
        return {}
    out, seen, items = {}, 0, list(buckets.items())
    targets = iter(sorted(qs))
    q = next(targets)
    for key, count in items:
        seen += count
        while q is not None and seen > q * (total - 1):
            out[str(q)] = min(max(bucket_value(key), lo), hi)
            q = next(targets, None)
    return out


def histogram(buckets: dict[str, int], lo: float | None, hi: float | None, bins: int = HISTOGRAM_BINS) -> dict[str, list]:
    """Equal-width bins over [min, max]; each DDSketch bucket's count goes to the bin of its
    representative value (so bin edges are exact, membership within ALPHA).

    Args:
        buckets: bucket key -> count.
        lo: the column's min.
        hi: its max.
        bins: the number of bins.
    """
    if lo is None or hi is None or not buckets:
        return {}
    if hi == lo:
        return {"edges": [lo, hi], "counts": [sum(buckets.values())]}
    width = (hi - lo) / bins
    counts = [0] * bins
    for key, count in buckets.items():
        v = min(max(bucket_value(key), lo), hi)
        counts[min(int((v - lo) / width), bins - 1)] += count
    return {"edges": [lo + i * width for i in range(bins)] + [hi], "counts": counts}
