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

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from sparkprep import HOLDOUT_FOLD
from sparkprep.dedup import ROW_ID
from sparkprep.errors import ContractError

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
        largest = max(self.class_counts.values(), default=0)
        return min(_MAX_BUCKET_BITS, max(0, math.ceil(math.log2(max(1, largest / _BUCKET_ROWS)))))

    def warnings(self) -> list[str]:
        cv_rows = {c: n - self.holdout_size(c) for c, n in self.class_counts.items()}
        smallest = min(cv_rows.items(), key=lambda kv: kv[1], default=None)
        if smallest and smallest[1] < self.k:
            return [f"the least populated class {smallest[0]!r} has only {smallest[1]} rows for "
                    f"cross-validation, fewer than k={self.k}: some folds have none of it"]
        return []


def _with_buckets(df: DataFrame, seed: int, bits: int) -> DataFrame:
    h = F.xxhash64(F.col(ROW_ID), F.lit(seed))
    # Flipping the sign bit makes unsigned bucket order agree with the signed order of h used
    # inside a bucket, so the rank never depends on how many buckets there are.
    flipped = h.bitwiseXOR(F.lit(-(1 << 63)))
    bucket = F.shiftrightunsigned(flipped, 64 - bits) if bits else F.lit(0).cast("long")
    return df.withColumns({_HASH: h, _BUCKET: bucket})


def assign_folds(df: DataFrame, label: str, plan: SplitPlan) -> DataFrame:
    """Add `fold` (int, -1 for holdout) to deduplicated rows with a non-null label."""
    bits = plan.bucket_bits()
    hashed = _with_buckets(df.withColumn(_CLASS, F.col(label).cast("string")), plan.seed, bits)
    counts = hashed.groupBy(_CLASS, _BUCKET).count().collect()
    offsets, running = [], {}
    for row in sorted(counts, key=lambda r: (r[_CLASS], r[_BUCKET])):
        name = row[_CLASS]
        start = running.get(name, 0)
        offsets.append((name, row[_BUCKET], start, plan.holdout_size(name), plan.start_fold(name)))
        running[name] = start + row["count"]
    if running != plan.class_counts:
        raise ContractError(f"split: rows per class changed between passes: planned "
                            f"{plan.class_counts}, found {running}; is the input being modified?")
    table = df.sparkSession.createDataFrame(
        offsets, f"{_CLASS} string, {_BUCKET} long, _sp_offset long, _sp_holdout long, _sp_start long")
    in_bucket = Window.partitionBy(_CLASS, _BUCKET).orderBy(_HASH, ROW_ID)
    rank = F.col("_sp_offset") + F.row_number().over(in_bucket) - 1
    cv_rank = rank - F.col("_sp_holdout")
    fold = F.when(cv_rank < 0, F.lit(HOLDOUT_FOLD)).otherwise(F.pmod(cv_rank + F.col("_sp_start"), F.lit(plan.k)))
    joined = hashed.join(F.broadcast(table), [_CLASS, _BUCKET])
    # Round-robin: the row of cv rank r is the (r div k)-th of its (fold, class), in hash order.
    return (joined.withColumns({"fold": fold.cast("int"),
                                FOLD_RANK: F.when(cv_rank >= 0, F.floor(cv_rank / plan.k)).cast("long")})
            .drop(_CLASS, _HASH, _BUCKET, "_sp_offset", "_sp_holdout", "_sp_start"))


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
