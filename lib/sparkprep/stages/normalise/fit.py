"""Per-fold transforms fitted on training rows only (their Spark applier: spark.py).

All folds' numeric and array statistics come from ONE aggregation over the written originals,
grouped by (fold, label_index): count and shifted sums of values and squares per column, min/max
where a method needs them (when the written output is local Parquet or Delta, the same sums come
from one job that reads the files with pyarrow and adds them up in a compiled loop:
`sparkprep.stages.normalise.parquet`, about a third of Spark's grouped aggregation's CPU). Where a
method needs quantiles, a second, narrow job collects (as Arrow) the fold and value of every
originals' present value in a deterministic hash sample (every value up to
`normalise.sketch_sample_rows` present values in a column's smallest training set), and each
training set's quantiles are the exact quantiles of its sampled values (`_quantile_samples`). The
statistics of fold k are the merge of every group whose fold is not k and not the holdout (train_k
= all groups minus fold k's and the holdout's): moments merge exactly (Chan et al.), min/max
trivially, samples by concatenation. So fold k and the holdout never contribute to what fold k is
normalised with, and k folds cost one pass, not k. Final statistics merge all non-holdout folds.
The same groups give per-fold class counts.

Why not Spark's KLL sketches (`kll_sketch_agg_double`), as before: a KLL sketch compacts with
random coin flips and in the order its values arrive, so the same input and seed gave different
medians and clip bounds from run to run (3,000 demo rows: an upper clip of 4.15 in one run, 3.79
in the next), against DESIGN.md's first rule. Exact quantiles of a sample chosen by a hash of
row_id depend on the rows only; their rank error is the sample's alone (0.16% at 1M values,
where KLL at k=200 added 1.65%).

Where one pass is not enough, and what we do instead:
- categorical frequencies need a group per distinct value, not per fold: a second aggregation
  (over the categorical columns only, all columns at once), then the counts per fold summed over
  each training set on the driver. The driver holds distinct values x folds (a vocabulary must fit
  in transform.json anyway).
- the quantiles of each training set come from the collected sample on the driver (numpy), not
  from the data: the sample is bounded by normalise.sketch_sample_rows whatever the output's size.
- the mean/std of *clipped* values would need each fold's own clip bounds applied to every row:
  a pass per fold. The config refuses clip with standard scaling or mean imputation; with robust
  (clip quantiles outside [0.25, 0.75]) or minmax (the bounds are the min/max) one pass suffices.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkprep.config import (ArrayTransform, CategoricalTransform, ColumnsConfig, Config, NormaliseConfig,
                              NumericTransform)
from sparkprep.contract import COPIES, FOLD, HOLDOUT_FOLD, IN_TRAIN, LABEL_INDEX, REPLICA, ROW_ID
from sparkprep.stages.normalise.parquet import GroupSums, file_source, group_sums
from sparkprep.stages.normalise.spark import present, symlog
from sparkprep.stages.split import training_folds
from sparkprep.transform import ArrayParams, CategoricalParams, NumericParams, TransformParams

log = logging.getLogger(__name__)

_MASK53 = (1 << 53) - 1


@dataclass(frozen=True)
class Moments:
    """Count, mean and centred sum of squares (M2) of the non-null values of one column."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def merge(self, other: "Moments") -> "Moments":
        """The moments of both groups together (Chan et al.).

        Args:
            other: another group's moments.
        """
        n = self.count + other.count
        if n == 0:
            return Moments()
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / n
        m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
        return Moments(n, mean, m2)

    def to_dict(self) -> dict[str, float | int]:
        """scikit-learn StandardScaler semantics: population std; a constant column gets std 1."""
        std = math.sqrt(self.m2 / self.count) if self.count else 0.0
        return {"mean": self.mean, "std": std if std > 0 else 1.0, "count": self.count}


@dataclass(frozen=True)
class Extent:
    """Min and max of the present values of one column (or array position); mergeable."""

    low: float = math.inf
    high: float = -math.inf

    def merge(self, other: "Extent") -> "Extent":
        """The min/max of both groups together.

        Args:
            other: another group's extent.
        """
        return Extent(min(self.low, other.low), max(self.high, other.high))


@dataclass(frozen=True)
class FitSpec:
    """What to fit: the resolved transform of every feature column, and the array widths."""

    numeric: dict[str, NumericTransform] = field(default_factory=dict)
    categorical: dict[str, CategoricalTransform] = field(default_factory=dict)
    arrays: dict[str, ArrayTransform] = field(default_factory=dict)
    widths: dict[str, int] = field(default_factory=dict)
    #: Present values a column's smallest training set gives its quantiles at most (a hash sample of
    #: the rest: `sketch_sample_rate`); None: every value.
    sketch_sample: int | None = None

    @classmethod
    def of(cls, config: NormaliseConfig, columns: ColumnsConfig, widths: dict[str, int]) -> "FitSpec":
        """Per-column overrides over the per-role defaults.

        Args:
            config: the normalise section.
            columns: the columns section.
            widths: the array columns' lengths.
        """
        return cls({c: config.numeric_columns.get(c, config.numeric) for c in columns.numeric},
                   {c: config.categorical_columns.get(c, config.categorical) for c in columns.categorical},
                   {c: config.array_columns.get(c, config.array) for c in columns.array},
                   widths, config.sketch_sample_rows)

    def ranks(self, column: str) -> list[float]:
        """The quantiles column `column` needs (empty: none).

        Args:
            column: a numeric column.
        """
        t = self.numeric[column]
        ranks = {0.5} if t.impute == "median" else set()
        if t.method == "robust":
            ranks |= {0.25, 0.5, 0.75}
        if t.clip is not None:
            ranks |= set(t.clip)
        return sorted(ranks)


def array_widths(df: DataFrame, arrays: list[str]) -> dict[str, int]:
    """Lengths of the (fixed-length) array columns, from one row that has them all.

    Args:
        df: the written rows.
        arrays: the array columns.
    """
    if not arrays:
        return {}
    first = df.where(F.greatest(*[F.size(c) for c in arrays], F.lit(-1)) >= 0).select(
        *[F.size(c).alias(c) for c in arrays]).limit(1).collect()
    return {c: max(int(first[0][c]), 0) if first else 0 for c in arrays}


@dataclass(frozen=True)
class FoldGroups:
    """Per (fold, label_index): originals, oversampled copies, undersampled originals (`in_train`
    false), and per-column statistics of originals.

    `moments`/`extents` are keyed by column, and by `column[i]` for position i of an array column;
    `samples` holds, per numeric column whose method needs quantiles, the folds and values of its
    sampled present values (training originals only).
    """

    rows: dict[tuple[int, int], int]
    copies: dict[tuple[int, int], int]
    moments: dict[tuple[int, int], dict[str, Moments]]
    extents: dict[tuple[int, int], dict[str, Extent]] = field(default_factory=dict)
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    undersampled: dict[tuple[int, int], int] = field(default_factory=dict)
    #: Per sampled column, the fraction of its values in the sample (`sketch_sample_rate`).
    sample_rates: dict[str, float] = field(default_factory=dict)

    def class_counts(self, folds: list[int], classes: int, as_read: bool = False) -> list[int]:
        """Rows per class in `folds`: originals; with `as_read`, what a training portion reads
        (plus copies, minus undersampled originals).

        Args:
            folds: the folds to count.
            classes: the number of classes.
            as_read: count what a training portion reads.
        """
        def rows(key: tuple[int, int]) -> int:
            extra = self.copies.get(key, 0) - self.undersampled.get(key, 0) if as_read else 0
            return self.rows.get(key, 0) + extra

        return [sum(rows((f, c)) for f in folds) for c in range(classes)]

    def merged(self, folds: list[int], columns: list[str]) -> dict[str, Moments]:
        """Each column's moments over `folds` (one training set).

        Args:
            folds: the folds to merge.
            columns: the numeric columns.
        """
        out = {c: Moments() for c in columns}
        for (fold, _), per_column in sorted(self.moments.items()):
            if fold in folds:
                out = {c: out[c].merge(per_column[c]) for c in columns}
        return out

    def extent(self, folds: list[int], column: str) -> Extent:
        """Min/max over `folds` (measured only for the columns of minmax methods).

        Args:
            folds: the folds to merge.
            column: a numeric column.
        """
        out = Extent()
        for (fold, _), per_column in sorted(self.extents.items()):
            if fold in folds and column in per_column:
                out = out.merge(per_column[column])
        return out


def _value(column: str, spec: FitSpec) -> Column:
    """The value the statistics of a numeric column are fitted on (present values only)."""
    x = present(F.col(column).cast("double"))
    t = spec.numeric.get(column)
    return symlog(x) if t is not None and t.log1p else x


def _element(column: str, i: int) -> str:
    return f"{column}[{i}]"


def _shifts(values: DataFrame, names: list[str]) -> dict[str, float]:
    """A typical value per column (median of the first ≤1000 rows' present values, from a limit
    query that reads one file's first rows): moments are summed around it, so sum((v - shift)²)
    does not cancel catastrophically the way a plain sum of squares does when |mean| >> std."""
    sample = values.select(*[F.col(f"`{n}`") for n in names]).limit(1000).collect()
    shifts = {}
    for i, name in enumerate(names):
        present = sorted(r[i] for r in sample if r[i] is not None)
        shifts[name] = float(present[len(present) // 2]) if present else 0.0
    return shifts


def _stat_aggs(name: str, shift: float, extent: bool) -> list[Column]:
    # count, shifted sum and sum of squares (plain sums cost about what the floor's avg costs;
    # avg + var_pop, each its own running mean with a division per value, cost 2x), and min/max
    # only where a minmax method needs them.
    v = F.col(f"`{name}`")
    d = v - F.lit(shift)
    aggs = [F.count(v).alias(f"{name}__n"), F.sum(d).alias(f"{name}__s1"), F.sum(d * d).alias(f"{name}__s2")]
    return aggs + ([F.min(v).alias(f"{name}__min"), F.max(v).alias(f"{name}__max")] if extent else [])


def sketch_sample_rate(present: int, sample: int | None) -> float:
    """The fraction of a column's values its quantiles are taken over: every value while its
    smallest training set has at most `sample` present values, else that set gets about `sample`.

    Args:
        present: present values in the column's smallest training set.
        sample: normalise.sketch_sample_rows (None: every value).
    """
    return 1.0 if sample is None or present <= sample else sample / present


def smallest_training_set(moments: dict[tuple[int, int], dict[str, Moments]], column: str) -> int:
    """Present values of `column` in its smallest training set (final or any fold's), from the
    per-(fold, class) counts.

    Args:
        moments: per (fold, class), each column's moments.
        column: a numeric column.
    """
    per_fold: dict[int, int] = {}
    for (fold, _), per_column in moments.items():
        if fold != HOLDOUT_FOLD:
            per_fold[fold] = per_fold.get(fold, 0) + per_column[column].count
    total = sum(per_fold.values())
    return min([total] + [total - n for n in per_fold.values()]) if len(per_fold) > 1 else total


def in_sketch_sample(rate: float) -> Column:
    """Whether a row is in the quantiles' sample: a salted hash of its row_id below `rate`, so the
    sample depends on the rows only (not on partitioning or order), and the verifier redraws it.

    Args:
        rate: `sketch_sample_rate`.
    """
    if rate >= 1.0:
        return F.lit(True)
    return F.xxhash64(F.lit("sparkprep/sketch-sample"), F.col(ROW_ID)).bitwiseAND(F.lit(_MASK53)) < \
        F.lit(int(rate * (_MASK53 + 1)))


def _moments(n: int, s1: float | None, s2: float | None, shift: float) -> Moments:
    if not n:
        return Moments()
    return Moments(n, shift + s1 / n, max(s2 - s1 * s1 / n, 0.0))


def measure_groups(df: DataFrame, numeric: list[str], spec: FitSpec | None = None) -> FoldGroups:
    """One aggregation over the written data (and a narrow job collecting a sample for quantiles,
    `_quantile_samples`);
    statistics come from originals (`replica == 0`) only,
    undersampled ones included: normalisation is fitted on all training originals (DESIGN.md), so
    a fold's transform does not depend on the rebalancing.

    Without `spec`, every numeric column gets the moments of its present values; with it, also
    min/max (minmax methods), samples (quantile methods) and array positions as the spec needs. The fitted values are
    projected once per row (null unless an original's present value), then aggregated.

    Args:
        df: the written rows.
        numeric: the numeric columns.
        spec: what each column's transform needs measured.
    """
    spec = spec or FitSpec({c: NumericTransform() for c in numeric})
    original = F.col(REPLICA) == 0
    projected = {c: _value(c, spec) for c in numeric}
    for c in spec.arrays:
        for i in range(spec.widths[c]):
            # try_element_at: a shorter array gives a missing element here, not an ANSI error.
            projected[_element(c, i)] = present(F.try_element_at(F.col(c), F.lit(i + 1)).cast("double"))
    # Data without `in_train` (hand-built frames, outputs older than undersampling) trains on every row.
    in_train = F.col(IN_TRAIN) if IN_TRAIN in df.columns else F.lit(True)
    # A row's copies: 1 for a copy row, or those counted on an original (rebalance.copies: count).
    added = F.col(COPIES) if COPIES in df.columns else (~original).cast("int")
    values = df.select(FOLD, LABEL_INDEX, original.alias("_original"), in_train.alias("_in_train"),
                       added.alias("_added"),
                       *([ROW_ID] if ROW_ID in df.columns else []),
                       *[F.when(original, v).alias(n) for n, v in projected.items()])
    stats = list(projected)
    with_extent = {c for c in numeric if spec.numeric.get(c, NumericTransform()).method == "minmax"} | {
        _element(c, i) for c, t in spec.arrays.items() if t.method == "minmax" for i in range(spec.widths[c])}
    shifts = _shifts(values, stats)
    symlog = {c for c in numeric if spec.numeric.get(c, NumericTransform()).log1p}
    source, tasks, why = file_source(df, stats, shifts, symlog)
    if source is not None and tasks is not None:
        log.info("normalise: statistics from the Parquet files (%d tasks): %s", len(tasks), why)
        counted = _from_sums(group_sums(df, source, tasks), shifts, with_extent)
    else:
        log.info("normalise: statistics by Spark's grouped aggregation: %s", why)
        counted = _aggregate(values, stats, shifts, with_extent)
    rows, copies, undersampled, moments, extents = counted
    sample = spec.sketch_sample if ROW_ID in df.columns else None
    rates = {c: sketch_sample_rate(smallest_training_set(moments, c), sample) for c in numeric if spec.ranks(c)}
    return FoldGroups(rows, copies, moments, extents, _quantile_samples(values, rates), undersampled, rates)


_Counted = tuple[dict[tuple[int, int], int], dict[tuple[int, int], int], dict[tuple[int, int], int],
                 dict[tuple[int, int], dict[str, Moments]], dict[tuple[int, int], dict[str, Extent]]]


def _aggregate(values: DataFrame, stats: list[str], shifts: dict[str, float], with_extent: set[str]) -> _Counted:
    """Rows, copies, undersampled rows, moments and extents per (fold, label_index): Spark's
    grouped aggregation of `measure_groups`' projected values."""
    aggs = [F.count(F.when(F.col("_original"), 1)).alias("_rows"),
            F.sum("_added").alias("_copies"),
            F.count(F.when(~F.col("_in_train"), 1)).alias("_undersampled")]
    for name in stats:
        aggs += _stat_aggs(name, shifts[name], name in with_extent)
    rows, copies, undersampled, moments, extents = {}, {}, {}, {}, {}
    for r in values.groupBy(FOLD, LABEL_INDEX).agg(*aggs).collect():
        key = (int(r[FOLD]), int(r[LABEL_INDEX]))
        rows[key], copies[key], undersampled[key] = int(r["_rows"]), int(r["_copies"]), int(r["_undersampled"])
        moments[key] = {c: _moments(int(r[f"{c}__n"]), r[f"{c}__s1"], r[f"{c}__s2"], shifts[c]) for c in stats}
        extents[key] = {c: Extent(r[f"{c}__min"], r[f"{c}__max"]) if r[f"{c}__n"] else Extent() for c in with_extent}
    return rows, copies, undersampled, moments, extents


def _from_sums(sums: GroupSums, shifts: dict[str, float], with_extent: set[str]) -> _Counted:
    """The same, from the Parquet path's sums."""
    rows, copies, undersampled, moments, extents = {}, {}, {}, {}, {}
    for key, g in sums.slots.items():
        rows[key], copies[key], undersampled[key] = int(sums.rows[g]), int(sums.copies[g]), int(sums.undersampled[g])
        per = {c: (int(sums.n[i, g]), float(sums.s1[i, g]), float(sums.s2[i, g]), float(sums.lo[i, g]),
                   float(sums.hi[i, g])) for i, c in enumerate(sums.columns)}
        moments[key] = {c: _moments(n, s1, s2, shifts[c]) for c, (n, s1, s2, _, _) in per.items()}
        extents[key] = {c: Extent(per[c][3], per[c][4]) if per[c][0] else Extent() for c in with_extent}
    return rows, copies, undersampled, moments, extents


def _quantile_samples(values: DataFrame, rates: dict[str, float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per column in `rates`: the fold and value of each present value of a training original in
    the column's hash sample, collected as Arrow (about normalise.sketch_sample_rows values per
    training set at most, 16 bytes each; none when no column needs quantiles).

    A job of its own over the sampled rows, where the moments' aggregation could have carried it:
    a sketch or collect aggregate turns the whole aggregation into an ObjectHashAggregate (no
    generated code), whose per-row cost was about twice the moments' generated code, even for rows
    whose input is null (10M rows: moments 4-5 s of executor CPU, moments + 4 sketches 10-12 s, 4
    sketches over a 10% sample filtered first 1.3-1.6 s, which is about one scan)."""
    if not rates:
        return {}
    widest = max(rates.values())
    sampled = values.where(F.col("_original") & (F.col(FOLD) != HOLDOUT_FOLD) & in_sketch_sample(widest)).select(
        FOLD, *[(F.col(f"`{c}`") if rate == widest else F.when(in_sketch_sample(rate), F.col(f"`{c}`"))).alias(c)
                for c, rate in rates.items()])
    table = sampled.toArrow()
    folds = table.column(FOLD).to_numpy(zero_copy_only=False)
    out = {}
    for c in rates:
        x = table.column(c).to_numpy(zero_copy_only=False)  # null (not present, not sampled) -> NaN
        kept = ~np.isnan(x)  # present values are finite (`present`)
        out[c] = (folds[kept], x[kept])
    return out


def count_categories(df: DataFrame, columns: list[str]) -> dict[str, dict[int, dict[str, int]]]:
    """column -> fold -> value -> count over non-holdout originals (nulls are not counted).

    A second aggregation (see the module docstring): one group per (fold, column, value), all
    categorical columns in one job; map-side partial aggregation keeps the shuffle to the distinct
    values of each task.

    Args:
        df: the written rows.
        columns: the categorical columns.
    """
    if not columns:
        return {}
    pairs = [F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value")) for c in columns]
    # One column needs no explode (a row per value and column), which costs as much as the count.
    pair = pairs[0] if len(pairs) == 1 else F.explode(F.array(*pairs))
    counted = (df.where((F.col(REPLICA) == 0) & (F.col(FOLD) != HOLDOUT_FOLD))
               .select(FOLD, pair.alias("pair")).select(FOLD, "pair.column", "pair.value")
               .where(F.col("value").isNotNull()).groupBy(FOLD, "column", "value").count())
    out: dict[str, dict[int, dict[str, int]]] = {c: {} for c in columns}
    for r in counted.collect():
        out[r["column"]].setdefault(int(r[FOLD]), {})[r["value"]] = int(r["count"])
    return out


def _set_name(fold: int | None) -> str:
    return "final" if fold is None else str(fold)


def _quantiles(groups: FoldGroups, spec: FitSpec, sets: dict[str, list[int]]) -> dict[tuple[str, str], dict[float, float]]:
    """(training set, column) -> rank -> quantile: over the set's sampled values, the smallest value
    whose share of them at or below it reaches the rank (numpy's inverted_cdf: a value of the data,
    as DataSketches' inclusive quantile), exact on the sample, whatever order the values came in."""
    out = {}
    for column, (folds, x) in sorted(groups.samples.items()):
        ranks = spec.ranks(column)
        for name, members in sets.items():
            chosen = x[np.isin(folds, members)]
            if len(chosen) and ranks:
                out[(name, column)] = dict(zip(ranks, np.quantile(chosen, ranks, method="inverted_cdf").tolist()))
    return out


def _unit(scale: float) -> float:
    """scikit-learn's handling of a zero scale (a constant column): leave the values unscaled."""
    return scale if scale > 0 and math.isfinite(scale) else 1.0


def _numeric_params(column: str, t: NumericTransform, m: Moments, extent: Extent,
                    q: dict[float, float], fitted_on: str) -> NumericParams:
    if not m.count:
        log.warning("numeric column %s has no present values in the training rows of %s: "
                    "every value becomes the fill", column, fitted_on)
        fill = _symlog_value(t.fill_value) if t.log1p and t.impute == "constant" else (
            t.fill_value if t.impute == "constant" else 0.0)
        return NumericParams(column, t.method, t.log1p, fill, -math.inf, math.inf, 0.0, 1.0, 0)
    lower, upper = (q[t.clip[0]], q[t.clip[1]]) if t.clip else (-math.inf, math.inf)
    std = math.sqrt(m.m2 / m.count)
    center, scale = {
        "standard": (m.mean, std),
        "minmax": (lower, upper - lower) if t.clip else (extent.low, extent.high - extent.low),
        "robust": (q.get(0.5), q.get(0.75, 0.0) - q.get(0.25, 0.0)),
        "none": (0.0, 1.0),
    }[t.method]
    fill = {"mean": m.mean, "median": q.get(0.5),
            "constant": _symlog_value(t.fill_value) if t.log1p else t.fill_value}[t.impute]
    return NumericParams(column, t.method, t.log1p, float(fill), lower, upper, float(center), _unit(scale), m.count)


def _symlog_value(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x) if x else 0.0


def _array_params(column: str, t: ArrayTransform, width: int, groups: FoldGroups, folds: list[int]) -> ArrayParams:
    names = [_element(column, i) for i in range(width)]
    moments = groups.merged(folds, names)
    extents = [groups.extent(folds, n) for n in names]
    if not t.per_element:  # one statistic over every element: the merge of the positions'
        pooled_m, pooled_e = Moments(), Extent()
        for n, e in zip(names, extents):
            pooled_m, pooled_e = pooled_m.merge(moments[n]), pooled_e.merge(e)
        moments, extents = {n: pooled_m for n in names}, [pooled_e] * width
    center, scale = [], []
    for n, e in zip(names, extents):
        m = moments[n]
        c, s = {"standard": (m.mean, math.sqrt(m.m2 / m.count) if m.count else 1.0),
                "minmax": (e.low, e.high - e.low) if m.count else (0.0, 1.0),
                "none": (0.0, 1.0)}[t.method]
        center.append(float(c))
        scale.append(_unit(s))
    return ArrayParams(column, t.method, t.per_element, tuple(center), tuple(scale))


def _vocabulary(t: CategoricalTransform, counts: dict[int, dict[str, int]], folds: list[int]) -> tuple[str, ...]:
    """Values by training-set frequency (ties by value), at least min_count, at most max_size."""
    total: dict[str, int] = {}
    for fold in folds:
        for value, n in counts.get(fold, {}).items():
            total[value] = total.get(value, 0) + n
    kept = sorted((v for v, n in total.items() if n >= t.min_count), key=lambda v: (-total[v], v))
    return tuple(kept[: t.max_size] if t.max_size else kept)


def fit_transforms(groups: FoldGroups, categories: dict[str, dict[int, dict[str, int]]],
                   spec: FitSpec, k: int) -> tuple[TransformParams, dict[int, TransformParams]]:
    """The final and per-fold parameters from measured groups and category counts (no data pass).

    Args:
        groups: `measure_groups`.
        categories: `count_categories`.
        spec: the transforms asked for.
        k: the number of folds.
    """
    sets = {_set_name(f): training_folds(k, f) for f in [None, *range(k)]}
    quantiles = _quantiles(groups, spec, sets)
    fitted = {}
    for name, folds in sets.items():
        moments = groups.merged(folds, list(spec.numeric))
        fitted[name] = TransformParams(
            fitted_on=name,
            numeric=tuple(_numeric_params(c, t, moments[c], groups.extent(folds, c),
                                          quantiles.get((name, c), {}), name) for c, t in spec.numeric.items()),
            categorical=tuple(CategoricalParams(c, t.encoding, _vocabulary(t, categories.get(c, {}), folds))
                              for c, t in spec.categorical.items()),
            arrays=tuple(_array_params(c, t, spec.widths[c], groups, folds) for c, t in spec.arrays.items()),
            rows=sum(n for (fold, _), n in groups.rows.items() if fold in folds))
    return fitted["final"], {f: fitted[str(f)] for f in range(k)}


def fit(written: DataFrame, config: Config, k: int) -> tuple[FoldGroups, tuple[TransformParams, dict[int, TransformParams]]]:
    """The normalise stage: the groups measured on the written data (counts, moments, samples)
    and the transforms of the final model and of each fold fitted from them.

    Args:
        written: the published rows, read back.
        config: the run's config (normalise, columns).
        k: the number of cross-validation folds.
    """
    cols = config.columns
    assert cols is not None
    spec = FitSpec.of(config.normalise, cols, array_widths(written, cols.array))
    groups = measure_groups(written, cols.numeric, spec)
    transforms = fit_transforms(groups, count_categories(written, cols.categorical), spec, k)
    return groups, transforms
