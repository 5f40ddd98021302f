"""verify's one pass over the training originals (publish/training_stats.py): per-fold statistics of
finite values merged into each training set, by hand on seven rows, and the same whatever the
partitioning."""

import math

import pytest

from sparkprep.publish.training_stats import Value, measure

# fold, x, emb. Finite x per fold: 0 {1, -3}, 1 {5}, 2 {7}; emb[0]: 0 {1, 3}, 1 {5}, 2 {7};
# emb[1]: 0 {10}, 1 {20}, 2 {30, 40}.
ROWS = [
    (0, 1.0, [1.0, 10.0]),
    (0, -3.0, [3.0]),
    (1, None, [5.0, 20.0]),
    (1, math.nan, None),
    (1, 5.0, []),
    (2, math.inf, [7.0, 30.0, 99.0]),
    (2, 7.0, [None, 40.0]),
]
X, LOG_X, FIRST, SECOND = Value("x"), Value("x", log1p=True), Value("emb", element=0), Value("emb", element=1)
WANTED = {X: [5.0, 4.0], LOG_X: [], FIRST: [], SECOND: [35.0]}


@pytest.fixture(scope="module")
def frame(spark):
    return spark.createDataFrame(ROWS, "fold int, x double, emb array<double>")


def test_each_training_set_is_the_merge_of_the_other_folds(frame):
    stats = measure(frame, WANTED)
    assert [stats.training_rows(f) for f in (None, 0, 1, 2)] == [7, 5, 4, 5]
    final = stats.summary(X, None)  # {1, -3, 5, 7}
    assert (final.count, final.mean, final.min, final.max) == (4, 2.5, -3.0, 7.0)
    assert final.std == pytest.approx(math.sqrt(14.75), rel=1e-12)
    assert (final.below(5.0), final.at_most(5.0), final.below(4.0), final.at_most(4.0)) == (2, 3, 2, 2)
    fold_0 = stats.summary(X, 0)  # folds 1 and 2: {5, 7}
    assert (fold_0.count, fold_0.mean, fold_0.std, fold_0.below(5.0), fold_0.at_most(5.0)) == (2, 6.0, 1.0, 0, 1)
    fold_1 = stats.summary(X, 1)  # folds 0 and 2: {1, -3, 7}
    assert (fold_1.count, fold_1.below(5.0), fold_1.at_most(5.0)) == (3, 2, 2)
    assert stats.summary(LOG_X, None).mean == pytest.approx(math.log(24) / 4, rel=1e-12)  # ln 2 - ln 4 + ln 6 + ln 8


def test_array_positions_past_the_end_or_null_are_missing(frame):
    stats = measure(frame, WANTED)
    first, second = stats.summary(FIRST, None), stats.summary(SECOND, None)
    assert (first.count, first.mean, first.min, first.max) == (4, 4.0, 1.0, 7.0)
    assert (second.count, second.mean, second.min, second.max) == (4, 25.0, 10.0, 40.0)
    assert (second.below(35.0), stats.summary(SECOND, 2).at_most(35.0)) == (3, 2)  # fold 2's set: {10, 20}


def test_a_set_without_values_has_no_mean(spark):
    stats = measure(spark.createDataFrame([(0, None), (1, 2.0)], "fold int, x double"), {X: [1.0]})
    empty = stats.summary(X, 1)
    assert (empty.count, empty.mean, empty.std, empty.min, empty.below(1.0)) == (0, None, None, None, 0)


@pytest.mark.parametrize("parts", [1, 3, 7])
def test_the_same_whatever_the_partitioning(frame, parts):
    whole = measure(frame.coalesce(1), WANTED)
    split = measure(frame.repartition(parts), WANTED)
    for value in WANTED:
        for fold in (None, 0, 1, 2):
            a, b = whole.summary(value, fold), split.summary(value, fold)
            assert (a.count, a.min, a.max, list(a.below_counts), list(a.at_most_counts)) == \
                   (b.count, b.min, b.max, list(b.below_counts), list(b.at_most_counts))
            assert (a.mean is None and b.mean is None) or (a.mean == pytest.approx(b.mean, rel=1e-12)
                                                           and a.std == pytest.approx(b.std, rel=1e-12, abs=1e-15))
