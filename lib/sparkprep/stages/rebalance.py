"""Over- or undersampling inside the training portions, after the split, with exact counts.

Every output row gets `replica` and `in_train` (what a training portion reads). Oversampling:
copies are stored once, in their original's fold, with `replica = 1..n`, or (rebalance.copies:
count) not stored at all: each original carries its number of copies in `copies`, and the
trainer's loaders expand it into the same rows; the holdout is never resampled. For every
cross-validation fold j and class c with n_jc originals, the fold is filled up to
T_jc = max(n_jc, round(target * max_c' n_jc')) rows: r_jc = T_jc - n_jc copies. Each original
gets r_jc div n_jc copies, and the first r_jc mod n_jc originals in hash order (the split's
per-(fold, class) rank) one more, so the totals are exact and a pure function of (row_id, seed).
With target 1 every fold holds the same number of rows of each class, hence so does every
training portion (a union of folds): train_k is balanced exactly for every k, provided every class
has a row in every fold to copy from (the split warns when a class has fewer than k rows).

Undersampling is the mirror image and deletes nothing: validation (`fold == k and replica == 0`)
and the test split still see every original; an undersampled original only gets `in_train =
false`, and training portions skip it. With m_j the smallest nonzero class count of CV fold j,
class c keeps T_jc = min(n_jc, round(m_j / target)) originals: those of per-(fold, class) rank
below T_jc. The split numbers the n_jc rows of (fold j, class c) 0..n_jc-1 in hash order (row
split and group split alike), so exactly T_jc ranks lie below T_jc: the kept count is T_jc, not
an estimate, and a pure function of (row_id, seed). Every class present in fold j then keeps
between m_j and round(m_j / target) rows; with target 1 each keeps exactly m_j, so every fold, hence
every training portion (a union of folds), holds the same number of rows of each class (again
provided every class has a row in every fold). The holdout (fold -1) is never resampled:
`in_train` is true there, and false only for undersampled CV originals.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkprep.contract import (COPIES, COPIES_AS_ROWS, COPIES_COUNTED, FOLD, FOLD_RANK, HOLDOUT_FOLD, IN_TRAIN,
                                REPLICA)
from sparkprep.stages.split import SplitPlan

_CLASS = "_sp_rebalance_class"


def replica_counts(plan: SplitPlan, target: float) -> dict[tuple[int, str], int]:
    """Copies to add per (fold, class): r_jc as in the module docstring.

    Args:
        plan: the split's plan (per-class fold sizes).
        target: rebalance.target: the minority's share of the majority.
    """
    out = {}
    for fold in range(plan.k):
        sizes = {c: plan.fold_size(c, fold) for c in plan.class_counts}
        goal = round(target * max(sizes.values(), default=0))
        out.update({(fold, c): max(0, goal - n) if n else 0 for c, n in sizes.items()})
    return out


def kept_counts(plan: SplitPlan, target: float) -> dict[tuple[int, str], int]:
    """Originals kept for training per (fold, class) when undersampling: T_jc as in the module docstring.

    Args:
        plan: the split's plan.
        target: rebalance.target.
    """
    out = {}
    for fold in range(plan.k):
        sizes = {c: plan.fold_size(c, fold) for c in plan.class_counts}
        cap = round(min((n for n in sizes.values() if n), default=0) / target)
        out.update({(fold, c): min(n, cap) for c, n in sizes.items()})
    return out


def rebalance(df: DataFrame, label: str, plan: SplitPlan, method: str, target: float,
              copies: str = COPIES_AS_ROWS) -> DataFrame:
    """Add `replica` and `in_train` to split rows as `method` ("none", "oversample", "undersample") says.

    Args:
        df: split rows with `fold` and `FOLD_RANK`.
        label: the label column.
        plan: the split's plan.
        method: rebalance.method.
        target: rebalance.target.
        copies: rebalance.copies: oversampled copies as rows, or counted on their original.
    """
    if method == "oversample":
        return (oversample_training_rows(df, label, plan, target, counted=copies == COPIES_COUNTED)
                .withColumn(IN_TRAIN, F.lit(True)))
    if method == "undersample":
        return undersample_training_rows(df, label, plan, target)
    return df.withColumns({REPLICA: F.lit(0), IN_TRAIN: F.lit(True)})


def undersample_training_rows(df: DataFrame, label: str, plan: SplitPlan, target: float = 1.0) -> DataFrame:
    """Add `replica` (0: no copies) and `in_train`: false for CV originals of rank >= T_jc.

    Args:
        df: split rows with `fold` and `FOLD_RANK`.
        label: the label column.
        plan: the split's plan.
        target: rebalance.target.
    """
    table = df.sparkSession.createDataFrame(
        [(fold, c, t) for (fold, c), t in kept_counts(plan, target).items()], f"fold int, {_CLASS} string, _sp_t long")
    joined = (df.withColumn(_CLASS, F.col(label).cast("string"))
              .join(F.broadcast(table), [FOLD, _CLASS], "left"))
    # The holdout has no rank and no entry in the table: it stays whole.
    kept = F.coalesce(F.col(FOLD_RANK) < F.col("_sp_t"), F.lit(True))
    return joined.withColumns({REPLICA: F.lit(0), IN_TRAIN: kept}).drop(_CLASS, "_sp_t")


def oversample_training_rows(df: DataFrame, label: str, plan: SplitPlan, target: float = 1.0,
                             counted: bool = False) -> DataFrame:
    """Add `replica` (0 for originals) and the copies of minority rows, fold by fold.

    Args:
        df: split rows with `fold` and `FOLD_RANK`.
        label: the label column.
        plan: the split's plan.
        target: rebalance.target.
        counted: write no copy rows; each original gets its number of copies in `copies` instead
            (rebalance.copies: count), which the trainer's loaders expand into replicas 1..copies.
    """
    rows = [(fold, c, plan.fold_size(c, fold), r) for (fold, c), r in replica_counts(plan, target).items() if r]
    table = df.sparkSession.createDataFrame(
        rows, f"fold int, {_CLASS} string, _sp_n long, _sp_r long")
    n, r, i = F.col("_sp_n"), F.col("_sp_r"), F.col(FOLD_RANK)
    copies = F.coalesce(F.floor(r / n) + F.when(i < r % n, 1).otherwise(0), F.lit(0)).cast("int")
    joined = (df.withColumn(_CLASS, F.col(label).cast("string"))
              .join(F.broadcast(table), [FOLD, _CLASS], "left"))
    copies = F.when(F.col(FOLD) == HOLDOUT_FOLD, 0).otherwise(copies)
    added = (joined.withColumns({REPLICA: F.lit(0), COPIES: copies}) if counted
             else joined.withColumn(REPLICA, F.explode(F.sequence(F.lit(0), copies))))
    return added.drop(_CLASS, "_sp_n", "_sp_r")
