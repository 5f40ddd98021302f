"""The blocked Bloom filter dedup uses to tell rows whose probe repeats from the rest."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from sparkprep.stages import probe_filter
from sparkprep.stages.probe_filter import (
    BLOCK, BLOCK_BITS, EXACT_MEMBERS, MAX_BITS, WORDS, build, filter_bits, mark, mark_members)

LONGS = st.integers(-2**63, 2**63 - 1)


@pytest.mark.parametrize("members, bits", [(0, 4096), (1, 4096), (256, 4096), (257, 8192),
                                           (2_500_000, 1 << 26), (8_388_608, 1 << 27), (10**10, MAX_BITS)])
def test_filter_bits_are_16_or_more_per_member_up_to_the_cap(members, bits):
    assert filter_bits(members) == bits


def _marked(spark, members, others, bits):
    probes = spark.createDataFrame([(p,) for p in members], "p long")
    built = build(probes, "p", bits)
    rows = spark.createDataFrame([(p, i) for i, p in enumerate([*members, *others])], "p long, i long")
    return built, {r["i"]: r["maybe"] for r in mark(rows, "p", built, bits, "maybe").collect()}


def test_one_member_sets_at_most_four_bits_of_the_block_its_value_picks(spark):
    built, _ = _marked(spark, [12_345], [], 8192)
    (row,) = built.collect()
    assert row[BLOCK] == 12_345 % 2 and len(row[WORDS]) == BLOCK_BITS // 64
    assert 1 <= sum(bin(w & (2**64 - 1)).count("1") for w in row[WORDS]) <= 4


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.lists(LONGS, min_size=1, max_size=60, unique=True), others=st.lists(LONGS, max_size=60),
       blocks=st.sampled_from([1, 2, 8]))
def test_every_member_passes_and_no_row_is_lost_or_repeated(spark, members, others, blocks):
    built, maybe = _marked(spark, members, others, blocks * BLOCK_BITS)
    assert all(maybe[i] for i in range(len(members)))
    assert len(maybe) == len(members) + len(others)


def test_few_non_members_pass(spark):
    members = spark.range(20_000).select(F.xxhash64("id").alias("p"))
    others = spark.range(20_000, 220_000).select(F.xxhash64("id").alias("p"))
    bits = filter_bits(20_000)  # 2^19: 26 bits per member, about 0.05% expected
    built = build(members, "p", bits)
    got = mark(members.unionByName(others), "p", built, bits, "maybe").groupBy("maybe").count()
    counts = {r["maybe"]: r["count"] for r in got.collect()}
    assert counts[True] - 20_000 < 200_000 * 0.002 and counts[True] + counts[False] == 220_000
    assert built.count() <= bits // BLOCK_BITS


@pytest.mark.parametrize("exact_members", [0, EXACT_MEMBERS], ids=["filter", "the set broadcast"])
def test_mark_members_passes_every_member_either_way_and_only_members_when_exact(spark, materialise, exact_members):
    members = [3, 3, -7, 2**62, 11]  # a repeated member marks its rows once, not twice
    rows = spark.createDataFrame([(p, i) for i, p in enumerate([3, 4, -7, 5, 2**62, 11, 3, 2**40])], "p long, i long")
    marked = mark_members(rows, "p", spark.createDataFrame([(p,) for p in members], "p long"), len(members),
                          materialise, "maybe", "set", exact_members=exact_members)
    assert marked.columns == ["p", "i", "maybe"]
    got = {r["i"]: r["maybe"] for r in marked.collect()}
    assert sorted(got) == list(range(8)) and all(got[i] for i in (0, 2, 4, 5, 6))
    if exact_members:
        assert not any(got[i] for i in (1, 3, 7))


@pytest.mark.parametrize("exact_members, packed_members", [(0, 0), (0, 3), (EXACT_MEMBERS, 0)],
                         ids=["filter", "packed", "the set broadcast"])
def test_join_small_is_a_left_join_every_way(spark, materialise, monkeypatch, exact_members, packed_members):
    monkeypatch.setattr(probe_filter, "EXACT_MEMBERS", exact_members)
    monkeypatch.setattr(probe_filter, "PACKED_MEMBERS", packed_members)
    rows = spark.createDataFrame([(p, i) for i, p in enumerate([3, 4, -7, 5, 2**62, 3])], "p long, i long")
    table = spark.createDataFrame([(3, "x"), (-7, "y"), (99, "z")], "p long, v string")
    got = probe_filter.join_small(rows, table, "p", 3, materialise, "set")
    assert got.columns == ["p", "i", "v"]
    assert sorted((r["i"], r["v"]) for r in got.collect()) == [(0, "x"), (1, None), (2, "y"), (3, None), (4, None), (5, "x")]


def test_a_packed_join_reads_the_rows_once_and_finds_each_key_in_its_block(spark, materialise, monkeypatch):
    monkeypatch.setattr(probe_filter, "EXACT_MEMBERS", 0)
    monkeypatch.setattr(probe_filter, "PACKED_PER_BLOCK", 4)  # 300 keys: 75 blocks of 4 on average
    keys = [k * 7_919 - 1_000_000 for k in range(300)]       # negative and positive, every block
    table = spark.createDataFrame([(k, f"v{k}", k % 5) for k in keys], "p long, v string, w long")
    # Every key of the table, keys that are absent (some in a block that exists), a null key, a repeat.
    probes = [*keys, *[k + 1 for k in keys[:50]], None, keys[7]]
    rows = materialise(spark.createDataFrame([(p, i) for i, p in enumerate(probes)], "p long, i long"), "rows")
    got = probe_filter.join_small(rows, table, "p", len(keys), materialise, "packed")
    assert got.columns == ["p", "i", "v", "w"]
    present = set(keys)
    assert sorted((r["i"], r["v"], r["w"]) for r in got.collect()) == sorted(
        (i, f"v{p}", p % 5) if p in present else (i, None, None) for i, p in enumerate(probes))
    # One scan of the rows: the Bloom filter's way reads them twice (passed and not passed).
    plan = got._jdf.queryExecution().optimizedPlan().toString()
    assert plan.count("Relation [p#") == 1
