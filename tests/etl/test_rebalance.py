from collections import Counter

from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from sparkprep.stages.rebalance import kept_counts, oversample_training_rows, rebalance, replica_counts
from sparkprep.contract import FOLD_RANK
from sparkprep.stages.split import SplitPlan, assign_folds
from sparkprep.publish.verify import verify_dataset


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


def test_kept_counts_cut_every_class_down_to_its_folds_minority():
    # a/b/c with 8/2/4 rows, k=2: folds hold a 4/4, b 1/1, c 2/2 (see the hand-built test below).
    plan = _plan({"a": 8, "b": 2, "c": 4})
    assert kept_counts(plan, 1.0) == {(f, c): 1 for f in (0, 1) for c in "abc"}
    # target 0.5: at most round(1 / 0.5) = 2 per class, never more than the class has
    assert kept_counts(plan, 0.5) == {(f, c): n for f in (0, 1) for c, n in (("a", 2), ("b", 1), ("c", 2))}
    # A fold's smallest NONZERO class decides: b's one row starts after a's 7, in fold 1, so fold 0
    # (a: 4, b: 0) keeps all of a, and fold 1 (a: 3, b: 1) keeps one of each.
    uneven = _plan({"a": 7, "b": 1})
    assert [(uneven.fold_size("a", f), uneven.fold_size("b", f)) for f in (0, 1)] == [(4, 0), (3, 1)]
    assert kept_counts(uneven, 1.0) == {(0, "a"): 4, (0, "b"): 0, (1, "a"): 1, (1, "b"): 1}


def test_undersampling_marks_originals_by_hash_rank_and_keeps_them_all(spark):
    """Input already split by hand (fold, per-(fold, class) rank); a/b/c 8/2/4 over k=2 plus one
    holdout row. target 0.5 keeps ranks 0, 1 of a (cap round(1 / 0.5) = 2), b's one row, both c's."""
    plan = _plan({"a": 8, "b": 2, "c": 4})
    split = [(100 + 10 * f + i, "a", f, i) for f in (0, 1) for i in range(4)]
    split += [(200 + f, "b", f, 0) for f in (0, 1)]
    split += [(300 + 10 * f + i, "c", f, i) for f in (0, 1) for i in range(2)]
    split += [(999, "a", -1, None)]  # the holdout: never resampled
    df = spark.createDataFrame(split, f"row_id long, label string, fold int, {FOLD_RANK} long")
    expected = spark.createDataFrame(
        [(r, lab, f, rank, 0, rank is None or lab != "a" or rank < 2) for r, lab, f, rank in split],
        f"row_id long, label string, fold int, {FOLD_RANK} long, replica int, in_train boolean")
    got = rebalance(df, "label", plan, "undersample", 0.5)
    assert_df_equality(got.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)
    assert sorted(r["row_id"] for r in got.where(~got["in_train"]).collect()) == [102, 103, 112, 113]


def test_without_undersampling_every_row_is_in_train(spark):
    plan = _plan({"a": 3, "b": 1})
    df = spark.createDataFrame([(1, "a"), (2, "a"), (3, "a"), (4, "b")], "row_id long, label string")
    for method in ("none", "oversample"):
        rows = rebalance(assign_folds(df, "label", plan), "label", plan, method, 1.0).collect()
        assert rows and all(r["in_train"] for r in rows)


def _manifest_of(plan, classes, method, target, rows):
    """The manifest fields the verifier reads, from the plan (the writer's side of the contract)."""
    per = {str(f): {c: plan.holdout_size(c) if f == -1 else plan.fold_size(c, f) for c in classes}
           for f in range(-1, plan.k)}
    return {"rows": {"input": rows, "rejected": 0, "duplicates": 0, "output": rows}, "classes": classes,
            "split": {"k": plan.k, "holdout_fraction": plan.holdout_fraction, "seed": plan.seed},
            "counts": {"per_fold_per_class": per}, "rebalance": {"method": method, "target": target}}


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(6, 40), min_size=2, max_size=3), k=st.integers(2, 4),
       holdout=st.sampled_from([0.0, 0.2]), seed=st.integers(0, 1000), partitions=st.sampled_from([1, 3, 7]),
       target=st.sampled_from([1.0, 0.5, 0.3]))
def test_property_undersampled_training_portions_are_exact_and_validation_sees_every_original(
        spark, sizes, k, holdout, seed, partitions, target):
    labels = [name for name, n in zip("pqr", sizes) for _ in range(n)]
    plan = _plan(dict(Counter(labels)), k, holdout, seed)
    df = spark.createDataFrame([(i * 131 + 1, lab) for i, lab in enumerate(labels)],
                               "row_id long, label string").repartition(partitions)
    classes = sorted(plan.class_counts)
    out = (rebalance(assign_folds(df, "label", plan), "label", plan, "undersample", target)
           .withColumn("label_index", F.array_position(F.array(*map(F.lit, classes)), F.col("label")).cast("int") - 1))
    verdict = verify_dataset(_manifest_of(plan, classes, "undersample", target, len(labels)), out)
    assert verdict.ok, verdict.violations
    rows = out.select("label", "fold", "replica", "in_train").collect()
    assert len(rows) == len(labels) and all(r["replica"] == 0 for r in rows)  # nothing deleted, no copies
    assert all(r["in_train"] for r in rows if r["fold"] == -1)
    for fold in range(k):
        per_fold = Counter(r["label"] for r in rows if r["fold"] == fold and r["in_train"])
        smallest = min(plan.fold_size(c, fold) for c in classes if plan.fold_size(c, fold))
        assert min(per_fold.values()) == smallest and max(per_fold.values()) <= round(smallest / target)
        # validation = fold == k and replica == 0: every original of the fold
        assert Counter(r["label"] for r in rows if r["fold"] == fold) == \
            Counter({c: plan.fold_size(c, fold) for c in classes if plan.fold_size(c, fold)})
        if target == 1.0 and all(plan.fold_size(c, f) for c in classes for f in range(k)):
            train = Counter(r["label"] for r in rows if r["fold"] not in (fold, -1) and r["in_train"])
            assert len(set(train.values())) == 1 and set(train) == set(classes), (fold, train)
