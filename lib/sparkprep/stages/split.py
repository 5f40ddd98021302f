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

Rows that must share a fold (groups.py) keep those targets: the multi-row groups are placed first,
then the single rows of each class, in the same hash-rank order, fill every (fold, class) up to
its target in contiguous rank ranges. When every group fits under its targets the counts are the
row split's exactly (within 1); the plan says whether they did and reports the deviation.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Callable

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from sparkprep.config import Config
from sparkprep.contract import (
    CONFLICT, DUP_CLUSTER, FEATURE_HASH, FOLD, FOLD_RANK, GROUP, HOLDOUT_FOLD, LABEL_INDEX, ROW_ID)
from sparkprep.errors import ContractError
from sparkprep.stages.context import Context
from sparkprep.stages import probe_filter
from sparkprep.stages.groups import Anchor, add_groups

log = logging.getLogger(__name__)

_BUCKET_ROWS = 4096
_MAX_BUCKET_BITS = 20
_HASH = "_sp_split_hash"
_BUCKET = "_sp_split_bucket"
_CLASS = "_sp_split_class"
_HELD = "_sp_split_held"
#: Multi-row groups are placed in the driver up to this many (group, class) cells. Measured at
#: the limit: the collected Rows take ~70 MB of Python memory, placing them peaks at ~145 MB and
#: takes ~14 s (2 busy cores); the group -> fold table sent back is broadcast (~16 bytes a
#: group). Above it, groups are placed in hash-ordered blocks, which scale without the driver
#: but balance less well.
_MAX_PLACED_CELLS = 200_000


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
        """Class counts (and tie breaks) from one small aggregation over deduplicated rows.

        Args:
            df: deduplicated rows (not held out by a column rule).
            label: the label column.
            k: the number of folds.
            holdout_fraction: split.holdout_fraction.
            seed: split.seed.
        """
        rows = df.groupBy(F.col(label).cast("string").alias("c")).agg(
            F.count(F.lit(1)).alias("n"), F.min(F.xxhash64(F.col(ROW_ID), F.lit(seed))).alias("h")).collect()
        return cls(k, holdout_fraction, seed, {r["c"]: int(r["n"]) for r in rows}, {r["c"]: int(r["h"]) for r in rows})

    def class_order(self) -> list[str]:
        """Largest class first; the round-robin of each class starts where the previous one ended."""
        return sorted(self.class_counts, key=lambda c: (-self.class_counts[c], self.tie_breaks.get(c, 0), c))

    def holdout_size(self, label: str) -> int:
        """Rows of class `label` in the holdout.

        Args:
            label: a class.
        """
        return int(math.floor(self.holdout_fraction * self.class_counts[label] + 0.5))

    def start_fold(self, label: str) -> int:
        """Where the class's round-robin starts: after all earlier classes' cross-validation rows.

        Args:
            label: a class.
        """
        order = self.class_order()
        earlier = order[: order.index(label)]
        return sum(self.class_counts[c] - self.holdout_size(c) for c in earlier) % self.k

    def fold_size(self, label: str, fold: int) -> int:
        """Rows of class `label` in cross-validation fold `fold` (round-robin from start_fold).

        Args:
            label: a class.
            fold: a cross-validation fold.
        """
        rows = self.class_counts[label] - self.holdout_size(label)
        return rows // self.k + (1 if (fold - self.start_fold(label)) % self.k < rows % self.k else 0)

    def bucket_bits(self) -> int:
        return _bits_for(max(self.class_counts.values(), default=0))

    def method(self) -> dict[str, Any]:
        """The manifest's `split` entries that say how the folds were made."""
        return {"method": "exact-stratified-rank"}

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
    """Add `fold` (int, -1 for holdout) to deduplicated rows with a non-null label.

    Args:
        df: deduplicated rows.
        label: the label column.
        plan: `SplitPlan.measure` of the same rows.
    """
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
            .withColumns({FOLD: fold.cast("int"),
                          FOLD_RANK: F.when(cv_rank >= 0, F.floor(cv_rank / plan.k)).cast("long")})
            .drop(_CLASS, "_sp_pos", "_sp_holdout", "_sp_start"))


@dataclass(frozen=True)
class GroupedPlan(SplitPlan):
    """The split of whole groups: sizes per (class, fold) are measured after placing them."""

    sizes: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Largest |rows of a class in a fold - its ideal share|: how far groups let stratification go.
    deviation: float = 0.0
    #: Every group fit under its (fold, class) targets, so single rows filled each one exactly:
    #: per-class fold counts within 1 of each other and holdout sizes as in the row split.
    reachable: bool = True
    #: "greedy" (groups collected and placed in the driver) or "hash-blocks" (too many for that).
    placement: str = "greedy"

    def holdout_size(self, label: str) -> int:
        """Rows of class `label` the group placement put in the holdout.

        Args:
            label: a class.
        """
        return self.sizes.get((label, HOLDOUT_FOLD), 0)

    def fold_size(self, label: str, fold: int) -> int:
        """Rows of class `label` the group placement put in `fold`.

        Args:
            label: a class.
            fold: a cross-validation fold.
        """
        return self.sizes.get((label, fold), 0)

    def method(self) -> dict[str, Any]:
        return {"method": "group-stratified-blocks", "group_placement": self.placement,
                "group_within_one_reachable": self.reachable, "group_deviation_rows": self.deviation}

    def warnings(self) -> list[str]:
        note = (f"groups kept whole: some group is larger than what its fold has left of a class, so "
                f"per-class fold counts deviate from an exact stratified split by up to "
                f"{self.deviation:.1f} rows") if not self.reachable or self.deviation > 1 else None
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


def _block_of(pos: Column, bounds: Column, k: int) -> Column:
    """The fold whose block of positions holds `pos`: -1 before bounds[0], else the number of the
    fold ends bounds[1..k] at or before it."""
    blocks = F.size(F.filter(F.slice(bounds, 2, k), lambda end: end <= pos))
    return F.when(pos < F.get(bounds, 0), F.lit(HOLDOUT_FOLD)).otherwise(blocks).cast("int")


def _group_cells(classed: DataFrame, seed: int) -> DataFrame:
    """One row per (group, class): its rows `_sp_n`, the group's `_sp_size`, `_sp_held` when a
    column rule holds any row of the group, and `_sp_tie`, the class's smallest row hash there
    (SplitPlan's tie break). The window is per group over at most one cell per class."""
    cells = classed.groupBy(GROUP, _CLASS).agg(
        F.count(F.lit(1)).alias("_sp_n"), F.max("_sp_held").alias("_sp_h"),
        F.min(F.xxhash64(F.col(ROW_ID), F.lit(seed))).alias("_sp_tie"))
    group = Window.partitionBy(GROUP)
    return cells.withColumns({"_sp_size": F.sum("_sp_n").over(group),
                              "_sp_held": F.max("_sp_h").over(group)}).drop("_sp_h")


_IN_GROUP = "_sp_split_in_group"


def _cells(classed: DataFrame, seed: int, materialise: Callable[[DataFrame, str], DataFrame]) -> tuple[DataFrame, DataFrame]:
    """The (group, class) cells (`_group_cells`) of the groups whose value repeats, kept by
    `materialise`; and those cells with every other row as a cell of its own, for `_measure_cells`.

    A group of one row (nearly every row) needs no aggregation: the group values that occur more
    than once are found first (one narrow aggregation of a 64-bit column, as dedup finds repeated
    keys), and only their rows are grouped; a row a Bloom filter passes by mistake makes a cell
    of size one, as it would have anyway. Grouping every row took two shuffles and a window over
    all of them: 6.6-9.3 s of the group split's 29-40 s at 3.8M rows."""
    repeated, n_repeated = probe_filter.repeated(classed, GROUP, materialise, "split-repeated-groups")
    marked = (probe_filter.mark_members(classed, GROUP, repeated, n_repeated, materialise, _IN_GROUP, "split-group-filter")
              if n_repeated else classed.withColumn(_IN_GROUP, F.lit(False)))
    cells = materialise(_group_cells(marked.where(F.col(_IN_GROUP)), seed), "split-cells")
    alone = marked.where(~F.col(_IN_GROUP)).select(
        GROUP, _CLASS, F.lit(1).cast("long").alias("_sp_n"), F.xxhash64(F.col(ROW_ID), F.lit(seed)).alias("_sp_tie"),
        F.lit(1).cast("long").alias("_sp_size"), "_sp_held")
    return cells, cells.unionByName(alone)


def _measure_cells(cells: DataFrame, k: int, holdout_fraction: float, seed: int) -> tuple[SplitPlan, dict[str, int], int]:
    """The row split's plan over the rows no column rule holds (its holdout and fold sizes are the
    targets), the single rows per class, and how many cells multi-row groups have."""
    free = ~F.col("_sp_held")
    rows = cells.groupBy(_CLASS).agg(
        F.sum(F.when(free, F.col("_sp_n")).otherwise(0)).alias("free"),
        F.sum(F.when(free & (F.col("_sp_size") == 1), F.col("_sp_n")).otherwise(0)).alias("singles"),
        F.count_if(F.col("_sp_size") > 1).alias("cells"), F.min("_sp_tie").alias("tie")).collect()
    targets = SplitPlan(k, holdout_fraction, seed, {r[_CLASS]: int(r["free"]) for r in rows if r["free"]},
                        {r[_CLASS]: int(r["tie"]) for r in rows if r["free"]})
    return targets, {r[_CLASS]: int(r["singles"]) for r in rows if r["singles"]}, sum(int(r["cells"]) for r in rows)


def _target(targets: SplitPlan, label: str, fold: int) -> int:
    return targets.holdout_size(label) if fold == HOLDOUT_FOLD else targets.fold_size(label, fold)


def _place_greedily(cells: list[Row], targets: SplitPlan) -> tuple[dict[int, int], dict[tuple[str, int], int]]:
    """Each multi-row group's fold, and the groups' rows per (class, fold).

    Largest group first (ties by xxhash64(group, seed)); each goes to the fold where it adds the
    fewest rows beyond the (class, fold) targets (counted per class of its rows, so a group with
    conflicting labels weighs on each of its classes), then to the fold least full relative to
    its targets of the group's classes (so groups spread over the holdout and the folds in
    proportion, and never into a holdout of size 0 while a fold has room), then the lowest fold.
    Plain loops over per-class lists: this runs once per group, up to _MAX_PLACED_CELLS times."""
    members: dict[int, dict[str, int]] = defaultdict(dict)
    hashes: dict[int, int] = {}
    for cell in cells:
        members[cell[GROUP]][cell[_CLASS]] = int(cell["_sp_n"])
        hashes[cell[GROUP]] = int(cell["_sp_hash"])
    folds = [*range(targets.k), HOLDOUT_FOLD]
    target = {c: [_target(targets, c, f) for f in folds] for c in targets.class_counts}
    placed = {c: [0] * len(folds) for c in targets.class_counts}
    chosen = {}
    for group in sorted(members, key=lambda g: (-sum(members[g].values()), hashes[g], g)):
        rows, best, best_cost = members[group].items(), 0, (math.inf, math.inf)
        for i in range(len(folds)):
            beyond, room, load = 0, 0, 0
            for c, n in rows:
                t, p = target[c][i], placed[c][i]
                beyond, room, load = beyond + n - min(n, max(0, t - p)), room + t, load + p + n
            cost = (beyond, load / room if room else math.inf)
            if cost < best_cost:  # strictly: the first of equal folds stays
                best, best_cost = i, cost
        chosen[group] = folds[best]
        for c, n in rows:
            placed[c][best] += n
    return chosen, {(c, f): placed[c][i] for c in placed for i, f in enumerate(folds)}


def _place_in_blocks(cells: DataFrame, k: int, holdout_fraction: float, seed: int,
                     materialise: Callable[[DataFrame, str], DataFrame]) -> DataFrame:
    """(group, fold) of the multi-row groups when they are too many to collect: each counts for
    its most frequent class (ties: the class whose name hashes lower) and weighs its rows; in
    xxhash64(group, seed) order within the class it lands in the holdout or fold block that
    holds its position (_group_bounds). Scales; a group can move a block end by its size - 1."""
    units = cells.where((F.col("_sp_size") > 1) & ~F.col("_sp_held")).groupBy(GROUP).agg(
        F.max("_sp_size").alias("_sp_size"),
        F.max_by(_CLASS, F.struct("_sp_n", F.bitwise_not(F.xxhash64(_CLASS)))).alias(_CLASS))
    totals = {r[_CLASS]: int(r["n"]) for r in units.groupBy(_CLASS).agg(F.sum("_sp_size").alias("n")).collect()}
    ranked, _ = _positions(units, [_CLASS], GROUP, "_sp_size", seed, _bits_for(max(totals.values(), default=0)))
    table = cells.sparkSession.createDataFrame(list(_group_bounds(totals, k, holdout_fraction).items()),
                                               f"{_CLASS} string, _sp_bounds array<long>")
    return materialise(ranked.join(F.broadcast(table), _CLASS)
                       .select(GROUP, _block_of(F.col("_sp_pos"), F.col("_sp_bounds"), k).alias(FOLD)),
                       "split-group-folds")


def _level(floor: list[int], rows: int, order: list[int]) -> list[int]:
    """Rows added to each of `floor` when `rows` rows go, one by one, to the lowest entry (ties:
    the earliest in `order`). Closed form: the highest level L the rows can fill up to, then the
    remainder one each to the entries at or below L, in `order`."""
    def need(level: int) -> int:
        return sum(max(0, level - x) for x in floor)
    low, high = min(floor), min(floor) + rows
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if need(mid) <= rows else (low, mid - 1)
    extra = [max(0, low - x) for x in floor]
    for f in [f for f in order if floor[f] <= low][: rows - sum(extra)]:
        extra[f] += 1
    return extra


def _single_counts(targets: SplitPlan, placed: dict[tuple[str, int], int], singles: dict[str, int]) -> dict[str, list[int]]:
    """Per class, its single rows in the holdout and in folds 0..k-1. The holdout takes what its
    target lacks; the folds are levelled from the lowest up, and a remainder goes to the folds
    the row split makes larger (SplitPlan.start_fold), so fold totals stay level across classes.
    When every group fit under its targets, this fills each (fold, class) to its target exactly."""
    out = {}
    for c, n in singles.items():
        held = min(n, max(0, targets.holdout_size(c) - placed.get((c, HOLDOUT_FOLD), 0)))
        start = targets.start_fold(c)
        order = sorted(range(targets.k), key=lambda f: (f - start) % targets.k)
        out[c] = [held, *_level([placed.get((c, f), 0) for f in range(targets.k)], n - held, order)]
    return out


def assign_group_folds(df: DataFrame, label: str, k: int, holdout_fraction: float, seed: int,
                       held_out: Column, materialise: Callable[[DataFrame, str], DataFrame]) -> tuple[DataFrame, GroupedPlan]:
    """Add `fold` and `FOLD_RANK` so that rows sharing `_sp_group` always share a fold.

    The targets are the row split's holdout and fold sizes per class. Multi-row groups are placed
    first (_place_greedily, or _place_in_blocks above _MAX_PLACED_CELLS cells); then the single
    rows of each class, in xxhash64(row_id, seed) order, fill the holdout and the folds in
    contiguous rank ranges (_single_counts). When every group fit under its targets, the result
    is the row split's counts exactly; else the plan reports the deviation. A group with any row
    held out by a column rule is held out whole. Then rows are ranked inside each (fold, class)
    for oversampling, as in the row split.

    Args:
        df: rows with `_sp_group` (`groups.add_groups`).
        label: the label column.
        k: the number of folds.
        holdout_fraction: split.holdout_fraction.
        seed: split.seed.
        held_out: true for rows a column rule holds out.
        materialise: where the cells and the folded rows are kept.
    """
    classed = df.withColumns({_CLASS: F.col(label).cast("string"), "_sp_held": held_out})
    cells, every_cell = _cells(classed, seed, materialise)
    targets, singles, group_cells = _measure_cells(every_cell, k, holdout_fraction, seed)
    placement = "greedy" if group_cells <= _MAX_PLACED_CELLS else "hash-blocks"
    folds, placed = _place_groups(cells, targets, placement, k, holdout_fraction, seed, materialise)
    reachable = all(n <= _target(targets, c, f) for (c, f), n in placed.items())
    joined = classed.join(folds, GROUP, "left")
    if placement == "hash-blocks":  # the group -> fold table is not broadcast: joined once, read twice
        joined = materialise(joined, "split-joined")
    rows, counts = _fill_and_rank(joined, targets, placed, singles, seed)
    plan = _grouped_plan(counts, k, holdout_fraction, seed, reachable, placement)
    return rows, plan


_SINGLE = "_sp_split_single"
#: Per row, 1 where it is a row placed with its group (or held out) in fold i, for each fold.
_PLACED_IN = "_sp_split_placed_in_{}"


def _fill_and_rank(joined: DataFrame, targets: SplitPlan, placed: dict[tuple[str, int], int], singles: dict[str, int],
                   seed: int) -> tuple[DataFrame, dict[tuple[str, int], int]]:
    """`fold` for the single rows (each class's in contiguous blocks of their hash order,
    `_single_counts`) and `FOLD_RANK` for every row, from ONE window over (class, bucket) in
    xxhash64(row_id, seed) order; and the rows per (class, fold).

    A row's rank in (fold f, class c) is the number of rows of (f, c) before it in hash order:
    the single rows before it that fall in f's block [b_f, b_f+1) of single positions, which is
    clamp(p, b_f, b_f+1) - b_f for p the single rows of c before it (a single row's own position);
    plus the rows placed with their groups in f before it. Both are running counts in the class's
    hash order, so one window computes them (one running sum per fold) with each bucket's offsets
    from one small aggregation. Ranking the single rows first and then every (fold, class) again
    took two windows, two aggregations and a scratch copy of the folded rows between them.

    Args:
        joined: rows with `_CLASS`, `_sp_held` and `fold` (null for the rows no group placed).
        targets: the row split's plan (`_measure_cells`).
        placed: the group rows placed per (class, fold).
        singles: the single rows per class (`_measure_cells`).
        seed: split.seed.
    """
    k = targets.k
    single = F.col(FOLD).isNull() & ~F.col("_sp_held")
    group_fold = F.when(~single, F.coalesce(F.col(FOLD), F.lit(HOLDOUT_FOLD)))
    folds = [HOLDOUT_FOLD, *range(k)]
    # Over the rows below, whose fold is the group's (null: a single row).
    flags = {_SINGLE: F.col(FOLD).isNull().cast("long"),
             **{_PLACED_IN.format(i): F.coalesce(F.col(FOLD) == f, F.lit(False)).cast("long") for i, f in enumerate(folds)}}
    bits = _bits_for(max(targets.class_counts.values(), default=0))
    hashed = _with_buckets(joined.withColumn(FOLD, group_fold), F.col(ROW_ID), seed, bits)
    found = hashed.groupBy(_CLASS, _BUCKET).agg(*[F.sum(flag).alias(c) for c, flag in flags.items()]).collect()
    no_singles = [0] * (k + 1)
    single_bounds = {c: list(accumulate(n)) for c, n in _single_counts(targets, placed, singles).items()}
    offsets, running, counts = [], defaultdict(lambda: [0] * len(flags)), {}
    for row in sorted(found, key=lambda r: (r[_CLASS], r[_BUCKET])):
        c, so_far = row[_CLASS], running[row[_CLASS]]
        offsets.append((c, row[_BUCKET], so_far[0], so_far[2:], single_bounds.get(c, no_singles)))
        running[c] = [a + int(row[f]) for a, f in zip(so_far, flags)]
    found_singles = {c: n[0] for c, n in running.items() if n[0]}
    if found_singles != singles:
        raise ContractError(f"split: single rows per class changed between passes: planned {singles}, found "
                            f"{found_singles}; is the input being modified?")
    for c, totals in running.items():
        bounds = single_bounds.get(c, no_singles)
        for i, f in enumerate(folds):
            in_block = bounds[0] if f == HOLDOUT_FOLD else bounds[f + 1] - bounds[f]
            if totals[i + 1] + in_block:
                counts[(c, f)] = totals[i + 1] + in_block
    table = joined.sparkSession.createDataFrame(
        offsets, f"{_CLASS} string, {_BUCKET} long, _sp_single_off long, _sp_placed_off array<long>, _sp_bounds array<long>")
    in_bucket = (Window.partitionBy(_CLASS, _BUCKET).orderBy(_HASH, ROW_ID)
                 .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    before = {c: f"_sp_before{c}" for c in flags}
    # Only the rows' own columns are shuffled and sorted: the flags are computed after
    # the shuffle (the explicit repartition is the window's own) and each bucket's offsets (two
    # arrays a row) joined after the window. Joined before it, they made the shuffled rows about
    # three times as wide, and the window's sort spilled (3.4 GB at 17.8M rows).
    windowed = (hashed.repartition(_CLASS, _BUCKET).withColumns(flags)
                .withColumns({before[c]: F.sum(c).over(in_bucket) - F.col(c) for c in flags})
                .join(F.broadcast(table), [_CLASS, _BUCKET]))
    position = F.col("_sp_single_off") + F.col(before[_SINGLE])
    folded = windowed.withColumns({"_sp_split_position": position, FOLD: F.when(
        F.col(_SINGLE) == 1, _block_of(position, F.col("_sp_bounds"), k)).otherwise(F.col(FOLD))})
    start, end = F.get(F.col("_sp_bounds"), F.col(FOLD)), F.get(F.col("_sp_bounds"), F.col(FOLD) + 1)
    placed_before = F.get(F.array(*[F.get(F.col("_sp_placed_off"), f) + F.col(before[_PLACED_IN.format(f + 1)])
                                    for f in range(k)]), F.col(FOLD))
    rank = F.least(F.greatest(F.col("_sp_split_position"), start), end) - start + placed_before
    ranked = folded.withColumn(FOLD_RANK, F.when(F.col(FOLD) != HOLDOUT_FOLD, rank).cast("long"))
    return ranked.drop(*flags, *before.values(), _HASH, _BUCKET, "_sp_single_off", "_sp_placed_off", "_sp_bounds",
                       "_sp_split_position", "_sp_held", _CLASS), counts


def _grouped_plan(counts: dict[tuple[str, int], int], k: int, holdout_fraction: float, seed: int, reachable: bool,
                  placement: str) -> GroupedPlan:
    """The plan of a group split from its rows per (class, fold), with its largest deviation from
    an even split of each class."""
    class_counts = {c: sum(n for (cc, _), n in counts.items() if cc == c) for c in {c for c, _ in counts}}
    ideal = {c: (n - counts.get((c, HOLDOUT_FOLD), 0)) / k for c, n in class_counts.items()}
    deviation = max((abs(counts.get((c, f), 0) - ideal[c]) for c in class_counts for f in range(k)), default=0.0)
    return GroupedPlan(k, holdout_fraction, seed, class_counts, sizes=counts, deviation=round(deviation, 1),
                       reachable=reachable, placement=placement)


def _place_groups(cells: DataFrame, targets: SplitPlan, placement: str, k: int, holdout_fraction: float, seed: int,
                  materialise: Callable[[DataFrame, str], DataFrame]) -> tuple[DataFrame, dict[tuple[str, int], int]]:
    """The fold of every multi-row group (held out whole where a row of it is held out by a column
    rule), and the rows placed per (class, fold)."""
    multi = F.col("_sp_size") > 1
    held_groups = cells.where(multi & F.col("_sp_held")).select(GROUP, F.lit(HOLDOUT_FOLD).alias(FOLD)).distinct()
    if placement == "greedy":
        chosen, placed = _place_greedily(cells.where(multi & ~F.col("_sp_held")).select(
            GROUP, _CLASS, "_sp_n", F.xxhash64(GROUP, F.lit(seed)).alias("_sp_hash")).collect(), targets)
        group_type = cells.schema[GROUP].dataType.simpleString()
        folds = F.broadcast(cells.sparkSession.createDataFrame(list(chosen.items()), f"{GROUP} {group_type}, {FOLD} int")
                            .unionByName(held_groups))
        return folds, placed
    in_blocks = _place_in_blocks(cells, k, holdout_fraction, seed, materialise)
    placed = {(r[_CLASS], int(r[FOLD])): int(r["n"]) for r in cells.join(in_blocks, GROUP)
              .groupBy(_CLASS, FOLD).agg(F.sum("_sp_n").alias("n")).collect()}
    return in_blocks.unionByName(held_groups), placed


def holdout_by_column(column: str, values: list[str], start: str | None) -> Column:
    """True for rows that a column rule puts in the holdout (a null value is never held out).

    `start` is compared in the column's type (Spark casts the literal), so '2024-10-01' is a time
    cut on a timestamp column and '10' a numeric cut on a number.

    Args:
        column: split.holdout_column.
        values: split.holdout_values (held out when the value is one of them).
        start: split.holdout_from (held out from this value on), when no values are given.
    """
    value = F.col(column)
    rule = value.cast("string").isin(values) if values else value >= F.lit(start)
    return F.coalesce(rule, F.lit(False))


def add_label_index(df: DataFrame, label: str, classes: list[str]) -> DataFrame:
    """`label_index` = position of the label in `classes` (the manifest's order).

    Args:
        df: split rows.
        label: the label column.
        classes: the classes in label_index order.
    """
    index = F.array_position(F.array(*[F.lit(c) for c in classes]), F.col(label).cast("string")) - 1
    return df.withColumn(LABEL_INDEX, index.cast("int"))


def training_folds(k: int, fold: int | None) -> list[int]:
    """Folds whose originals train fold `fold` (None: the final model, every non-holdout fold).

    Args:
        k: the number of cross-validation folds.
        fold: the validation fold, or None for the final model.
    """
    return [f for f in range(k) if f != fold and f != HOLDOUT_FOLD]


def held_out(config: Config) -> Column:
    """Rows that a column rule puts in the holdout (none with the fraction rule).

    Args:
        config: the run's config (its split section).
    """
    split = config.split
    return (holdout_by_column(split.holdout_column, split.holdout_values, split.holdout_from)
            if split.holdout_column else F.lit(False))


def group_keys(config: Config, counts: dict[str, int]) -> list[Column | Anchor]:
    """What must stay in one fold: the group column, near-duplicate clusters kept whole, and rows
    whose features conflict in their label (when they are all kept).

    Args:
        config: the run's config (split.group_column, dedup.near, dedup.conflicts).
        counts: the dedup stage's counts (conflicting_rows).
    """
    keys = [F.col(config.split.group_column)] if config.split.group_column else []
    if config.dedup.near and config.dedup.near.keep == "all":
        keys.append(Anchor(F.col(DUP_CLUSTER)))  # a cluster is named by its smallest row_id
    if config.dedup.conflicts == "keep_all" and counts.get("conflicting_rows"):
        keys.append(F.when(F.col(CONFLICT), F.col(FEATURE_HASH)))
    return keys


@dataclass(frozen=True)
class Folded:
    """What the split stage leaves.

    Args:
        rows: every row with its fold (and FOLD_RANK) and label_index.
        plan: the split's plan (its targets, method and warnings).
        classes: the classes in label_index order.
        rows_kept: the number of rows split (the row accounting checks it).
    """

    rows: DataFrame
    plan: SplitPlan
    classes: list[str]
    rows_kept: int


def run(rows: DataFrame, counts: dict[str, int], config: Config, ctx: Context) -> Folded:
    """Folds (holdout by per-class fraction or by a column rule), label_index. Whole groups per
    fold when anything groups rows (`group_keys`), else the exact row split.

    Args:
        rows: the deduplicated rows.
        counts: the dedup stage's counts (`group_keys` reads them).
        config: the run's config (split, columns).
        ctx: the run's scratch space.
    """
    label, configured = config.columns.label, config.columns.classes  # type: ignore[union-attr]
    keys = group_keys(config, counts)
    folded, plan, found = (_group_split if keys else _row_split)(rows, keys, config, ctx)
    for warning in plan.warnings():
        log.warning(warning)
    classes = list(configured) if configured else sorted(found)
    return Folded(add_label_index(folded, label, classes), plan, classes, sum(found.values()))


def _group_split(rows: DataFrame, keys: list[Column | Anchor], config: Config,
                 ctx: Context) -> tuple[DataFrame, SplitPlan, dict[str, int]]:
    """Groups, their placement and every row's fold and rank are found on a narrow projection
    (row_id, label, the keys, the holdout rule), materialised as it goes; the rows themselves are
    read once more and joined to (row_id, fold, rank) on their way to the output. Materialising
    the whole rows, grouped and then folded, cost two full writes and reads: split+write took
    84-86 s at ~1 GB with them, 69 s with the join (bench/RESULTS.md, sixteenth session). The join pairs each row with its own fold because row_id is unique
    among the rows split (verify's "row_id unique among originals" holds every output to it)."""
    split, label = config.split, config.columns.label  # type: ignore[union-attr]
    materialise = ctx.under("groups")
    named = {f"_sp_split_key{i}": key.column if isinstance(key, Anchor) else key for i, key in enumerate(keys)}
    narrow = rows.select(ROW_ID, label, held_out(config).alias(_HELD),
                         *[column.alias(name) for name, column in named.items()])
    narrow_keys: list[Column | Anchor] = [Anchor(F.col(name)) if isinstance(key, Anchor) else F.col(name)
                                          for name, key in zip(named, keys)]
    grouped = materialise(add_groups(narrow, narrow_keys, materialise), "grouped")
    folded, plan = assign_group_folds(grouped, label, split.k, split.holdout_fraction, split.seed,
                                      F.col(_HELD), materialise)
    # A shuffled hash join on the narrow side: the rows stream past its hash table instead of being
    # sorted by row_id for a sort-merge join, a sort of every row that the write's sort by fold
    # repeats anyway (1 GB: the final stage 48.6 against 52.7 s; bench/RESULTS.md, 26th session).
    folds = folded.select(ROW_ID, FOLD, FOLD_RANK).hint("shuffle_hash")
    return rows.join(folds, ROW_ID), plan, dict(plan.class_counts)


def _row_split(rows: DataFrame, keys: list[Column | Anchor], config: Config,
               ctx: Context) -> tuple[DataFrame, SplitPlan, dict[str, int]]:
    split, label = config.split, config.columns.label  # type: ignore[union-attr]
    held = held_out(config)
    cross_validated = rows.where(~held)
    plan = SplitPlan.measure(cross_validated, label, split.k, split.holdout_fraction, split.seed)
    folded, found = assign_folds(cross_validated, label, plan), dict(plan.class_counts)
    if split.holdout_column:
        holdout = rows.where(held).withColumns({FOLD: F.lit(HOLDOUT_FOLD), FOLD_RANK: F.lit(None).cast("long")})
        by_class = holdout.groupBy(F.col(label).cast("string").alias("c")).count().collect()
        folded = folded.unionByName(holdout)
        for r in by_class:
            found[r["c"]] = found.get(r["c"], 0) + int(r["count"])
    return folded, plan, found
