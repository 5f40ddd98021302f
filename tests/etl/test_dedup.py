import logging
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from sklearn.datasets import load_iris

from sparkprep.stages import probe_filter
from sparkprep.stages.dedup.exact import (ABSORBED, MERGED, add_row_id, deduplicate, drop_exact_duplicates, keep_one_per_key)
from sparkprep.config import load_config
from sparkprep.io.fs import qualify
from sparkprep.stages.context import Context
from sparkprep.stages.dedup import conflicts
from sparkprep.stages.dedup.conflicts import add_feature_hash, mark_label_conflicts
from sparkprep.errors import ConfigError

from conftest import assert_no_task_above_its_share, shuffle_reads

ROOT = Path(__file__).resolve().parents[2]

COUNTERS = [MERGED, *ABSORBED.values()]


def test_identical_rows_collapse_and_different_rows_stay(spark):
    df = spark.createDataFrame([(1, "a", 0.5), (1, "a", 0.5), (1, "a", 0.5), (1, "a", 0.25), (2, "a", 0.5)],
                               "id long, t string, x double")
    got = drop_exact_duplicates(add_row_id(df)).drop("row_id")
    # Each survivor counts the input rows it stands for and the exact copies it absorbed.
    expected = spark.createDataFrame([(1, "a", 0.5, 3, 2, 0, 0), (1, "a", 0.25, 1, 0, 0, 0), (2, "a", 0.5, 1, 0, 0, 0)],
                                     f"id long, t string, x double, {', '.join(c + ' long' for c in COUNTERS)}")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_row_id_depends_on_content_only(spark):
    df = spark.createDataFrame([(i % 7, str(i % 3)) for i in range(50)], "a long, b string")
    one = add_row_id(df.coalesce(1)).select("a", "b", "row_id").distinct()
    many = add_row_id(df.repartition(5)).select("a", "b", "row_id").distinct()
    assert_df_equality(one, many, ignore_row_order=True)
    assert one.select(F.countDistinct("row_id")).first()[0] == 21  # 7 x 3 distinct contents


def test_row_id_ignores_internal_columns(spark):
    a = spark.createDataFrame([(1, "f1")], "x long, _sp_source_file string")
    b = spark.createDataFrame([(1, "f2")], "x long, _sp_source_file string")
    assert add_row_id(a).first()["row_id"] == add_row_id(b).first()["row_id"]


KEYED = [("k1", 3, "old"), ("k1", 9, "new"), ("k1", None, "undated"),
         ("k2", 5, "x"), ("k2", 5, "y"),          # a tie on the order column
         ("k3", None, "only")]


def _keyed(spark):
    return add_row_id(spark.createDataFrame(KEYED, "k string, t int, v string"))


def _smaller_row_id(spark, a: str, b: str) -> str:
    ids = {r["v"]: r["row_id"] for r in _keyed(spark).collect()}
    return a if ids[a] < ids[b] else b


def test_keep_latest_per_key_with_ties_to_the_smallest_row_id(spark):
    got = keep_one_per_key(_keyed(spark), ["k"], "latest", "t")
    tie = _smaller_row_id(spark, "x", "y")
    assert sorted((r["k"], r["v"], r["_sp_dup_key"], r[MERGED]) for r in got.collect()) == [
        ("k1", "new", 2, 3), ("k2", tie, 1, 2), ("k3", "only", 0, 1)]


def test_keep_first_per_key_and_nulls_lose(spark):
    got = keep_one_per_key(_keyed(spark), ["k"], "first", "t")
    tie = _smaller_row_id(spark, "x", "y")
    assert sorted((r["k"], r["v"]) for r in got.collect()) == [("k1", "old"), ("k2", tie), ("k3", "only")]


def test_key_columns_must_exist(spark):
    with pytest.raises(ConfigError, match="nope"):
        keep_one_per_key(_keyed(spark), ["nope"], "latest", None)


# k1: three versions and an exact copy of the latest; k2: two rows; k3, k4: one row each.
VERSIONS = [("k1", 3, "old"), ("k1", 9, "new"), ("k1", 9, "new"), ("k1", None, "undated"),
            ("k2", 5, "x"), ("k2", 7, "y"), ("k3", 1, "only"), ("k4", 2, "alone")]
# (k, v, merged, exact, key): k1 keeps "new", standing for 4 input rows (1 exact copy, 2 older versions).
DEDUPLICATED = [("k1", "new", 4, 1, 2), ("k2", "y", 2, 0, 1), ("k3", "only", 1, 0, 0), ("k4", "alone", 1, 0, 0)]


def _recording(materialise):
    """The materialiser, also recording the rows each call wrote by name."""
    written = {}

    def write(df, name):
        out = materialise(df, name)
        written[name] = sorted(r["k"] for r in out.collect()) if "k" in out.columns else out.count()
        return out
    return write, written


def _deduplicated(spark, materialise):
    df = add_row_id(spark.createDataFrame(VERSIONS, "k string, t int, v string").repartition(3))
    got = deduplicate(df, True, ["k"], "latest", "t", materialise)
    return sorted((r["k"], r["v"], r[MERGED], r["_sp_dup_exact"], r["_sp_dup_key"]) for r in got.collect())


def test_deduplicate_collapses_only_the_rows_whose_key_repeats(spark, materialise, caplog):
    write, written = _recording(materialise)
    with caplog.at_level(logging.INFO, logger="sparkprep.stages"):
        assert _deduplicated(spark, write) == DEDUPLICATED
    # Two keys repeat; only their 6 input rows were shuffled, and they collapse to 2. The set of
    # the two is broadcast as it is.
    assert written == {"repeated": 2, "filter": 2, "collapsed": ["k1", "k2"]}
    assert "dedup: 2 repeated keys; only their rows are collapsed" in caplog.messages
    assert "filter: the set of 2 members, broadcast" in caplog.messages


def test_deduplicate_tells_many_repeated_keys_apart_by_a_bloom_filter(spark, materialise, monkeypatch, caplog):
    monkeypatch.setattr(probe_filter, "EXACT_MEMBERS", 1)
    write, written = _recording(materialise)
    with caplog.at_level(logging.INFO, logger="sparkprep.stages"):
        assert _deduplicated(spark, write) == DEDUPLICATED
    assert written == {"repeated": 2, "filter": 1, "collapsed": ["k1", "k2"]}  # one block of the filter
    assert "filter: a Bloom filter of 4096 bits for 2 members" in caplog.messages


def test_deduplicate_is_exact_when_the_filter_passes_every_row(spark, materialise, monkeypatch):
    """The filter may pass rows whose key does not repeat; they collapse to themselves."""
    monkeypatch.setattr(probe_filter, "EXACT_MEMBERS", 0)
    monkeypatch.setattr(probe_filter, "mark", lambda df, probe, members, bits, flag: df.withColumn(flag, F.lit(True)))
    write, written = _recording(materialise)
    assert _deduplicated(spark, write) == DEDUPLICATED
    assert written["collapsed"] == ["k1", "k2", "k3", "k4"]


def test_deduplicate_without_repeats_writes_nothing(spark, materialise):
    write, written = _recording(materialise)
    df = add_row_id(spark.createDataFrame(VERSIONS[4:], "k string, t int, v string"))
    got = deduplicate(df, True, [], "latest", None, write)
    assert got.count() == 4 and written == {"repeated": 0}


def test_deduplicate_without_a_key_finds_exact_copies_by_row_id(spark, materialise):
    write, written = _recording(materialise)
    df = add_row_id(spark.createDataFrame(VERSIONS, "k string, t int, v string"))
    got = deduplicate(df, True, [], "latest", None, write)
    assert got.count() == 7 and got.agg(F.sum("_sp_dup_exact")).first()[0] == 1
    assert written == {"repeated": 1, "filter": 1, "collapsed": ["k1"]}


CONFLICTS = [(1.0, "a", 1), (1.0, "b", 1), (1.0, "b", 1),   # 1.0: b has 2 input rows, a 1 -> b wins
             (2.0, "a", 1), (2.0, "b", 1),                   # 2.0: a tie: no majority
             (3.0, "a", 1)]                                  # 3.0: no conflict


def _conflicts(spark, policy):
    df = spark.createDataFrame(CONFLICTS, "x double, label string, w int").drop("w")
    rows = drop_exact_duplicates(add_row_id(df))   # (1.0, b) stands for 2 input rows
    marked = mark_label_conflicts(rows, "label", policy)
    return sorted((r["x"], r["label"], r["_sp_conflict"], r["_sp_reason"]) for r in marked.collect())


def test_conflicting_labels_keep_all_flags_every_row_of_a_conflict(spark):
    assert _conflicts(spark, "keep_all") == [(1.0, "a", True, None), (1.0, "b", True, None),
                                             (2.0, "a", True, None), (2.0, "b", True, None), (3.0, "a", False, None)]


def test_conflicting_labels_keep_majority_rejects_minorities_and_ties(spark):
    bad = "conflicting_label"
    assert _conflicts(spark, "keep_majority") == [(1.0, "a", True, bad), (1.0, "b", True, None),
                                                  (2.0, "a", True, bad), (2.0, "b", True, bad), (3.0, "a", False, None)]


def test_conflicts_group_only_the_rows_whose_features_repeat(spark, tmp_path):
    """The pipeline's rule: among 1,000 rows of features of their own and the CONFLICTS rows,
    only the feature hashes of 1.0 and 2.0 repeat, so only their rows are grouped; the verdicts
    are those of grouping every row (the test above)."""
    df = spark.createDataFrame([(float(i) + 10, "a", 1) for i in range(1000)] + CONFLICTS, "x double, label string, w int")
    rows = add_feature_hash(drop_exact_duplicates(add_row_id(df.drop("w"))), "label", ["x"])
    ctx = Context(qualify(str(tmp_path)), [], 1 << 16)
    config = load_config(ROOT / "conf/demo.yaml", ["dedup.conflicts=keep_majority"])
    marked = {(r["x"], r["label"]): (r["_sp_conflict"], r["_sp_reason"]) for r in conflicts.apply(rows, config, ctx).collect()}
    bad = "conflicting_label"
    assert marked == {(1.0, "a"): (True, bad), (1.0, "b"): (True, None), (2.0, "a"): (True, bad),
                      (2.0, "b"): (True, bad), (3.0, "a"): (False, None),
                      **{(float(i) + 10, "a"): (False, None) for i in range(1000)}}
    assert spark.read.parquet(f"{ctx.scratch}/dedup/conflicts-repeated").count() == 2


def test_conflicts_with_no_repeated_features_mark_every_row_without_grouping(spark, tmp_path):
    """No two rows share their features: every row is unmarked and no group table is written."""
    df = spark.createDataFrame([(float(i), "ab"[i % 2]) for i in range(200)], "x double, label string")
    rows = add_feature_hash(add_row_id(df), "label", ["x"])
    ctx = Context(qualify(str(tmp_path)), [], 1 << 16)
    config = load_config(ROOT / "conf/demo.yaml", ["dedup.conflicts=keep_majority"])
    marked = conflicts.apply(rows, config, ctx)
    assert sorted(r["x"] for r in marked.where(~F.col("_sp_conflict") & F.col("_sp_reason").isNull()).collect()) == \
        [float(i) for i in range(200)]
    assert spark.read.parquet(f"{ctx.scratch}/dedup/conflicts-repeated").count() == 0
    assert not list(tmp_path.rglob("conflicts"))  # the groups would be written as dedup/conflicts


def test_conflicting_labels_drop_all_rejects_every_row_of_a_conflict(spark):
    bad = "conflicting_label"
    assert _conflicts(spark, "drop_all") == [(1.0, "a", True, bad), (1.0, "b", True, bad),
                                             (2.0, "a", True, bad), (2.0, "b", True, bad), (3.0, "a", False, None)]


def test_exact_duplicates_of_iris_match_pandas(spark):
    iris = load_iris(as_frame=True).frame
    expected = len(iris) - len(iris.drop_duplicates())
    assert expected >= 1  # iris ships with known duplicate rows
    rows = drop_exact_duplicates(add_row_id(spark.createDataFrame(iris)))
    got = rows.agg(F.count(F.lit(1)), F.sum("_sp_dup_exact")).first()
    assert (got[0], got[1]) == (len(iris) - expected, expected)


def test_a_hot_key_never_lands_in_one_task(spark, materialise):
    """One id with a tenth of the rows (400 versions) among 3,600 others, 200 of them copied
    exactly: each collapse folds a key's rows inside every map task before its shuffle, so no
    task reads much more than its share (with the key's rows in one task, one task of 16 read
    425 of the 800 rows shuffled)."""
    hot = [("hot", t, f"v{t}") for t in range(400)]
    others = [(f"k{i}", 0, "x") for i in range(3600)] + [(f"k{i}", 0, "x") for i in range(200)]
    df = add_row_id(spark.createDataFrame(hot + others, "k string, t int, v string").repartition(4))
    rows, stages = shuffle_reads(spark, 16, lambda: deduplicate(df, True, ["k"], "latest", "t", materialise).collect())
    got = {r["k"]: (r["v"], r[MERGED], r["_sp_dup_exact"], r["_sp_dup_key"]) for r in rows}
    assert len(got) == 3601 and got["hot"] == ("v399", 400, 0, 399) and got["k7"] == ("x", 2, 1, 0)
    assert_no_task_above_its_share(stages)
