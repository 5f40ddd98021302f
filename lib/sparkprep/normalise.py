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
    """Originals per (fold, label_index): row counts and per-column moments."""

    rows: dict[tuple[int, int], int]
    moments: dict[tuple[int, int], dict[str, Moments]]

    def folds(self) -> list[int]:
        return sorted({fold for fold, _ in self.rows})

    def class_counts(self, folds: list[int], classes: int) -> list[int]:
        return [sum(self.rows.get((f, c), 0) for f in folds) for c in range(classes)]

    def merged(self, folds: list[int], columns: list[str]) -> dict[str, Moments]:
        out = {c: Moments() for c in columns}
        for (fold, _), per_column in sorted(self.moments.items()):
            if fold in folds:
                out = {c: out[c].merge(per_column[c]) for c in columns}
        return out


def measure_groups(df: DataFrame, numeric: list[str]) -> FoldGroups:
    """One aggregation over originals (`replica == 0`) of the written data."""
    aggs = [F.count(F.lit(1)).alias("_rows")]
    for c in numeric:
        aggs += [F.count(c).alias(f"{c}__n"), F.avg(c).alias(f"{c}__mean"),
                 (F.var_pop(c) * F.count(c)).alias(f"{c}__m2")]
    rows, moments = {}, {}
    for r in df.where(F.col("replica") == 0).groupBy("fold", "label_index").agg(*aggs).collect():
        key = (int(r["fold"]), int(r["label_index"]))
        rows[key] = int(r["_rows"])
        moments[key] = {c: Moments(int(r[f"{c}__n"]), r[f"{c}__mean"] or 0.0, r[f"{c}__m2"] or 0.0)
                        for c in numeric}
    return FoldGroups(rows, moments)


def training_folds(k: int, fold: int | None) -> list[int]:
    """Folds whose originals train fold `fold` (None: the final model, every non-holdout fold)."""
    return [f for f in range(k) if f != fold and f != HOLDOUT_FOLD]
