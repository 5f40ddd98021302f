"""`measure_groups`' fast path: the per-(fold, label_index) counts and moments read from the
written Parquet files by pyarrow, summed by a compiled loop, instead of Spark's grouped aggregation.

Spark's grouped HashAggregate updates each of the 3-5 buffers per column through a hash map's
row (about 8 ns an update, against about 3 ns for the ungrouped sums of a plain `df.agg`); here
the groups are a handful of slots per chunk, so one loop per column and chunk adds each value to
plain arrays. When the output `measure_groups` reads is a bare read of local Parquet files or a
Delta table's snapshot (`arrow_tasks.plan`: the same conditions as `profile`'s Parquet path,
which say when pyarrow reads exactly what Spark reads), ONE Spark job runs tasks of file pieces,
each folding its row groups, chunk by chunk, into a `GroupSums`; `arrow_tasks.tree_merge` merges them.

The sums are those of the Spark aggregation in `fit._stat_aggs`, over the same projected
values (`fit._value`: present values of originals, symlog where log1p is set) and around the
same shifts; they differ from Spark's in the last bits only (the order of additions), which the
tests bound. Not taken (Spark's aggregation instead, logged): array positions (element i of a list
column), and value columns other than byte/short/int/long/float/double.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparkprep.compiled import kernel
from sparkprep.contract import COPIES, FOLD, IN_TRAIN, LABEL_INDEX, REPLICA
from sparkprep.io.arrow_tasks import CHUNK_ROWS, ParquetSource, Piece, chunk_numbers, plan, read_chunks, run_tasks

#: Spark types whose cast to double numpy's float64 conversion gives exactly.
_NUMBER_TYPES = (T.ByteType(), T.ShortType(), T.IntegerType(), T.LongType(), T.FloatType(), T.DoubleType())
_CONTROL = (FOLD, LABEL_INDEX, REPLICA)


@kernel
def _count_rows(slots, original, added, in_train, rows, copies, undersampled):  # pragma: no cover (compiled)
    """Per slot: originals, copies (`added`: a copy row's 1, or an original's counted copies) and
    rows training skips."""
    for i in range(slots.shape[0]):
        g = slots[i]
        if original[i]:
            rows[g] += 1
        copies[g] += added[i]
        if not in_train[i]:
            undersampled[g] += 1


@kernel
def _add_column(x, valid, slots, original, shift, symlog, n, s1, s2, lo, hi):  # pragma: no cover (compiled)
    """Add the present values of originals (finite, not null; symlog(x) when `symlog`) to their
    slot's count, shifted sum and sum of squares, min and max."""
    for i in range(x.shape[0]):
        if not original[i] or (valid is not None and not valid[i]):
            continue
        v = x[i]
        if v - v != 0.0:  # NaN or ±inf: missing, as `spark.present`
            continue
        if symlog:
            v = math.copysign(math.log1p(abs(v)), v)
        g = slots[i]
        d = v - shift
        n[g] += 1
        s1[g] += d
        s2[g] += d * d
        lo[g] = min(lo[g], v)
        hi[g] = max(hi[g], v)


def _pad(a: np.ndarray, slots: int, fill: float) -> np.ndarray:
    """`a` with its last axis padded to `slots` with `fill`."""
    out = np.full(a.shape[:-1] + (slots,), fill, a.dtype)
    out[..., :a.shape[-1]] = a
    return out


def _group_keys(fold: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (fold, label_index) pairs of a chunk (as an (m, 2) array) and each row's
    index among them: a bincount over the pairs' small range, not a sort of the chunk."""
    f, c = fold.astype(np.int64), label.astype(np.int64)
    f0, c0 = int(f.min()), int(c.min())
    width = int(c.max()) - c0 + 1
    key = (f - f0) * width + (c - c0)
    if int(key.max()) >= 1 << 20:  # labels or folds far apart: sort instead
        distinct, inverse = np.unique(key, return_inverse=True)
    else:
        distinct = np.flatnonzero(np.bincount(key))
        lut = np.empty(int(key.max()) + 1, np.int64)
        lut[distinct] = np.arange(len(distinct))
        inverse = lut[key]
    return np.column_stack([distinct // width + f0, distinct % width + c0]), inverse


@dataclass
class GroupSums:
    """Per (fold, label_index) slot: originals, copies and undersampled rows; per column and slot:
    the count, shifted sums of values and of squares, min and max of the present values of originals."""

    columns: tuple[str, ...]
    slots: dict[tuple[int, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        width = (len(self.columns), 0)
        self.rows, self.copies, self.undersampled = (np.zeros(0, np.int64) for _ in range(3))
        self.n = np.zeros(width, np.int64)
        self.s1, self.s2 = np.zeros(width), np.zeros(width)
        self.lo, self.hi = np.full(width, math.inf), np.full(width, -math.inf)

    def _add_slots(self, pairs: list[tuple[int, int]]) -> np.ndarray:
        """The slots of `pairs`, new ones appended (zero counts, min/max at ±inf)."""
        for pair in pairs:
            self.slots.setdefault(pair, len(self.slots))
        k = len(self.slots)
        if k > len(self.rows):
            self.rows, self.copies, self.undersampled = (_pad(a, k, 0) for a in (self.rows, self.copies, self.undersampled))
            self.n, self.s1, self.s2 = _pad(self.n, k, 0), _pad(self.s1, k, 0.0), _pad(self.s2, k, 0.0)
            self.lo, self.hi = _pad(self.lo, k, math.inf), _pad(self.hi, k, -math.inf)
        return np.array([self.slots[p] for p in pairs], np.int64)

    def slots_of(self, fold: np.ndarray, label: np.ndarray) -> np.ndarray:
        """The slot of each row's (fold, label_index).

        Args:
            fold: each row's fold.
            label: each row's label_index.
        """
        pairs, inverse = _group_keys(fold, label)
        return self._add_slots([(int(f), int(c)) for f, c in pairs.tolist()])[inverse]

    def merge(self, other: "GroupSums") -> "GroupSums":
        """Add `other` into this one (and return it: the shape of an RDD fold).

        Args:
            other: another task's sums.
        """
        at = self._add_slots(list(other.slots))
        for mine, theirs in ((self.rows, other.rows), (self.copies, other.copies),
                             (self.undersampled, other.undersampled)):
            mine[at] += theirs
        for mine, theirs in ((self.n, other.n), (self.s1, other.s1), (self.s2, other.s2)):
            mine[:, at] += theirs
        self.lo[:, at] = np.minimum(self.lo[:, at], other.lo)
        self.hi[:, at] = np.maximum(self.hi[:, at], other.hi)
        return self


@dataclass(frozen=True)
class FitSource:
    """The files to read, the statistics' columns, their shifts and which take symlog."""

    parquet: ParquetSource
    stats: tuple[str, ...]
    shifts: tuple[float, ...]
    symlog: tuple[bool, ...]
    has_in_train: bool
    has_copies: bool  # copies counted on their originals (rebalance.copies: count)


def fold_task(source: FitSource, task: list[Piece]) -> GroupSums:
    """One task: its pieces, row group by row group in chunks of CHUNK_ROWS rows, summed.

    Args:
        source: the files and what to sum.
        task: the task's pieces.
    """
    sums = GroupSums(source.stats)
    names = source.parquet.columns
    for piece in task:
        for batch in read_chunks(piece, names, CHUNK_ROWS):
            numbers, valid, _ = chunk_numbers(batch, source.parquet)
            by_name = dict(zip(names, zip(numbers, valid)))
            for control in (*_CONTROL, *([COPIES] if source.has_copies else [])):
                if by_name[control][1] is not None:
                    raise ValueError(f"{piece.path}: column {control!r} has nulls (not a sparkprep output?)")
            slots = sums.slots_of(by_name[FOLD][0], by_name[LABEL_INDEX][0])
            original = by_name[REPLICA][0] == 0
            in_train = np.ones(len(slots), bool)
            if source.has_in_train:
                values, ok = by_name[IN_TRAIN]
                in_train = values != 0 if ok is None else (values != 0) | ~ok  # null: not counted, as Spark's ~null
            added = by_name[COPIES][0].astype(np.int64) if source.has_copies else (~original).astype(np.int64)
            _count_rows(slots, original, added, in_train, sums.rows, sums.copies, sums.undersampled)
            for i, (name, shift, symlog) in enumerate(zip(source.stats, source.shifts, source.symlog)):
                x, ok = by_name[name]
                _add_column(x, ok, slots, original, shift, symlog,
                            sums.n[i], sums.s1[i], sums.s2[i], sums.lo[i], sums.hi[i])
    return sums


def file_source(df: DataFrame, stats: list[str], shifts: dict[str, float],
                symlog: set[str]) -> tuple[FitSource | None, list[list[Piece]] | None, str]:
    """The Parquet files and tasks to sum `stats` of `df` from, or None and why not.

    Args:
        df: the written rows, read back.
        stats: the sums asked for.
        shifts: each column's shift (for stable sums of squares).
        symlog: the columns fitted on symlog values.
    """
    types = {f.name: f.dataType for f in df.schema.fields}
    for name in stats:
        if name not in types:
            return None, None, f"{name!r} is an array position"
        if types[name] not in _NUMBER_TYPES:
            return None, None, f"column {name!r} is {types[name].simpleString()}"
    has_in_train, has_copies = IN_TRAIN in types, COPIES in types
    control = list(_CONTROL) + ([IN_TRAIN] if has_in_train else []) + ([COPIES] if has_copies else [])
    parquet, tasks, why = plan(df, {c: "numeric" for c in control + stats}, None)
    if parquet is None or tasks is None:
        return None, None, why
    return FitSource(parquet, tuple(stats), tuple(shifts[c] for c in stats), tuple(c in symlog for c in stats),
                     has_in_train, has_copies), tasks, why


def group_sums(df: DataFrame, source: FitSource, tasks: list[list[Piece]]) -> GroupSums:
    """One Spark job: every task's sums, merged.

    Args:
        df: the written rows, read back.
        source: `file_source`'s files.
        tasks: its tasks.
    """
    return run_tasks(df, tasks, functools.partial(fold_task, source), GroupSums(source.stats))
