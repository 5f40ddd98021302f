import math

import numpy as np
import pytest

from sparkprep.manifest import RowCounts, class_priors, class_weights
from sparkprep.errors import ContractError
from sparkprep.normalise import Moments, measure_groups, training_folds


def _moments(values):
    arr = np.asarray(values, dtype=float)
    return Moments(len(arr), float(arr.mean()), float(((arr - arr.mean()) ** 2).sum()))


def test_merged_moments_equal_the_moments_of_the_union():
    a, b = [1.0, 2.0, 4.0], [10.0, -3.0]
    merged = _moments(a).merge(_moments(b)).to_dict()
    assert merged["count"] == 5
    assert merged["mean"] == pytest.approx(np.mean(a + b))
    assert merged["std"] == pytest.approx(np.std(a + b))  # population std, as scikit-learn


def test_constant_column_gets_unit_std():
    assert _moments([3.0, 3.0]).to_dict()["std"] == 1.0


def test_training_folds_exclude_the_fold_and_the_holdout():
    assert training_folds(4, 1) == [0, 2, 3]
    assert training_folds(4, None) == [0, 1, 2, 3]


def test_fold_statistics_never_see_their_fold_or_the_holdout(spark):
    # fold -1: x=100 (holdout); fold 0: x=1, 3; fold 1: x=5; fold 2: x=7, null; replica row ignored.
    df = spark.createDataFrame(
        [(-1, 0, 0, 100.0), (0, 0, 0, 1.0), (0, 1, 0, 3.0), (1, 1, 0, 5.0), (2, 0, 0, 7.0),
         (2, 0, 0, None), (1, 1, 1, 1000.0)],
        "fold int, label_index int, replica int, x double")
    groups = measure_groups(df, ["x"])
    fold0 = groups.merged(training_folds(3, 0), ["x"])["x"].to_dict()  # 5, 7
    assert (fold0["count"], fold0["mean"], fold0["std"]) == (2, 6.0, 1.0)
    fold1 = groups.merged(training_folds(3, 1), ["x"])["x"].to_dict()  # 1, 3, 7
    assert fold1["mean"] == pytest.approx(11 / 3)
    assert fold1["std"] == pytest.approx(math.sqrt(((1 - 11 / 3) ** 2 + (3 - 11 / 3) ** 2 + (7 - 11 / 3) ** 2) / 3))
    # originals only: 7 rows minus the replica; per class over folds 1 and 2
    assert sum(groups.rows.values()) == 6
    assert groups.class_counts([1, 2], 2) == [2, 1]


def test_balanced_class_weights_and_priors():
    assert class_weights([90, 9, 1]) == pytest.approx([100 / 270, 100 / 27, 100 / 3])
    assert class_weights([4, 0]) == [0.5, 0.0]
    assert class_priors([3, 1]) == [0.75, 0.25]


def test_row_accounting_law_is_enforced():
    RowCounts(input=10, rejected=2, duplicates=3, output=5).check()
    with pytest.raises(ContractError, match="row accounting broken"):
        RowCounts(input=10, rejected=2, duplicates=3, output=4).check()
