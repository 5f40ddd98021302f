"""Group-aware split: whole groups per fold, stratified as well as groups allow, exact when every
group is one row, deterministic; oversampling stays exact on top of it."""

from collections import Counter, defaultdict

from chispa import assert_df_equality
from pyspark.sql import functions as F

from sparkprep import HOLDOUT_FOLD
from sparkprep.groups import GROUP, add_groups
from sparkprep.rebalance import oversample_training_rows
from sparkprep.split import FOLD_RANK, assign_group_folds


def _rows(spark, labels, groups, partitions=4):
    data = [(i * 7919 + 13, label, group) for i, (label, group) in enumerate(zip(labels, groups))]
    return spark.createDataFrame(data, f"row_id long, label string, {GROUP} long").repartition(partitions)


def _split(spark, materialise, labels, groups, k=3, holdout=0.0, seed=5, held=None, partitions=4):
    df = _rows(spark, labels, groups, partitions)
    held = F.col(GROUP).isin(held) if held else F.lit(False)
    folded, plan = assign_group_folds(df, "label", k, holdout, seed, held, materialise)
    return folded.collect(), plan


def test_every_group_lands_in_one_fold_and_the_deviation_is_reported(spark, materialise):
    labels = ["a"] * 60 + ["b"] * 30
    groups = [i // 6 for i in range(60)] + [100 + i // 3 for i in range(30)]   # 10 + 10 groups
    rows, plan = _split(spark, materialise, labels, groups, k=3, holdout=0.2)
    folds_of = defaultdict(set)
    for r in rows:
        folds_of[r[GROUP]].add(r["fold"])
    assert all(len(f) == 1 for f in folds_of.values())
    counts = Counter((r["label"], r["fold"]) for r in rows)
    assert counts == Counter({(c, f): n for (c, f), n in plan.sizes.items()})
    ideal = {"a": (60 - counts[("a", -1)]) / 3, "b": (30 - counts[("b", -1)]) / 3}
    assert plan.deviation == round(max(abs(counts[(c, f)] - ideal[c]) for c in "ab" for f in range(3)), 1)
    # A group of m rows moves a block boundary by at most m - 1 rows.
    assert all(abs(counts[("a", f)] - ideal["a"]) <= 6 for f in range(3))
    assert abs(counts[("a", -1)] - 12) <= 5 and abs(counts[("b", -1)] - 6) <= 2


def test_single_row_groups_give_an_exact_stratified_split(spark, materialise):
    labels = ["a"] * 53 + ["b"] * 21 + ["c"] * 4
    rows, plan = _split(spark, materialise, labels, list(range(len(labels))), k=4, holdout=0.1)
    counts = Counter((r["label"], r["fold"]) for r in rows)
    for c, n in Counter(labels).items():
        held = int(n * 0.1 + 0.5)
        assert counts[(c, HOLDOUT_FOLD)] == held
        per_fold = [counts[(c, f)] for f in range(4)]
        assert sum(per_fold) == n - held and max(per_fold) - min(per_fold) <= 1
    totals = [sum(counts[(c, f)] for c in "abc") for f in range(4)]
    assert max(totals) - min(totals) <= 1
    assert plan.deviation <= 1 and not any("groups kept whole" in w for w in plan.warnings())


def test_ranks_inside_each_fold_and_class_are_dense(spark, materialise):
    labels = ["a"] * 40 + ["b"] * 20
    rows, _ = _split(spark, materialise, labels, [i // 4 for i in range(60)], k=2, holdout=0.1)
    ranks = defaultdict(list)
    for r in rows:
        if r["fold"] != HOLDOUT_FOLD:
            ranks[(r["label"], r["fold"])].append(r[FOLD_RANK])
        else:
            assert r[FOLD_RANK] is None
    assert all(sorted(v) == list(range(len(v))) for v in ranks.values())


def test_group_split_does_not_depend_on_partitioning(spark, materialise):
    labels = ["a", "b", "a", "a", "c"] * 30
    groups = [i // 3 for i in range(150)]
    one = {r["row_id"]: r["fold"] for r in _split(spark, materialise, labels, groups, partitions=1)[0]}
    many = {r["row_id"]: r["fold"] for r in _split(spark, materialise, labels, groups, partitions=9)[0]}
    other_seed = {r["row_id"]: r["fold"] for r in _split(spark, materialise, labels, groups, seed=6)[0]}
    assert one == many and one != other_seed


def test_a_group_touched_by_the_holdout_rule_is_held_out_whole(spark, materialise):
    labels = ["a"] * 30
    groups = [i // 3 for i in range(30)]
    rows, _ = _split(spark, materialise, labels, groups, k=2, held=[0, 4])
    held = {r[GROUP] for r in rows if r["fold"] == HOLDOUT_FOLD}
    assert held == {0, 4} and sum(r["fold"] == HOLDOUT_FOLD for r in rows) == 6


def test_oversampling_on_a_group_split_balances_every_fold_exactly(spark, materialise):
    labels = ["a"] * 80 + ["b"] * 12
    groups = [i // 4 for i in range(80)] + [1000 + i // 2 for i in range(12)]
    df = _rows(spark, labels, groups)
    folded, plan = assign_group_folds(df, "label", 3, 0.0, 5, F.lit(False), materialise)
    out = oversample_training_rows(folded, "label", plan).collect()
    per_fold = Counter((r["fold"], r["label"]) for r in out)
    for f in range(3):
        assert per_fold[(f, "a")] == per_fold[(f, "b")] == plan.fold_size("a", f)


def test_keys_link_rows_into_components_named_by_their_smallest_row(spark, materialise):
    # 1-2 share a user, 2-3 share a near-duplicate cluster, 4 is alone, 5-6 share a user.
    df = spark.createDataFrame([(1, "u1", 10), (2, "u1", 20), (3, "u3", 20), (4, "u4", 40), (5, "u5", 50), (6, "u5", 60)],
                               "row_id long, user string, cluster long")
    got = add_groups(df, [F.col("user"), F.col("cluster")], materialise).select("row_id", GROUP)
    expected = spark.createDataFrame([(1, 1), (2, 1), (3, 1), (4, 4), (5, 5), (6, 5)], f"row_id long, {GROUP} long")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    single = add_groups(df, [F.col("user")], materialise).select("row_id", GROUP)
    expected = spark.createDataFrame([(1, 1), (2, 1), (3, 3), (4, 4), (5, 5), (6, 5)], f"row_id long, {GROUP} long")
    assert_df_equality(single, expected, ignore_row_order=True, ignore_nullable=True)
