from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkprep.rebalance import oversample_training_rows, replica_counts
from sparkprep.split import SplitPlan, assign_folds


def _plan(counts, k=2, holdout=0.0, seed=3):
    return SplitPlan(k, holdout, seed, counts)


def test_replica_counts_fill_every_fold_to_its_majority():
    # k=2, no holdout: a has 9 rows → folds 5/4; b has 3 → start after a's 9 rows = fold 1 → 2 in
    # fold 1, 1 in fold 0 (round-robin 1, 0, 1).
    plan = _plan({"a": 9, "b": 3})
    assert [plan.fold_size("a", f) for f in (0, 1)] == [5, 4]
    assert [plan.fold_size("b", f) for f in (0, 1)] == [1, 2]
    assert replica_counts(plan, 1.0) == {(0, "a"): 0, (0, "b"): 4, (1, "a"): 0, (1, "b"): 2}
    # half the majority: fold 0 goal round(2.5) = 2, fold 1 goal 2
    assert replica_counts(plan, 0.5) == {(0, "a"): 0, (0, "b"): 1, (1, "a"): 0, (1, "b"): 0}


def test_copies_are_spread_by_hash_rank_and_stay_in_their_originals_fold(spark):
    labels = ["a"] * 9 + ["b"] * 3
    plan = _plan(dict(Counter(labels)))
    df = spark.createDataFrame([(i * 31 + 7, lab) for i, lab in enumerate(labels)], "row_id long, label string")
    rows = oversample_training_rows(assign_folds(df, "label", plan), "label", plan).collect()
    b = [r for r in rows if r["label"] == "b"]
    by_id = {}
    for r in b:
        by_id.setdefault(r["row_id"], []).append((r["fold"], r["replica"]))
    # fold 0's single b row gets all 4 copies; fold 1's two rows get 2 / 2 = 1 copy each.
    shapes = sorted((fold_replicas[0][0], sorted(rep for _, rep in fold_replicas)) for fold_replicas in by_id.values())
    assert shapes == [(0, [0, 1, 2, 3, 4]), (1, [0, 1]), (1, [0, 1])]
    assert all(len({f for f, _ in v}) == 1 for v in by_id.values())
    assert all(r["replica"] == 0 for r in rows if r["label"] == "a")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(8, 30), min_size=1, max_size=3), k=st.integers(2, 4),
       holdout=st.sampled_from([0.0, 0.2]), seed=st.integers(0, 1000))
def test_property_every_training_portion_is_exactly_balanced(spark, sizes, k, holdout, seed):
    # At least 2k rows per class: every class has a row in every fold to copy from.
    labels = [name for name, n in zip("pqr", sizes) for _ in range(n)]
    plan = _plan(dict(Counter(labels)), k, holdout, seed)
    assert not plan.warnings()
    df = spark.createDataFrame([(i * 131 + 1, lab) for i, lab in enumerate(labels)], "row_id long, label string")
    rows = oversample_training_rows(assign_folds(df, "label", plan), "label", plan).select("label", "fold", "replica").collect()
    assert sum(r["replica"] == 0 for r in rows) == len(labels)
    assert all(r["replica"] == 0 for r in rows if r["fold"] == -1)
    for held_out in range(k):
        train = Counter(r["label"] for r in rows if r["fold"] not in (held_out, -1))
        present = [n for n in train.values() if n]
        assert len(set(present)) <= 1, (held_out, train)
