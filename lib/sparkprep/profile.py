"""`profile`: per-column statistics of a DataFrame in ONE scan of the input (format: docs/stats.md).

How one scan is enough: every row is unpivoted into one (column, key, value) entry per profiled
column and a single groupBy(column, key) aggregates them. The key is what makes the groups small
and the result exact and mergeable:
- numeric: the index of a DDSketch bucket (logarithmic buckets with relative accuracy ALPHA), or
  `nan`/`inf`/`-inf`; per bucket Spark keeps count, mean, var_pop, min, max and a HyperLogLog++ distinct estimate; the
  buckets partition the values, so the column's distinct count is their sum (HLL++ registers are
  merged by max, so each estimate is independent of order; DataSketches' HLL union is not).
  Moments are combined on the driver (Chan's parallel formula, buckets in value order); quantiles
  and histograms come from the bucket counts, which are exact integers, so they do not depend on
  partitioning or row order (unlike KLL or GK sketches, whose result depends on merge order).
- categorical/label: the value itself (exact frequencies; only the `top_k` most frequent travel
  to the driver, ranked inside Spark on the already-aggregated groups).
- text: the string length (length histogram) with an HLL++ estimate of distinct strings.
- array: the array length.
Groups are bounded by buckets x columns (a few thousand), never by rows. The grouped result is
persisted (it is small) and read twice (the groups, and the distinct count per categorical column),
so the input is scanned exactly once: `profile` runs two Spark jobs, and only the first reads it; `tests/etl/test_profile.py`
counts the reads.

Floating-point sums depend on the order Spark adds partial results, in the last bits; stats
round floats to FLOAT_DIGITS significant digits so that stats.json is identical for any
partitioning.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

log = logging.getLogger(__name__)

STATS_FORMAT_VERSION = 1
#: DDSketch relative accuracy: every quantile is within 1% of a true value of that rank.
ALPHA = 0.01
_GAMMA = (1 + ALPHA) / (1 - ALPHA)
#: Values with |x| below this fall in the zero bucket.
_TINY = 1e-12
FLOAT_DIGITS = 12
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
HISTOGRAM_BINS = 20
#: HyperLogLog++ relative standard deviation asked of approx_count_distinct per bucket.
HLL_RSE = 0.02

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
_TIME = (T.DateType, T.TimestampType, T.TimestampNTZType)


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
                    "distinct": f"HLL++ per bucket, rsd {HLL_RSE}; exact for categorical"},
                "columns": {n: _round(vars(c)) for n, c in self.columns.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
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
    """The kind each column is profiled as, from its Spark type (`text` names free-text strings)."""
    kinds = {}
    for f in df.schema.fields:
        if f.name.startswith("_sp_"):
            continue
        if f.name == label:
            kinds[f.name] = "categorical"
        elif isinstance(f.dataType, _NUMERIC + _TIME):
            kinds[f.name] = "numeric"
        elif isinstance(f.dataType, T.ArrayType):
            kinds[f.name] = "array"
        elif f.name in text:
            kinds[f.name] = "text"
        elif isinstance(f.dataType, (T.StringType, T.BooleanType)):
            kinds[f.name] = "categorical"
    return kinds


def _bucket_key(x: F.Column) -> F.Column:
    """DDSketch bucket of a finite double as text ('+i', '-i', '0'); nan/inf/-inf by name."""
    index = F.ceil(F.log(F.abs(x)) / math.log(_GAMMA)).cast("string")
    return (F.when(F.isnan(x), F.lit("nan")).when(x == float("inf"), F.lit("inf"))
            .when(x == float("-inf"), F.lit("-inf")).when(F.abs(x) < _TINY, F.lit("0"))
            .when(x > 0, F.concat(F.lit("+"), index)).otherwise(F.concat(F.lit("-"), index)))


def _entry(name: str, kind: str, dtype: T.DataType) -> F.Column:
    """The raw entry of one column: a number (value or length) and/or a string. Kept minimal:
    the per-column expressions of 100+ columns share one generated method, so the key is
    computed once on the unpivoted entries instead (`_groups`)."""
    c = F.col(f"`{name}`")
    num = {"numeric": (F.unix_micros(c.cast("timestamp")) / 1e6) if isinstance(dtype, _TIME) else c.cast("double"),
           "array": F.size(c).cast("double"), "text": F.length(c).cast("double")}.get(kind, F.lit(None).cast("double"))
    text = c.cast("string") if kind in ("categorical", "text") else F.lit(None).cast("string")
    return F.struct(F.lit(name).alias("column"), F.lit(kind).alias("kind"), c.isNull().alias("null"),
                    num.alias("x"), text.alias("s"))


def _groups(df: DataFrame, kinds: dict[str, str]) -> DataFrame:
    types = {f.name: f.dataType for f in df.schema.fields}
    entries = df.select(F.inline(F.array(*[_entry(n, k, types[n]) for n, k in kinds.items()])))
    kind, x, s = F.col("kind"), F.col("x"), F.col("s")
    finite = ~F.isnan(x) & (F.abs(x) != float("inf"))
    keyed = entries.select(
        "column",
        F.when(~F.col("null"), F.when(kind == "numeric", _bucket_key(x))
               .when(kind == "categorical", s).otherwise(x.cast("long").cast("string"))).alias("key"),
        F.when(finite, x).alias("num"),
        # xxhash64(null) is a value (the seed): nulls must not count as a distinct value.
        F.when(~F.col("null"), F.when(kind == "numeric", F.xxhash64(x)).when(kind == "text", F.xxhash64(s)))
        .alias("hv"))
    return keyed.groupBy("column", "key").agg(
        F.count(F.lit(1)).alias("n"), F.avg("num").alias("mean"), F.var_pop("num").alias("m2n"),
        F.min("num").alias("min"), F.max("num").alias("max"),
        F.approx_count_distinct("hv", HLL_RSE).alias("distinct"))


def profile(df: DataFrame, label: str | None = None, text: tuple[str, ...] = (), top_k: int = 1000) -> Profile:
    """Statistics of every column of `df` (internal `_sp_*` columns skipped) in one input scan.

    >>> stats = profile(spark.read.parquet("data/"), label="label")
    >>> stats.columns["num_0"].quantiles["0.5"]
    """
    kinds = column_kinds(df, label, text)
    groups = _groups(df, kinds).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        categorical = [n for n, k in kinds.items() if k == "categorical"]
        rank = F.row_number().over(Window.partitionBy("column").orderBy(F.desc("n"), F.asc("key")))
        # Window over the aggregated groups (one row per distinct value), never over input rows.
        cat_distinct = (groups.where(F.col("column").isin(categorical) & F.col("key").isNotNull())
                    .groupBy("column").agg(F.count(F.lit(1)).alias("distinct")))
        kept = groups.where(~F.col("column").isin(categorical) | F.col("key").isNull()).unionByName(
            groups.where(F.col("column").isin(categorical) & F.col("key").isNotNull())
            .withColumn("r", rank).where(F.col("r") <= top_k).drop("r"))
        rows = kept.collect()
        exact_distinct = {r["column"]: int(r["distinct"]) for r in cat_distinct.collect()}
    finally:
        groups.unpersist()
    by_column: dict[str, list] = {n: [] for n in kinds}
    for r in rows:
        by_column[r["column"]].append(r)
    n_rows = sum(r["n"] for r in by_column[next(iter(kinds))]) if kinds else 0
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    columns = {n: _column(n, kinds[n], types[n], by_column[n], n_rows, exact_distinct.get(n, 0), n == label)
               for n in kinds}
    return Profile(rows=n_rows, columns=columns)


def _column(name: str, kind: str, dtype: str, groups: list, n_rows: int,
            exact_distinct: int, is_label: bool) -> ColumnStats:
    nulls = sum(g["n"] for g in groups if g["key"] is None)
    base = dict(name=name, kind=kind, type=dtype, count=n_rows - nulls, nulls=nulls, is_label=is_label)
    values = [g for g in groups if g["key"] is not None]
    # Buckets (and string lengths) partition the values: distinct counts add up across them.
    hll = sum(int(g["distinct"]) for g in values)
    if kind == "categorical":
        top = sorted(([g["key"], int(g["n"])] for g in values), key=lambda kv: (-kv[1], kv[0]))
        return ColumnStats(**base, distinct_exact=True, top=top, distinct=exact_distinct)
    if kind == "numeric":
        return ColumnStats(**base, **_numeric(values), distinct=hll)
    lengths = {g["key"]: int(g["n"]) for g in values}
    return ColumnStats(**base, length={**_moments(values), "counts": dict(sorted(lengths.items(), key=lambda kv: int(kv[0])))},
                       distinct=hll if kind == "text" else None)


def bucket_value(key: str) -> float:
    """The representative value of a DDSketch bucket key (within ALPHA of every value in it)."""
    if key == "0":
        return 0.0
    i = int(key[1:])
    v = 2 * _GAMMA ** i / (_GAMMA + 1)
    return v if key[0] == "+" else -v


def _moments(groups: list) -> dict[str, Any]:
    """count/mean/std/min/max of the finite values, merged bucket by bucket (Chan et al.)."""
    n, mean, m2 = 0, 0.0, 0.0
    finite = sorted((g for g in groups if g["mean"] is not None), key=lambda g: (g["min"], g["key"]))
    for g in finite:
        nb, mb, m2b = int(g["n"]), float(g["mean"]), float(g["m2n"]) * int(g["n"])
        delta, total = mb - mean, n + nb
        mean += delta * nb / total
        m2 += m2b + delta * delta * n * nb / total
        n = total
    if not n:
        return {"min": None, "max": None, "mean": None, "std": None}
    return {"min": min(g["min"] for g in finite), "max": max(g["max"] for g in finite),
            "mean": mean, "std": math.sqrt(max(m2, 0.0) / n)}


def _numeric(groups: list) -> dict[str, Any]:
    special = {g["key"]: int(g["n"]) for g in groups if g["key"] in ("nan", "inf", "-inf")}
    finite = [g for g in groups if g["key"] not in special]
    moments = _moments(finite)
    buckets = dict(sorted(((g["key"], int(g["n"])) for g in finite), key=lambda kv: bucket_value(kv[0])))
    return {**moments, "nan": special.get("nan", 0), "inf": special.get("inf", 0) + special.get("-inf", 0),
            "buckets": buckets, "quantiles": quantiles(buckets, moments["min"], moments["max"]),
            "histogram": histogram(buckets, moments["min"], moments["max"])}


def quantiles(buckets: dict[str, int], lo: float | None, hi: float | None,
              qs: tuple[float, ...] = QUANTILES) -> dict[str, float]:
    """Quantiles from DDSketch bucket counts (buckets in value order), clamped to [min, max]."""
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
    representative value (so bin edges are exact, membership within ALPHA)."""
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
