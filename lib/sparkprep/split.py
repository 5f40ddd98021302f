"""Exact stratified holdout + k-fold, deterministic and scalable.

Within each class, rows are ordered by `h = xxhash64(row_id, seed)` (ties by `row_id`); a row's
rank r in that order decides everything: the first `round(holdout_fraction * n_c)` ranks are the
holdout (fold -1), the rest go round-robin to folds, so per-class fold counts differ by at most 1.
Each class starts its round-robin where the previous class stopped, so total fold sizes differ by
at most 1 too. The fold is a pure function of (row_id, seed, class counts): the same on 1 or 200
partitions.

The rank is computed without a window over a whole class. The top B bits of h split every class
into 2^B buckets. One small aggregation counts rows per (class, bucket); the driver turns the
counts into per-bucket offsets (at most classes x 2^B numbers, with B chosen so a bucket holds
about `_BUCKET_ROWS` rows); a window partitioned by (class, bucket) then numbers rows inside a
bucket only. Task size stays bounded however large a class grows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from sparkprep import HOLDOUT_FOLD
from sparkprep.dedup import ROW_ID
from sparkprep.errors import ContractError
from sparkprep.groups import GROUP

log = logging.getLogger(__name__)

_BUCKET_ROWS = 4096
_MAX_BUCKET_BITS = 20
_HASH = "_sp_split_hash"
_BUCKET = "_sp_split_bucket"
_CLASS = "_sp_split_class"
#: Index of a row within its (fold, class), in hash order; null in the holdout. Rebalancing uses it.
FOLD_RANK = "_sp_fold_rank"


@dataclass(frozen=True)
class SplitPlan:
    """What the split needs to know about the data: class sizes decide holdout and fold counts."""

    k: int
    holdout_fraction: float
    seed: int
    class_counts: dict[str, int]
    #: Per class, the smallest xxhash64(row_id, seed) of its rows: orders classes of equal size by
    #: their rows, not their names, so renaming the classes never changes the split.
    tie_breaks: dict[str, int] = field(default_factory=dict)

    @classmethod
    def measure(cls, df: DataFrame, label: str, k: int, holdout_fraction: float, seed: int) -> "SplitPlan":
        """Class counts (and tie breaks) from one small aggregation over deduplicated rows."""
        rows = df.groupBy(F.col(label).cast("string").alias("c")).agg(
            F.count(F.lit(1)).alias("n"), F.min(F.xxhash64(F.col(ROW_ID), F.lit(seed))).alias("h")).collect()
        return cls(k, holdout_fraction, seed, {r["c"]: int(r["n"]) for r in rows}, {r["c"]: int(r["h"]) for r in rows})

    def class_order(self) -> list[str]:
        """Largest class first; the round-robin of each class starts where the previous one ended."""
        return sorted(self.class_counts, key=lambda c: (-self.class_counts[c], self.tie_breaks.get(c, 0), c))

    def holdout_size(self, label: str) -> int:
        return int(math.floor(self.holdout_fraction * self.class_counts[label] + 0.5))

    def start_fold(self, label: str) -> int:
        """Where the class's round-robin starts: after all earlier classes' cross-validation rows."""
        order = self.class_order()
        earlier = order[: order.index(label)]
        return sum(self.class_counts[c] - self.holdout_size(c) for c in earlier) % self.k

    def fold_size(self, label: str, fold: int) -> int:
        """Rows of class `label` in cross-validation fold `fold` (round-robin from start_fold)."""
        rows = self.class_counts[label] - self.holdout_size(label)
        return rows // self.k + (1 if (fold - self.start_fold(label)) % self.k < rows % self.k else 0)

    def bucket_bits(self) -> int:
        return _bits_for(max(self.class_counts.values(), default=0))

    def warnings(self) -> list[str]:
        cv_rows = {c: n - self.holdout_size(c) for c, n in self.class_counts.items()}
        smallest = min(cv_rows.items(), key=lambda kv: kv[1], default=None)
        if smallest and smallest[1] < self.k:
            return [f"the least populated class {smallest[0]!r} has only {smallest[1]} rows for "
                    f"cross-validation, fewer than k={self.k}: some folds have none of it"]
        return []


def _bits_for(largest: int) -> int:
    return min(_MAX_BUCKET_BITS, max(0, math.ceil(math.log2(max(1, largest / _BUCKET_ROWS)))))


def _with_buckets(df: DataFrame, key: Column, seed: int, bits: int) -> DataFrame:
    h = F.xxhash64(key, F.lit(seed))
    # Flipping the sign bit makes unsigned bucket order agree with the signed order of h used
    # inside a bucket, so the rank never depends on how many buckets there are.
    flipped = h.bitwiseXOR(F.lit(-(1 << 63)))
    bucket = F.shiftrightunsigned(flipped, 64 - bits) if bits else F.lit(0).cast("long")
    return df.withColumns({_HASH: h, _BUCKET: bucket})


def _positions(df: DataFrame, within: list[str], key: str, weight: str | None, seed: int,
               bits: int) -> tuple[DataFrame, dict[tuple, int]]:
    """`_sp_pos`: the total weight of the rows before each row of its `within` partition, in
    order of xxhash64(key, seed) (ties by key); and the total weight per partition.

    One small aggregation per (partition, bucket) and a window inside a bucket only (see the
    module docstring): no task ever holds a whole partition."""
    w = F.col(weight) if weight else F.lit(1).cast("long")
    hashed = _with_buckets(df.withColumn("_sp_w", w), F.col(key), seed, bits)
    counts = hashed.groupBy(*within, _BUCKET).agg(F.sum("_sp_w").alias("n")).collect()
    offsets, running = [], {}
    for row in sorted(counts, key=lambda r: (tuple(str(r[c]) for c in within), r[_BUCKET])):
        part = tuple(row[c] for c in within)
        offsets.append((*part, row[_BUCKET], running.get(part, 0)))
        running[part] = running.get(part, 0) + row["n"]
    types = {f.name: f.dataType.simpleString() for f in hashed.schema.fields}
    table = df.sparkSession.createDataFrame(
        offsets, ", ".join([*(f"{c} {types[c]}" for c in within), f"{_BUCKET} long, _sp_offset long"]))
    in_bucket = (Window.partitionBy(*within, _BUCKET).orderBy(_HASH, key)
                 .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    position = F.col("_sp_offset") + F.sum("_sp_w").over(in_bucket) - F.col("_sp_w")
    joined = hashed.join(F.broadcast(table), [*within, _BUCKET])
    return joined.withColumn("_sp_pos", position).drop(_HASH, _BUCKET, "_sp_offset", "_sp_w"), running


def assign_folds(df: DataFrame, label: str, plan: SplitPlan) -> DataFrame:
    """Add `fold` (int, -1 for holdout) to deduplicated rows with a non-null label."""
    classed = df.withColumn(_CLASS, F.col(label).cast("string"))
    ranked, running = _positions(classed, [_CLASS], ROW_ID, None, plan.seed, plan.bucket_bits())
    if {c[0]: n for c, n in running.items()} != plan.class_counts:
        raise ContractError(f"split: rows per class changed between passes: planned "
                            f"{plan.class_counts}, found { {c[0]: n for c, n in running.items()} }; "
                            f"is the input being modified?")
    table = df.sparkSession.createDataFrame(
        [(c, plan.holdout_size(c), plan.start_fold(c)) for c in plan.class_counts],
        f"{_CLASS} string, _sp_holdout long, _sp_start long")
    cv_rank = F.col("_sp_pos") - F.col("_sp_holdout")
    fold = F.when(cv_rank < 0, F.lit(HOLDOUT_FOLD)).otherwise(F.pmod(cv_rank + F.col("_sp_start"), F.lit(plan.k)))
    # Round-robin: the row of cv rank r is the (r div k)-th of its (fold, class), in hash order.
    return (ranked.join(F.broadcast(table), _CLASS)
            .withColumns({"fold": fold.cast("int"),
                          FOLD_RANK: F.when(cv_rank >= 0, F.floor(cv_rank / plan.k)).cast("long")})
            .drop(_CLASS, "_sp_pos", "_sp_holdout", "_sp_start"))


@dataclass(frozen=True)
class GroupedPlan(SplitPlan):
    """The split of whole groups: sizes per (class, fold) are measured after placing them."""

    sizes: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Largest |rows of a class in a fold - its ideal share|: how far groups let stratification go.
    deviation: float = 0.0

    def holdout_size(self, label: str) -> int:
        return self.sizes.get((label, HOLDOUT_FOLD), 0)

    def fold_size(self, label: str, fold: int) -> int:
        return self.sizes.get((label, fold), 0)

    def warnings(self) -> list[str]:
        note = (f"groups kept whole: per-class fold counts deviate from an exact stratified split by "
                f"up to {self.deviation:.1f} rows") if self.deviation > 1 else None
        return [*super().warnings(), *([note] if note else [])]


def _group_bounds(totals: dict[str, int], k: int, holdout_fraction: float) -> dict[str, list[int]]:
    """Per class, k+1 positions: where the holdout ends and where each fold's block ends. Blocks
    differ by at most one row; like the row split, each class's larger blocks start where the
    previous class's ended, so fold totals stay level too."""
    out, start = {}, 0
    for c in sorted(totals, key=lambda c: (-totals[c], c)):
        held = int(math.floor(holdout_fraction * totals[c] + 0.5))
        rows = totals[c] - held
        bounds = [held]
        for j in range(k):
            bounds.append(bounds[-1] + rows // k + (1 if (j - start) % k < rows % k else 0))
        out[c], start = bounds, (start + rows) % k
    return out


def assign_group_folds(df: DataFrame, label: str, k: int, holdout_fraction: float, seed: int,
                       held_out: Column, materialise: Callable[[DataFrame, str], DataFrame]) -> tuple[DataFrame, GroupedPlan]:
    """Add `fold` and `FOLD_RANK` so that rows sharing `_sp_group` always share a fold.

    A group counts for its most frequent class (ties: the class whose name hashes lower) and
    weighs its rows. Groups are ordered by xxhash64(group, seed) within their class; a group's
    position is the rows of the groups before it, and it lands in the holdout or fold block that
    contains that position. With every group of one row this is an exact stratified split in
    blocks; a group of m rows can move a block boundary by at most m - 1 (the plan reports the
    largest deviation). A group with any row held out by a column rule is held out whole.
    Then rows are ranked inside each (fold, class) for oversampling, as in the row split."""
    classed = df.withColumns({_CLASS: F.col(label).cast("string"), "_sp_held": held_out})
    per_class = classed.groupBy(GROUP, _CLASS).agg(F.count(F.lit(1)).alias("_sp_n"), F.max("_sp_held").alias("_sp_h"))
    units = materialise(per_class.groupBy(GROUP).agg(
        F.sum("_sp_n").alias("_sp_size"), F.max("_sp_h").alias("_sp_held"),
        F.max_by(_CLASS, F.struct("_sp_n", F.bitwise_not(F.xxhash64(_CLASS)))).alias(_CLASS)), "split-groups")
    cv_units = units.where(~F.col("_sp_held"))
    totals = {r[_CLASS]: int(r["n"]) for r in cv_units.groupBy(_CLASS).agg(F.sum("_sp_size").alias("n")).collect()}
    ranked, _ = _positions(cv_units, [_CLASS], GROUP, "_sp_size", seed, _bits_for(max(totals.values(), default=0)))
    bounds = _group_bounds(totals, k, holdout_fraction)
    table = df.sparkSession.createDataFrame(list(bounds.items()), f"{_CLASS} string, _sp_bounds array<long>")
    pos, b = F.col("_sp_pos"), F.col("_sp_bounds")
    fold = F.when(pos < F.get(b, 0), F.lit(HOLDOUT_FOLD)).otherwise(F.size(F.filter(F.slice(b, 2, k), lambda x: x <= pos)))
    unit_folds = (ranked.join(F.broadcast(table), _CLASS).select(GROUP, fold.cast("int").alias("fold"))
                  .unionByName(units.where(F.col("_sp_held")).select(GROUP, F.lit(HOLDOUT_FOLD).alias("fold"))))
    folded = materialise(classed.drop("_sp_held").join(unit_folds, GROUP), "split-folds")
    counts = {(r[_CLASS], int(r["fold"])): int(r["n"])
              for r in folded.groupBy(_CLASS, "fold").agg(F.count(F.lit(1)).alias("n")).collect()}
    class_counts = {c: sum(n for (cc, _), n in counts.items() if cc == c) for c in {c for c, _ in counts}}
    largest_cell = max(counts.values(), default=0)
    rows, _ = _positions(folded, ["fold", _CLASS], ROW_ID, None, seed, _bits_for(largest_cell))
    ideal = {c: (n - counts.get((c, HOLDOUT_FOLD), 0)) / k for c, n in class_counts.items()}
    deviation = max((abs(counts.get((c, f), 0) - ideal[c]) for c in class_counts for f in range(k)), default=0.0)
    plan = GroupedPlan(k, holdout_fraction, seed, class_counts, sizes=counts, deviation=round(deviation, 1))
    rank = F.when(F.col("fold") != HOLDOUT_FOLD, F.col("_sp_pos")).cast("long")
    return rows.withColumn(FOLD_RANK, rank).drop("_sp_pos", _CLASS), plan


def holdout_by_column(column: str, values: list[str], start: str | None) -> Column:
    """True for rows that a column rule puts in the holdout (a null value is never held out).

    `start` is compared in the column's type (Spark casts the literal), so '2024-10-01' is a time
    cut on a timestamp column and '10' a numeric cut on a number."""
    value = F.col(column)
    rule = value.cast("string").isin(values) if values else value >= F.lit(start)
    return F.coalesce(rule, F.lit(False))


def add_label_index(df: DataFrame, label: str, classes: list[str]) -> DataFrame:
    """`label_index` = position of the label in `classes` (the manifest's order)."""
    index = F.array_position(F.array(*[F.lit(c) for c in classes]), F.col(label).cast("string")) - 1
    return df.withColumn("label_index", index.cast("int"))
