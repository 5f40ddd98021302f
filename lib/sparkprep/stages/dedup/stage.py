"""The dedup stage: its rules in order, and what they leave (rows, rejections, counts).

The rules run in RULES order, each on the rows the rules before it kept. A rule is a module with
`apply(rows, config, ctx) -> rows`; it may absorb rows (`exact.collapse(..., step=<rule>)` counts
them per surviving row in `_sp_dup_<rule>`), count rows without absorbing them
(`_sp_counted_<name>`), or reject rows by setting the quarantine columns (`_sp_reason` ...): those
leave the stage for the quarantine. The counters travel with the rows and a collapse sums them
(exact.py), so every count comes from one aggregation of what is left. Adding a rule: its module
and its line in RULES.

After the rules, a class too rare to stratify stops the run or is quarantined (columns.rare_classes),
and a label left with a single class stops it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkprep.config import Config
from sparkprep.contract import MESSAGE, RARE_LABEL, RAW, REASON, REASON_COLUMN
from sparkprep.errors import InputError
from sparkprep.io.read import file_layouts, rendered_record
from sparkprep.stages.clean import quarantine_columns
from sparkprep.stages.context import Context
from sparkprep.stages.dedup import conflicts, exact, near
from sparkprep.stages.split import held_out

log = logging.getLogger(__name__)

#: The dedup rules, in the order they run.
RULES = (exact.apply, conflicts.apply, near.apply)
_QUARANTINE_COLUMNS = (REASON, REASON_COLUMN, MESSAGE)


@dataclass(frozen=True)
class Deduplicated:
    """What the dedup stage leaves.

    Args:
        rows: the rows kept.
        rejected: rows that a rule (or the rare-class check) rejects, in the quarantine schema but
            for `record`: their `_sp_position` instead, which clean.numbered turns into it.
        counts: input rows absorbed by each absorbing rule (exact, key, near) and the rows each
            counting rule counted (conflicting_rows).
        remaining: rows kept per (class, held out by a column rule).
        rejected_by_column: the rows of `rejected` per (reason, column), counted in the aggregation
            that counts the rows kept (so the quarantine's counts need no pass of their own).
    """

    rows: DataFrame
    rejected: DataFrame
    counts: dict[str, int]
    remaining: dict[tuple[str, bool], int]
    rejected_by_column: dict[tuple[str, str | None], int]

    @property
    def by_kind(self) -> dict[str, int]:
        """Input rows absorbed per absorbing rule (manifest: duplicates.by_kind)."""
        return {kind: n for kind, n in self.counts.items() if exact.ABSORBED_PREFIX + kind in self.rows.columns}

    @property
    def duplicates(self) -> int:
        """Input rows absorbed by the rules, all kinds together (rows.duplicates)."""
        return sum(self.by_kind.values())


def run(rows: DataFrame, config: Config, ctx: Context) -> Deduplicated:
    """The RULES in order over the accepted rows, then the rare-class check.

    Args:
        rows: accepted rows with `add_row_id`'s and `add_feature_hash`'s columns.
        config: the run's config (dedup, columns, split for the holdout rule).
        ctx: the run's scratch space.
    """
    rejected: list[DataFrame] = []
    for rule in RULES:
        rows = rule(rows, config, ctx)
        if REASON in rows.columns:
            rejected.append(rows.where(F.col(REASON).isNotNull()))
            rows = rows.where(F.col(REASON).isNull()).drop(*_QUARANTINE_COLUMNS)
    counts, kept, by_column = _count(rows, rejected, config)
    rows, rare, remaining = rare_classes(rows, kept, config)
    one_class_stops(remaining, config)
    if rare is not None:
        rejected.append(rare)
        # The rare classes' rows are all their kept rows: counted already.
        by_column[(RARE_LABEL, config.columns.label)] = sum(  # type: ignore[union-attr]
            n for key, n in kept.items() if key not in remaining)
    # The headers are read only when some row needs its record rendered.
    layouts = file_layouts(rows.sparkSession, config.input) if by_column else {}
    quarantined = [quarantine_columns(r.withColumn(RAW, rendered_record(r, config.input, layouts))) for r in rejected]
    return Deduplicated(rows, reduce(DataFrame.unionByName, quarantined), counts, remaining, by_column)


def _count(kept: DataFrame, rejected: list[DataFrame], config: Config
           ) -> tuple[dict[str, int], dict[tuple[str, bool], int], dict[tuple[str, str | None], int]]:
    """Every counter summed over the rows kept and rejected, the rows kept per (class, held out by
    a column rule), and the rows rejected per (reason, column), in one aggregation."""
    names = exact.counters(kept)
    cls, held = F.col(config.columns.label).cast("string").alias("_sp_class"), held_out(config).alias("_sp_held")  # type: ignore[union-attr]
    no_reason = F.lit(None).cast("string")

    def part(df: DataFrame, is_kept: bool) -> DataFrame:
        # A rejected row carries the counters of the rules before the one that rejected it.
        return df.select(cls, held, (no_reason if is_kept else F.col(REASON)).alias("_sp_why"),
                         (no_reason if is_kept else F.col(REASON_COLUMN)).alias("_sp_where"),
                         *[F.col(c) if c in df.columns else F.lit(0).cast("long").alias(c) for c in names])
    found = (reduce(DataFrame.unionByName, [part(kept, True), *[part(r, False) for r in rejected]])
             .groupBy("_sp_class", "_sp_held", "_sp_why", "_sp_where")
             .agg(*[F.sum(c).alias(c) for c in names], F.count(F.lit(1)).alias("_sp_n")).collect())
    counts = {c.removeprefix(exact.ABSORBED_PREFIX).removeprefix(exact.COUNTED_PREFIX): int(sum(r[c] or 0 for r in found))
              for c in names}
    remaining: dict[tuple[str, bool], int] = {}
    by_column: dict[tuple[str, str | None], int] = {}
    for r in found:
        if r["_sp_why"] is None:
            remaining[(r["_sp_class"], r["_sp_held"])] = r["_sp_n"]
        else:
            by_column[(r["_sp_why"], r["_sp_where"])] = by_column.get((r["_sp_why"], r["_sp_where"]), 0) + r["_sp_n"]
    return counts, remaining, by_column


def _cross_validation_rows(remaining: dict[tuple[str, bool], int], holdout_fraction: float) -> dict[str, int]:
    """Per class, the rows left for cross-validation: not held out by a column rule, less the
    holdout fraction's share (as the row split takes it)."""
    rows: dict[str, int] = {}
    for (c, held), n in remaining.items():
        rows[c] = rows.get(c, 0) + (0 if held else n)
    return {c: n - int(math.floor(holdout_fraction * n + 0.5)) for c, n in rows.items()}


def rare_classes(rows: DataFrame, remaining: dict[tuple[str, bool], int],
                 config: Config) -> tuple[DataFrame, DataFrame | None, dict[tuple[str, bool], int]]:
    """A class with fewer cross-validation rows than columns.min_class_rows (default k) cannot be
    stratified: some folds get none of it. Usually it is no class at all (a typo, a stray value, a
    shifted column), so by default the run stops here, before anything is written; with
    columns.rare_classes: quarantine its rows are rejected as rare_label. Returns the rows kept,
    the rows rejected (with the quarantine columns; None if none) and the rows kept per (class,
    held out).

    Args:
        rows: what the dedup rules kept.
        remaining: their count per (class, held out by a column rule).
        config: the run's config (columns, split.k, split.holdout_fraction).
    """
    assert config.columns is not None
    cols, k = config.columns, config.split.k
    minimum = cols.min_class_rows or k
    per_class = _cross_validation_rows(remaining, config.split.holdout_fraction)
    rare = {c: n for c, n in sorted(per_class.items()) if n < minimum}
    if not rare:
        return rows, None, remaining
    listed = ", ".join(f"{c!r}: {n}" for c, n in rare.items())
    if cols.rare_classes == "stop":
        raise InputError(
            f"label column {cols.label}: {len(rare)} class(es) with fewer than {minimum} rows for cross-validation "
            f"(after dedup and the holdout; k={k}): {listed}. Nothing was written.\nWays out: list the expected "
            f"labels in columns.classes (any other value is quarantined as unknown_label); or set "
            f"columns.rare_classes: quarantine to quarantine rare classes as rare_label (columns.min_class_rows "
            f"sets the threshold); or lower split.k.")
    log.warning("quarantining rare classes (columns.rare_classes=quarantine): %s", listed)
    label = F.col(cols.label).cast("string")
    is_rare = label.isin(list(rare))
    counts = F.create_map(*[F.lit(x) for c, n in rare.items() for x in (c, n)])
    rejected = rows.where(is_rare).withColumns({
        REASON: F.lit(RARE_LABEL), REASON_COLUMN: F.lit(cols.label),
        MESSAGE: F.format_string(f"label %s has %d rows for cross-validation, fewer than {minimum} "
                                 "(columns.min_class_rows)", label, counts[label])})
    return rows.where(~is_rare), rejected, {key: n for key, n in remaining.items() if key[0] not in rare}


def one_class_stops(remaining: dict[tuple[str, bool], int], config: Config) -> None:
    """A label left with a single class is no classification task (no stratification, no weights
    to learn from): usually the input was filtered to one class, or columns.label names the wrong
    column. The run stops naming the class, before anything is written.

    Args:
        remaining: the rows the dedup rules and the rare-class check left, per (class, held out).
        config: the run's config (columns.label).
    """
    assert config.columns is not None
    classes: dict[str, int] = {}
    for (c, _), n in remaining.items():
        classes[c] = classes.get(c, 0) + n
    present = {c: n for c, n in classes.items() if n}
    if len(present) == 1:
        ((only, n),) = present.items()
        raise InputError(f"label column {config.columns.label} has one class only: {only!r} ({n} rows after cleaning "
                         f"and dedup), and a classifier needs two or more. Nothing was written. Check columns.label "
                         f"and the input (was it filtered to one class?).")
