"""The split against scikit-learn's StratifiedKFold and StratifiedGroupKFold on real datasets
shipped with scikit-learn."""

import numpy as np
import pytest
from pyspark.sql import functions as F
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from sparkprep.contract import GROUP
from sparkprep.stages.split import SplitPlan, assign_folds, assign_group_folds

K = 5


def _digits_zero_vs_rest():
    y = load_digits().target
    return (y == 0).astype(int)  # about 10% minority


DATASETS = {"breast_cancer": lambda: load_breast_cancer().target, "wine": lambda: load_wine().target,
            "digits_0_vs_rest": _digits_zero_vs_rest}


def _split(spark, labels, seed=42, names=None):
    names = names or {}
    rows = [(int(i) * 2654435761 + 1, names.get(str(v), str(v))) for i, v in enumerate(labels)]
    df = spark.createDataFrame(rows, "row_id long, label string").repartition(3)
    plan = SplitPlan.measure(df, "label", K, 0.0, seed)
    return {r["row_id"]: r["fold"] for r in assign_folds(df, "label", plan).collect()}


def _per_fold_counts(folds_of_rows, labels, classes):
    counts = np.zeros((K, len(classes)), dtype=int)
    for fold, label in zip(folds_of_rows, labels):
        counts[fold, classes.index(label)] += 1
    return counts


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_folds_match_scikit_learns_class_counts(spark, name):
    y = DATASETS[name]()
    classes = sorted(set(y.tolist()))
    ours = _split(spark, y)
    ids = [int(i) * 2654435761 + 1 for i in range(len(y))]
    assert sorted(ours) == sorted(ids) and set(ours.values()) == set(range(K))  # each row once
    mine = _per_fold_counts([ours[i] for i in ids], y.tolist(), classes)
    theirs = np.zeros_like(mine)
    for fold, (_, test) in enumerate(StratifiedKFold(K, shuffle=True, random_state=0).split(np.zeros(len(y)), y)):
        theirs[fold] = [int((y[test] == c).sum()) for c in classes]
    # Both are exact to within one row per class and fold; ours also balances fold sizes to 1.
    assert (mine.max(axis=0) - mine.min(axis=0) <= 1).all()
    assert (np.abs(np.sort(mine, axis=0) - np.sort(theirs, axis=0)) <= 1).all()
    assert mine.sum(axis=1).max() - mine.sum(axis=1).min() <= 1


def test_renaming_the_classes_keeps_the_split(spark):
    y = load_wine().target  # 59 / 71 / 48 rows
    assert _split(spark, y) == _split(spark, y, names={"0": "zebra", "1": "aardvark", "2": "mongoose"})


def test_renaming_classes_of_equal_size_keeps_the_split(spark):
    y = np.array([0] * 23 + [1] * 23)
    assert _split(spark, y) == _split(spark, y, names={"0": "b", "1": "a"})


def test_same_seed_same_split_other_seed_other_split(spark):
    y = load_breast_cancer().target
    assert _split(spark, y, seed=1) == _split(spark, y, seed=1)
    assert _split(spark, y, seed=1) != _split(spark, y, seed=2)


def _pairs(n, rng):
    """A tenth of the rows in near-duplicate pairs, the rest alone (as in the demo)."""
    groups = np.arange(n)
    paired = rng.choice(n, size=n // 10 * 2, replace=False)
    groups[paired[1::2]] = groups[paired[0::2]]
    return groups


GROUPINGS = {"pairs": _pairs, "mixed_groups_of_about_2": lambda n, rng: rng.integers(0, n // 2, n),
             "mixed_groups_of_about_4": lambda n, rng: rng.integers(0, n // 4, n)}


def _deviation(counts, y, classes):
    """Largest |rows of a class in a fold - its rows / K| (the manifest's group deviation)."""
    totals = np.array([(y == c).sum() for c in classes])
    return float(np.abs(counts - totals / K).max())


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("grouping", sorted(GROUPINGS))
def test_group_folds_are_never_less_balanced_than_scikit_learns(spark, materialise, name, grouping):
    y = DATASETS[name]()
    groups = GROUPINGS[grouping](len(y), np.random.default_rng(0))
    classes = sorted(set(y.tolist()))
    rows = [(i, str(v), int(g)) for i, (v, g) in enumerate(zip(y, groups))]
    df = spark.createDataFrame(rows, f"row_id long, label string, {GROUP} long").repartition(3)
    folded, plan = assign_group_folds(df, "label", K, 0.0, 42, F.lit(False), materialise)
    folds = {r["row_id"]: r["fold"] for r in folded.select("row_id", "fold").collect()}
    assert sorted(folds) == list(range(len(y)))  # each row once
    mine = _per_fold_counts([folds[i] for i in range(len(y))], y.tolist(), classes)
    theirs = np.zeros_like(mine)
    splits = StratifiedGroupKFold(K, shuffle=True, random_state=0).split(np.zeros(len(y)), y, groups)
    for fold, (_, test) in enumerate(splits):
        theirs[fold] = [int((y[test] == c).sum()) for c in classes]
    ours = _deviation(mine, y, classes)
    assert ours <= _deviation(theirs, y, classes)
    assert round(ours, 1) == plan.deviation and (ours <= 1 or not plan.reachable)
