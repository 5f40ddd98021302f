from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from sparkprep.stages import split as split_module
from sparkprep.stages.split import SplitPlan, add_label_index, assign_folds

from conftest import assert_no_task_above_its_share, shuffle_reads


def _rows(spark, labels, partitions=2):
    return spark.createDataFrame([(i * 7919 + 13, lab) for i, lab in enumerate(labels)],
                                 "row_id long, label string").repartition(partitions)


def _plan(labels, k, holdout=0.0, seed=42):
    return SplitPlan(k, holdout, seed, dict(Counter(labels)))


def _folds(df):
    return {r["row_id"]: r["fold"] for r in df.select("row_id", "fold").collect()}


def _check_stratified(labels_by_id, folds, plan):
    per_class = Counter((labels_by_id[r], f) for r, f in folds.items())
    for label, n in plan.class_counts.items():
        assert per_class[(label, -1)] == plan.holdout_size(label)
        cv = [per_class[(label, f)] for f in range(plan.k)]
        assert max(cv) - min(cv) <= 1, (label, cv)
        assert sum(cv) + per_class[(label, -1)] == n
    sizes = Counter(f for f in folds.values() if f >= 0)
    totals = [sizes[f] for f in range(plan.k)]
    assert max(totals) - min(totals) <= 1, totals


def test_holdout_is_exact_per_class_and_folds_differ_by_at_most_one(spark):
    labels = ["a"] * 53 + ["b"] * 11 + ["c"] * 3
    plan = _plan(labels, k=4, holdout=0.1)
    df = _rows(spark, labels)
    folds = _folds(assign_folds(df, "label", plan))
    assert (plan.holdout_size("a"), plan.holdout_size("b"), plan.holdout_size("c")) == (5, 1, 0)
    _check_stratified({r["row_id"]: r["label"] for r in df.collect()}, folds, plan)


def test_rows_go_round_robin_in_hash_order(spark):
    # The rule itself: within a class, the row of rank r (by xxhash64(row_id, seed), then row_id)
    # gets fold (r - holdout + start) mod k; with one class, start = 0.
    labels = ["a"] * 10
    plan = _plan(labels, k=3, holdout=0.2, seed=5)
    df = assign_folds(_rows(spark, labels), "label", plan)
    ordered = df.orderBy(F.xxhash64("row_id", F.lit(5)), "row_id").select("fold").collect()
    assert [r["fold"] for r in ordered] == [-1, -1, 0, 1, 2, 0, 1, 2, 0, 1]


def test_same_split_for_any_partitioning_and_bucket_size(spark, monkeypatch):
    labels = ["x"] * 40 + ["y"] * 25 + ["z"] * 7
    plan = _plan(labels, k=5, holdout=0.1)
    reference = _folds(assign_folds(_rows(spark, labels, 1), "label", plan))
    assert _folds(assign_folds(_rows(spark, labels, 7), "label", plan)) == reference
    monkeypatch.setattr(split_module, "_BUCKET_ROWS", 2)  # 2^5 buckets per class instead of 1
    assert plan.bucket_bits() == 5
    assert _folds(assign_folds(_rows(spark, labels, 3), "label", plan)) == reference


def test_a_class_of_nine_tenths_of_the_rows_never_lands_in_one_task(spark, monkeypatch):
    """The split ranks rows in (class, bucket) partitions of about _BUCKET_ROWS rows, so the
    largest class spreads over every task (buckets of 64 rows here, the test's scale; with one
    bucket per class, one task of 16 read all 3,600 rows of the large class)."""
    monkeypatch.setattr(split_module, "_BUCKET_ROWS", 64)
    labels = ["big"] * 3600 + ["mid"] * 360 + ["small"] * 40
    plan = _plan(labels, k=5, holdout=0.1)
    rows, stages = shuffle_reads(spark, 16, lambda: assign_folds(_rows(spark, labels, 4), "label", plan).collect())
    assert Counter(r["fold"] for r in rows if r["label"] == "big")[-1] == plan.holdout_size("big") == 360
    assert_no_task_above_its_share(stages)


def test_another_seed_gives_another_split(spark):
    labels = ["a"] * 30 + ["b"] * 30
    df = _rows(spark, labels)
    one = _folds(assign_folds(df, "label", _plan(labels, k=3, seed=1)))
    two = _folds(assign_folds(df, "label", _plan(labels, k=3, seed=2)))
    assert one != two


def test_warns_when_a_class_is_smaller_than_k():
    assert _plan(["a"] * 10 + ["b"] * 2, k=3).warnings()
    assert not _plan(["a"] * 10 + ["b"] * 3, k=3).warnings()


def test_label_index_follows_the_class_order(spark):
    df = spark.createDataFrame([("b",), ("a",), ("c",)], "label string")
    got = {r["label"]: r["label_index"] for r in add_label_index(df, "label", ["c", "a", "b"]).collect()}
    assert got == {"c": 0, "a": 1, "b": 2}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.lists(st.sampled_from(["p", "q", "r", "s"]), min_size=1, max_size=80),
       k=st.integers(2, 6), seed=st.integers(0, 2**31), holdout=st.sampled_from([0.0, 0.15, 0.5]),
       partitions=st.integers(1, 5))
def test_property_stratified_exact_and_partition_independent(spark, labels, k, seed, holdout, partitions):
    plan = _plan(labels, k, holdout, seed)
    df = _rows(spark, labels, partitions)
    folds = _folds(assign_folds(df, "label", plan))
    assert len(folds) == len(labels)  # every row exactly once
    _check_stratified({i * 7919 + 13: lab for i, lab in enumerate(labels)}, folds, plan)
    assert _folds(assign_folds(_rows(spark, labels, 1), "label", plan)) == folds


def test_changed_input_between_passes_is_detected(spark):
    with pytest.raises(Exception, match="rows per class changed"):
        assign_folds(_rows(spark, ["a"] * 5), "label", _plan(["a"] * 6, k=2))
