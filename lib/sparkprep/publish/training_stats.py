"""The statistics `verify` recomputes from the training originals (publish/verify.py), in one Spark
pass: each partition's Arrow batches folded with numpy into per-fold partial statistics, merged on
the driver.

Per fold (the data's own fold values: verify's training set of fold f is every fold but f and the
holdout, so any set is a merge of folds) and per `Value` (a numeric column, or one position of an
array column, as a double the way Spark casts it, optionally on the symmetric log scale): the count,
mean and centred sum of squares (merged exactly, Chan et al.), min and max of its finite values,
and for given thresholds t the counts of values below t and at most t (the quantile rank checks).

Why not Spark's conditional aggregates, as before: one aggregate per (set, column, statistic)
evaluated its own set's condition on every row: 414 of them on the demo config, 7.3 µs per row,
two read+write floors at 1 GB. Here a row costs a few numpy operations per value, whatever the
number of sets and thresholds. Why not normalise/fit.py's code: the fit reads the files with
pyarrow and sums in its own compiled loop; this reads Spark's rows, so the writer and the verifier
share neither the reader nor the arithmetic.
"""

from __future__ import annotations

import functools
import math
import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkprep.contract import FOLD


@dataclass(frozen=True)
class Value:
    """What a statistic is taken over: column `column` cast to double (`element`: its 0-based
    position in an array column, null past the end), with `log1p`: sign(x)·log1p(|x|); only the
    finite results count."""

    column: str
    log1p: bool = False
    element: int | None = None


@dataclass(frozen=True)
class Summary:
    """A value's statistics over one training set; mean, std, min and max are None without values."""

    count: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    thresholds: np.ndarray
    below_counts: np.ndarray
    at_most_counts: np.ndarray

    def below(self, t: float) -> int:
        """How many values are < t (t one of the thresholds asked for)."""
        return int(self.below_counts[self._index(t)])

    def at_most(self, t: float) -> int:
        """How many values are <= t (t one of the thresholds asked for)."""
        return int(self.at_most_counts[self._index(t)])

    def _index(self, t: float) -> int:
        hits = np.flatnonzero((self.thresholds == t) | (np.isnan(self.thresholds) & math.isnan(t)))
        if not len(hits):
            raise KeyError(f"threshold {t!r} was not measured")
        return int(hits[0])


@dataclass
class _Part:
    """One value in one fold: count, mean, M2, min, max, and the threshold counts."""

    n: int
    mean: float
    m2: float
    low: float
    high: float
    below: np.ndarray
    at_most: np.ndarray

    def merge(self, other: "_Part") -> "_Part":
        n = self.n + other.n
        if not other.n:
            return self
        if not self.n:
            return other
        delta = other.mean - self.mean
        return _Part(n, self.mean + delta * other.n / n, self.m2 + other.m2 + delta * delta * self.n * other.n / n,
                     min(self.low, other.low), max(self.high, other.high),
                     self.below + other.below, self.at_most + other.at_most)


@dataclass
class TrainingStats:
    """Per-fold partial statistics (`measure`'s result; partitions merge into one)."""

    values: tuple[Value, ...]
    thresholds: tuple[np.ndarray, ...]
    rows: dict[int, int] = field(default_factory=dict)  # fold -> training originals
    parts: dict[int, list[_Part]] = field(default_factory=dict)  # fold -> one per value

    def merge(self, other: "TrainingStats") -> "TrainingStats":
        for fold, n in other.rows.items():
            self.rows[fold] = self.rows.get(fold, 0) + n
            mine = self.parts.get(fold)
            self.parts[fold] = other.parts[fold] if mine is None else [a.merge(b) for a, b in zip(mine, other.parts[fold])]
        return self

    def _folds(self, fold: int | None) -> list[int]:
        """The folds of fold `fold`'s training set (None: the final set, every fold measured)."""
        return [f for f in self.rows if f != fold]

    def training_rows(self, fold: int | None) -> int:
        """Training originals of fold `fold` (None: the final set).

        Args:
            fold: the fold whose training set is counted.
        """
        return sum(self.rows[f] for f in self._folds(fold))

    def summary(self, value: Value, fold: int | None) -> Summary:
        """`value`'s statistics over fold `fold`'s training set (None: the final set).

        Args:
            value: a value `measure` was asked for.
            fold: the fold whose training set is summarised.
        """
        i = self.values.index(value)
        empty = _Part(0, 0.0, 0.0, math.inf, -math.inf, np.zeros(len(self.thresholds[i]), np.int64),
                      np.zeros(len(self.thresholds[i]), np.int64))
        part = functools.reduce(_Part.merge, (self.parts[f][i] for f in self._folds(fold)), empty)
        some = part.n > 0
        return Summary(part.n, part.mean if some else None, math.sqrt(part.m2 / part.n) if some else None,
                       part.low if some else None, part.high if some else None,
                       self.thresholds[i], part.below, part.at_most)


def measure(originals: DataFrame, wanted: dict[Value, Iterable[float]]) -> TrainingStats:
    """Every value's per-fold statistics over `originals` (the training originals, filtered by the
    caller) in one Spark job.

    Args:
        originals: the rows, with a `fold` column and every column the values name.
        wanted: each value and the thresholds whose below / at-most counts it needs.
    """
    # One order for the columns of every partition's result; an array's positions after its name.
    values = tuple(sorted(wanted, key=lambda v: (v.column, v.log1p, -1 if v.element is None else v.element)))
    thresholds = tuple(np.unique(np.asarray(list(wanted[v]), dtype=np.float64)) for v in values)
    columns = sorted({v.column for v in values})
    types = {f.name: f.dataType.typeName() for f in originals.schema.fields}
    projected = originals.select(F.col(FOLD).cast("long").alias(FOLD), *[_as_doubles(c, types[c]) for c in columns])
    fold = functools.partial(_fold_partition, values, thresholds, tuple(columns))
    partials = projected.mapInArrow(fold, "blob binary").collect()
    return functools.reduce(TrainingStats.merge, (pickle.loads(r[0]) for r in partials),
                            TrainingStats(values, thresholds))


def _as_doubles(column: str, type_name: str) -> Column:
    """The column as Spark casts it to double (an array: each element)."""
    return F.col(column).cast("array<double>" if type_name == "array" else "double").alias(column)


def _fold_partition(values: tuple[Value, ...], thresholds: tuple[np.ndarray, ...], columns: tuple[str, ...],
                    batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow: one partition's batches -> one row holding its pickled TrainingStats."""
    stats = TrainingStats(values, thresholds)
    for batch in batches:
        stats.merge(_batch_stats(values, thresholds, columns, batch))
    yield pa.RecordBatch.from_arrays([pa.array([pickle.dumps(stats, protocol=5)], pa.binary())], names=["blob"])


def _batch_stats(values: tuple[Value, ...], thresholds: tuple[np.ndarray, ...], columns: tuple[str, ...],
                 batch: pa.RecordBatch) -> TrainingStats:
    folds = batch.column(0).to_numpy(zero_copy_only=False)
    order = np.argsort(folds, kind="stable")
    keys, starts = np.unique(folds[order], return_index=True)
    bounds = [*starts[1:], len(folds)]
    doubles = {c: batch.column(1 + i) for i, c in enumerate(columns)}
    lists: dict[str, _Lists] = {}  # each list column decoded once for all its positions
    stats = TrainingStats(values, thresholds, {int(f): int(e - s) for f, s, e in zip(keys, starts, bounds)},
                          {int(f): [] for f in keys})
    for value, cuts in zip(values, thresholds):
        column = doubles[value.column]
        if value.element is None:
            x = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        else:
            x = lists.setdefault(value.column, _Lists.of(column)).position(value.element)
        x = x[order]
        if value.log1p:
            x = np.sign(x) * np.log1p(np.abs(x))
        for f, s, e in zip(keys, starts, bounds):
            stats.parts[int(f)].append(_part(x[s:e], cuts))
    return stats


@dataclass(frozen=True)
class _Lists:
    """A list<double> column as numpy: each row's length (0 for a null list) and start in the
    flattened values (NaN for a null element)."""

    lengths: np.ndarray
    starts: np.ndarray
    flat: np.ndarray

    @classmethod
    def of(cls, column: pa.Array) -> "_Lists":
        return cls(pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False),
                   column.offsets.to_numpy(zero_copy_only=False)[:-1],
                   column.values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False))

    def position(self, element: int) -> np.ndarray:
        """Every row's value at 0-based `element` (NaN past the row's end)."""
        out = np.full(len(self.lengths), np.nan)
        inside = self.lengths > element
        out[inside] = self.flat[self.starts[inside] + element]
        return out


def _part(x: np.ndarray, cuts: np.ndarray) -> _Part:
    """Statistics of the finite values of x."""
    x = x[np.isfinite(x)]
    if not len(x):
        zeros = np.zeros(len(cuts), np.int64)
        return _Part(0, 0.0, 0.0, math.inf, -math.inf, zeros, zeros.copy())
    mean = float(x.mean())
    m2 = float(np.square(x - mean).sum())
    if len(cuts):
        ordered = np.sort(x)
        below, at_most = np.searchsorted(ordered, cuts, "left"), np.searchsorted(ordered, cuts, "right")
    else:
        below = at_most = np.zeros(0, np.int64)
    return _Part(len(x), mean, m2, float(x.min()), float(x.max()), below.astype(np.int64), at_most.astype(np.int64))
