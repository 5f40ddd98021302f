"""Per-fold statistics fitted on training rows only (first version: standardisation moments).

All folds come from ONE aggregation over the written originals, grouped by (fold, label_index):
count, mean and centred sum of squares per numeric column. The training statistics of fold k are
the exact merge (Chan et al.) of every group whose fold is not k and not the holdout, so fold k
and the holdout never contribute to what fold k is normalised with. Final statistics merge all
non-holdout folds. The same groups give per-fold class counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkprep import HOLDOUT_FOLD


@dataclass(frozen=True)
class Moments:
    """Count, mean and centred sum of squares (M2) of the non-null values of one column."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def merge(self, other: "Moments") -> "Moments":
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
class FoldGroups:
    """Per (fold, label_index): originals, oversampled copies, and per-column moments of originals."""

    rows: dict[tuple[int, int], int]
    copies: dict[tuple[int, int], int]
    moments: dict[tuple[int, int], dict[str, Moments]]

    def class_counts(self, folds: list[int], classes: int, with_copies: bool = False) -> list[int]:
        """Rows per class in `folds`: originals, plus copies for what a trainer reads."""
        def rows(key: tuple[int, int]) -> int:
            return self.rows.get(key, 0) + (self.copies.get(key, 0) if with_copies else 0)

        return [sum(rows((f, c)) for f in folds) for c in range(classes)]

    def merged(self, folds: list[int], columns: list[str]) -> dict[str, Moments]:
        out = {c: Moments() for c in columns}
        for (fold, _), per_column in sorted(self.moments.items()):
            if fold in folds:
                out = {c: out[c].merge(per_column[c]) for c in columns}
        return out


def measure_groups(df: DataFrame, numeric: list[str]) -> FoldGroups:
    """One aggregation over the written data; moments come from originals (`replica == 0`) only."""
    original = F.col("replica") == 0
    aggs = [F.count(F.when(original, 1)).alias("_rows"), F.count(F.when(~original, 1)).alias("_copies")]
    for c in numeric:
        value = F.when(original, F.col(c))
        aggs += [F.count(value).alias(f"{c}__n"), F.avg(value).alias(f"{c}__mean"),
                 (F.var_pop(value) * F.count(value)).alias(f"{c}__m2")]
    rows, copies, moments = {}, {}, {}
    for r in df.groupBy("fold", "label_index").agg(*aggs).collect():
        key = (int(r["fold"]), int(r["label_index"]))
        rows[key], copies[key] = int(r["_rows"]), int(r["_copies"])
        moments[key] = {c: Moments(int(r[f"{c}__n"]), r[f"{c}__mean"] or 0.0, r[f"{c}__m2"] or 0.0)
                        for c in numeric}
    return FoldGroups(rows, copies, moments)


def training_folds(k: int, fold: int | None) -> list[int]:
    """Folds whose originals train fold `fold` (None: the final model, every non-holdout fold)."""
    return [f for f in range(k) if f != fold and f != HOLDOUT_FOLD]
