"""Oversampling inside the training portions, after the split, with exact counts.

Copies are stored once, in their original's fold, with `replica = 1..n`; the holdout is never
resampled. For every cross-validation fold j and class c with n_jc originals, the fold is filled
up to T_jc = max(n_jc, round(target * max_c' n_jc')) rows: r_jc = T_jc - n_jc copies. Each
original gets r_jc div n_jc copies, and the first r_jc mod n_jc originals in hash order (the split's
per-(fold, class) rank) one more, so the totals are exact and a pure function of (row_id, seed).
With target 1 every fold holds the same number of rows of each class, hence so does every
training portion (a union of folds): train_k is balanced exactly for every k, provided every class
has a row in every fold to copy from (the split warns when a class has fewer than k rows).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkprep import HOLDOUT_FOLD
from sparkprep.split import FOLD_RANK, SplitPlan

_CLASS = "_sp_rebalance_class"


def replica_counts(plan: SplitPlan, target: float) -> dict[tuple[int, str], int]:
    """Copies to add per (fold, class): r_jc as in the module docstring."""
    out = {}
    for fold in range(plan.k):
        sizes = {c: plan.fold_size(c, fold) for c in plan.class_counts}
        goal = round(target * max(sizes.values(), default=0))
        out.update({(fold, c): max(0, goal - n) if n else 0 for c, n in sizes.items()})
    return out


def oversample_training_rows(df: DataFrame, label: str, plan: SplitPlan, target: float = 1.0) -> DataFrame:
    """Add `replica` (0 for originals) and the copies of minority rows, fold by fold."""
    rows = [(fold, c, plan.fold_size(c, fold), r) for (fold, c), r in replica_counts(plan, target).items() if r]
    table = df.sparkSession.createDataFrame(
        rows, f"fold int, {_CLASS} string, _sp_n long, _sp_r long")
    n, r, i = F.col("_sp_n"), F.col("_sp_r"), F.col(FOLD_RANK)
    copies = F.coalesce(F.floor(r / n) + F.when(i < r % n, 1).otherwise(0), F.lit(0)).cast("int")
    joined = (df.withColumn(_CLASS, F.col(label).cast("string"))
              .join(F.broadcast(table), ["fold", _CLASS], "left"))
    copies = F.when(F.col("fold") == HOLDOUT_FOLD, 0).otherwise(copies)
    return (joined.withColumn("replica", F.explode(F.sequence(F.lit(0), copies)))
            .drop(_CLASS, "_sp_n", "_sp_r"))
