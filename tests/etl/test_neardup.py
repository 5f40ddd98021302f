"""Near-duplicate detection: shingles, verified pairs, components, and precision/recall on texts
with controlled edits whose true clusters are known."""

import ast
import itertools
import logging
import random
from pathlib import Path

import pyarrow as pa
import pyspark
import pytest
from chispa import assert_df_equality
from pyspark.sql import Row
from pyspark.sql import functions as F

from sparkprep.config import NearDupConfig
from sparkprep.stages import probe_filter
from sparkprep.stages.groups import LOCAL_EDGES, connected_components
import numpy as np

from sparkprep.stages.dedup.minhash import bucket_pairs, has_hot_keys, jaccard, shingles
from sparkprep.stages.dedup.near import (EXAMPLE_CHARS, EXAMPLES, add_dup_clusters, band_entries, candidate_pairs,
                                         find_clusters, verified_pairs)


def _shingle_set(text: str, size: int = 5) -> set[str]:
    """Independent oracle: the Python set of character shingles of the normalised text."""
    text = " ".join(text.lower().split())
    return {text[i:i + size] for i in range(max(1, len(text) - size + 1))}


def _jaccard(x: str, y: str) -> float:
    a, b = _shingle_set(x), _shingle_set(y)
    return len(a & b) / len(a | b)


def _components(pairs: set[tuple[int, int]], n: int) -> dict[int, int]:
    """Independent oracle: each node's smallest connected node, by repeated relabelling."""
    label = list(range(n))
    changed = True
    while changed:
        changed = False
        for a, b in pairs:
            low = min(label[a], label[b])
            if label[a] != low or label[b] != low:
                label[a] = label[b] = low
                changed = True
    return dict(enumerate(label))


def test_buckets_pair_their_rows_and_a_large_bucket_is_a_star_on_its_smallest_row():
    keys = np.array([5, 7, 5, 9, 5, 7, 5], np.uint32)
    rows = np.array([14, 11, 12, 13, 10, 15, 12], np.int64)  # row 12 twice in bucket 5 (two bands)
    pairs = lambda max_bucket: sorted(zip(*(x.tolist() for x in bucket_pairs(keys, rows, max_bucket))))
    # bucket 5: rows 10, 12, 12, 14; bucket 7: rows 11, 15; bucket 9: one row, no pair
    assert pairs(10) == [(10, 12), (10, 12), (10, 14), (11, 15), (12, 14), (12, 14)]
    assert pairs(3) == [(10, 12), (10, 12), (10, 14), (11, 15)]  # 4 entries > 3: each with row 10
    assert has_hot_keys(keys, 3) and not has_hot_keys(keys, 4) and not has_hot_keys(keys[:0], 1)


def test_keys_that_agree_only_on_their_low_32_bits_are_a_candidate_that_verification_drops(spark, materialise):
    # Two unrelated texts whose 64-bit band keys differ but are cut to the same 32 bits share a
    # bucket: a candidate pair, never an edge.
    keys = np.array([(1 << 40) | 77, (2 << 40) | 77], np.int64)
    assert bucket_pairs(keys.astype(np.uint32), np.array([1, 2], np.int64), 10)[0].tolist() == [1]
    df = spark.createDataFrame([(1, "the quick brown fox jumps over the lazy dog"), (2, "query planners and databases")],
                               "row_id long, text string")
    config = NearDupConfig(column="text")
    edges = verified_pairs(df, spark.createDataFrame([(1, 2)], "a long, b long"), config)
    assert edges.count() == 0


def test_empty_texts_have_no_shingles_and_short_texts_have_one():
    _, ends = shingles(pa.array([None, "   ", "abc", "abcdef", "x"]), "char", 5)
    assert ends.tolist() == [0, 0, 1, 3, 4]
    assert shingles(pa.array(["One  TWO three"]), "word", 2)[0].tolist() == shingles(pa.array(["one two three"]), "word", 2)[0].tolist()


def test_batched_jaccard_equals_python_sets_on_random_texts():
    rng = random.Random(1)
    def text():  # short and long texts, runs of whitespace, a non-ASCII letter
        return "".join(rng.choice("ab cd\u00e9\t") for _ in range(rng.randint(1, 30)))
    left, right = [text() for _ in range(500)], [text() for _ in range(500)]
    expected = [_jaccard(x, y) if x.split() and y.split() else 0.0 for x, y in zip(left, right)]
    assert jaccard(pa.array(left), pa.array(right), "char", 5).tolist() == pytest.approx(expected)


def test_pairs_at_or_above_the_threshold_are_found_with_their_exact_jaccard(spark, materialise):
    base = "the quick brown fox jumps over the lazy dog near the river bank at dawn"
    texts = [(1, base), (2, base.replace("lazy", "lazY")), (3, base.replace("quick brown", "slow red")),
             (4, "completely different words about databases and query planners"), (5, ""), (6, None)]
    df = spark.createDataFrame(texts, "row_id long, text string")
    config = NearDupConfig(column="text", threshold=0.8)
    candidates = materialise(candidate_pairs(df, config, len(texts)), "candidates")
    edges = verified_pairs(df, candidates, config)
    got = {(r["a"], r["b"]): r["jaccard"] for r in edges.collect()}
    expected = {(a, b): _jaccard(ta, tb) for (a, ta), (b, tb) in itertools.combinations(texts[:4], 2)
                if _jaccard(ta, tb) >= 0.8}
    assert set(got) == set(expected) == {(1, 2)}  # case-folded: 'lazY' equals 'lazy'
    assert got[(1, 2)] == pytest.approx(expected[(1, 2)]) == pytest.approx(1.0)


@pytest.mark.parametrize("local_edges", [0, LOCAL_EDGES], ids=["rounds of joins", "one task"])
def test_components_join_chains_and_name_them_by_their_smallest_row(spark, materialise, local_edges):
    edges = spark.createDataFrame([(3, 4), (1, 2), (2, 3), (10, 11), (12, 11)], "a long, b long")
    got = connected_components(edges, materialise, local_edges)
    expected = spark.createDataFrame([(1, 1), (2, 1), (3, 1), (4, 1), (10, 10), (11, 10), (12, 10)],
                                     "node long, component long")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_components_of_a_long_shuffled_path_converge_quickly(spark, materialise, caplog):
    order = random.Random(2).sample(range(1, 301), 300)   # a path of 300 nodes in random order
    edges = spark.createDataFrame(list(zip(order, order[1:])) + [(1000, 1001)], "a long, b long")
    with caplog.at_level("INFO", logger="sparkprep.stages.groups"):
        got = {r["node"]: r["component"] for r in connected_components(edges, materialise, local_edges=0).collect()}
    assert got == {**{n: 1 for n in range(1, 301)}, 1000: 1000, 1001: 1000}
    rounds = int(caplog.records[-1].getMessage().split(" in ")[1].split()[0])
    assert rounds <= 12, rounds  # min-propagation alone would need up to 299


def _edit(text: str, edits: int, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(edits):
        chars[rng.randrange(len(chars))] = rng.choice("abcdefghijklmnopqrstuvwxyz")
    return "".join(chars)


def _clustered_texts(n_bases: int, seed: int) -> list[tuple[int, str, int]]:
    """(row_id, text, true cluster): random 300-char bases, each with 0-3 near copies carrying 1-5
    character substitutions (Jaccard to their base >= 0.84 by construction: a substitution changes
    at most 5 of ~296 shingles), and one far variant with 15 substitutions in a cluster of its own
    (Jaccard about 0.6-0.75: similar, but not a near-duplicate)."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(2000)]
    rows, row_id = [], 0
    for cluster in range(n_bases):
        base = " ".join(rng.choice(words) for _ in range(60))[:300]
        for variant in range(1 + rng.choice([0, 0, 1, 2, 3])):
            rows.append((row_id, base if variant == 0 else _edit(base, rng.randint(1, 5), rng), cluster))
            row_id += 1
        rows.append((row_id, _edit(base, 15, rng), n_bases + cluster))
        row_id += 1
    return rows


def _pairs(assignments: dict[int, int]) -> set[tuple[int, int]]:
    members: dict[int, list[int]] = {}
    for row, cluster in assignments.items():
        members.setdefault(cluster, []).append(row)
    return {pair for rows in members.values() for pair in itertools.combinations(sorted(rows), 2)}


def test_precision_and_recall_against_known_clusters(spark, materialise):
    rows = _clustered_texts(400, seed=3)
    df = spark.createDataFrame(rows, "row_id long, text string, truth int")
    got = add_dup_clusters(df, NearDupConfig(column="text", threshold=0.8), materialise)
    found = _pairs({r["row_id"]: r["dup_cluster"] for r in got.collect()})
    truth = _pairs({row: cluster for row, _, cluster in rows})
    precision = len(found & truth) / max(1, len(found))
    recall = len(found & truth) / len(truth)
    print(f"near-dup on {len(rows)} texts, {len(truth)} true pairs: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.95 and recall >= 0.9


def test_the_summary_counts_clusters_by_size_and_shows_the_least_and_most_similar_pairs(spark, materialise):
    rows = _clustered_texts(60, seed=7)
    long = "lorem ipsum dolor sit amet " * 20  # 540 characters: an example shows the first EXAMPLE_CHARS
    df = spark.createDataFrame([(r, t) for r, t, _ in rows] + [(1000, long), (1001, long + "!")], "row_id long, text string")
    config = NearDupConfig(column="text", threshold=0.8)
    found = find_clusters(df, config, materialise)
    summary = found.summary(config)
    clusters = {}
    for r in found.rows.collect():
        clusters.setdefault(r["dup_cluster"], []).append(r["row_id"])
    sizes = [len(members) for members in clusters.values() if len(members) > 1]
    assert summary["clusters"] == len(sizes) and summary["rows"] == sum(sizes)
    assert summary["sizes"] == {str(s): sizes.count(s) for s in sorted(set(sizes))}
    edges = sorted((r["jaccard"], r["a"], r["b"]) for r in found.edges.collect())
    assert summary["pairs"] == len(edges) and summary["candidate_pairs"] >= len(edges)
    examples = summary["examples"]
    assert len(examples) == sum(EXAMPLES)
    assert (examples[0]["a"], examples[0]["b"]) == edges[0][1:] and (examples[-1]["a"], examples[-1]["b"]) == edges[-1][1:]
    texts = {**{r: t for r, t, _ in rows}, 1000: long, 1001: long + "!"}
    for e in examples:
        assert e["jaccard"] >= 0.8 and e["text_a"] == texts[e["a"]][:EXAMPLE_CHARS] and e["text_b"] == texts[e["b"]][:EXAMPLE_CHARS]
    # Nothing found: the summary says so.
    lone = find_clusters(spark.createDataFrame([(1, "one text"), (2, "something else entirely")], "row_id long, text string"),
                         config, materialise)
    assert lone.summary(config) | {"candidate_pairs": 0} == {"column": "text", "threshold": 0.8, "keep": "all", "candidate_pairs": 0,
                                                              "pairs": 0, "clusters": 0, "rows": 0, "sizes": {}, "examples": []}


def test_an_oversized_bucket_links_to_its_anchor_instead_of_all_pairs(spark, materialise):
    boiler = "terms and conditions apply to every order placed through this website today"
    df = spark.createDataFrame([(i, boiler) for i in range(1, 31)] + [(100, "unrelated text of its own kind")],
                               "row_id long, text string")
    got = add_dup_clusters(df, NearDupConfig(column="text", max_bucket=5), materialise)
    clusters = {r["row_id"]: r["dup_cluster"] for r in got.collect()}
    assert {clusters[i] for i in range(1, 31)} == {1} and clusters[100] == 100


def test_clusters_do_not_depend_on_partitioning_nor_on_how_they_are_joined_to_the_rows(spark, materialise, monkeypatch,
                                                                                      caplog):
    """The clusters joined to the rows as they are, on 1, 4 and 32 partitions; then packed and
    through a filter (probe_filter.join_small's other ways), on 4."""
    rows = _clustered_texts(60, seed=5)
    df = spark.createDataFrame(rows, "row_id long, text string, truth int").drop("truth")
    config = NearDupConfig(column="text")

    def clusters(partitions):
        return add_dup_clusters(df.repartition(partitions), config, materialise).select("row_id", "dup_cluster")
    results = [clusters(n) for n in (1, 4, 32)]
    monkeypatch.setattr(probe_filter, "EXACT_MEMBERS", 0)
    with caplog.at_level(logging.INFO, logger="sparkprep.stages.probe_filter"):
        results.append(clusters(4))
        monkeypatch.setattr(probe_filter, "PACKED_MEMBERS", 0)
        results.append(clusters(4))
    joins = [m for m in caplog.messages if m.startswith("clustered-filter: ")]
    assert len(joins) == 2 and "packed into" in joins[0] and "a Bloom filter" in joins[1], joins
    for other in results[1:]:
        assert_df_equality(results[0], other, ignore_row_order=True)
    assert results[0].select(F.countDistinct("dup_cluster")).first()[0] == 120


def test_a_hot_bucket_neither_explodes_into_pairs_nor_lands_in_one_task(spark, materialise):
    """50,000 copies of one boilerplate text among 2,000 other texts: the copies are one cluster,
    linked by 49,999 star pairs (not 1.25 billion), and the map side sends each hot key once per
    batch, so no bucket task gets more than about its share of the entries."""
    copies, config = 50_000, NearDupConfig(column="text")
    rng = random.Random(9)
    others = [(copies + i, " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega", "sigma"]) + str(rng.randrange(10**6))
                                     for _ in range(12))) for i in range(2_000)]
    boiler = spark.range(copies).select(F.col("id").alias("row_id"),
                                        F.lit("terms and conditions apply to every order placed through this site").alias("text"))
    df = materialise(boiler.unionByName(spark.createDataFrame(others, "row_id long, text string")), "texts")

    entries = (band_entries(df, config, tasks=16).where(~F.col("pairs"))
               .groupBy("task").agg((F.sum(F.length("second")) / 8).alias("n")).collect())
    sent = [r["n"] for r in entries]
    assert sum(sent) < 0.05 * copies * config.bands  # each batch sends a hot key once, not once per copy
    assert max(sent) <= 2 * sum(sent) / 16, sent

    pairs = candidate_pairs(df, config, copies + len(others))
    assert pairs.count() < copies + 100
    clusters = add_dup_clusters(df, config, materialise)
    by_cluster = clusters.groupBy("dup_cluster").count().orderBy(F.desc("count")).first()
    assert (by_cluster["dup_cluster"], by_cluster["count"]) == (0, copies)


def _chain(n: int, seed: int) -> list[tuple[int, str]]:
    """n windows of 100 characters, each 5 characters further along one random string: Jaccard
    0.90 to the next window, 0.81 to the one after, 0.73 beyond, so the near-duplicates form a
    chain (a path with short cross links) n / 2 edges long."""
    rng = random.Random(seed)
    line = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(5 * n + 100))
    return [(i, line[5 * i:5 * i + 100]) for i in range(n)]


def test_a_chain_of_10000_near_duplicates_is_one_cluster(spark, materialise, caplog):
    rows = _chain(10_000, seed=11)
    assert _jaccard(rows[0][1], rows[1][1]) >= 0.8 and _jaccard(rows[0][1], rows[3][1]) < 0.8
    df = spark.createDataFrame(rows, "row_id long, text string")
    with caplog.at_level("INFO", logger="sparkprep.stages.groups"):
        got = add_dup_clusters(df, NearDupConfig(column="text"), materialise)
        assert got.groupBy("dup_cluster").count().collect() == [Row(dup_cluster=0, count=10_000)]
    assert "in one task" in caplog.records[-1].getMessage()  # one pass of union-find, not rounds of joins
    caplog.clear()

    config = NearDupConfig(column="text")
    candidates = materialise(candidate_pairs(df, config, len(rows)), "candidates")
    edges = materialise(verified_pairs(df, candidates, config), "edges")
    with caplog.at_level("INFO", logger="sparkprep.stages.groups"):
        labels = connected_components(edges, materialise, local_edges=0)
    assert labels.where(F.col("component") != 0).count() == 0
    rounds = int(caplog.records[-1].getMessage().split(" in ")[1].split()[0])
    assert rounds <= 16, rounds  # about log2 of the chain's length; min-propagation needs 5,000


def _docstrings() -> list[str]:
    """A real text collection that ships inside a PyPI package: the docstrings of PySpark's SQL
    functions (pyspark/sql/functions/), those of 200 characters or more. Many were written from
    one another (the same paragraph of caveats, the same example with another name)."""
    root = Path(pyspark.__file__).parent / "sql" / "functions"
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                text = ast.get_docstring(node)
                if text and len(text) >= 200:
                    found.append(text)
    return found


def test_precision_and_recall_on_pyspark_docstrings(spark, materialise):
    texts = _docstrings()
    assert len(texts) >= 400
    shingled = [_shingle_set(t) for t in texts]
    truth = {(i, j) for i, j in itertools.combinations(range(len(texts)), 2)
             if 5 * min(len(shingled[i]), len(shingled[j])) >= 4 * max(len(shingled[i]), len(shingled[j]))
             and len(shingled[i] & shingled[j]) >= 0.8 * len(shingled[i] | shingled[j])}
    assert len(truth) >= 100
    df = spark.createDataFrame(list(enumerate(texts)), "row_id long, text string")
    config = NearDupConfig(column="text")
    candidates = materialise(candidate_pairs(df, config, len(texts)), "candidates")
    edges = {(r["a"], r["b"]) for r in verified_pairs(df, candidates, config).collect()}
    clusters = {r["row_id"]: r["dup_cluster"] for r in add_dup_clusters(df, config, materialise).collect()}
    together = _pairs(clusters)
    true_together = _pairs(_components(truth, len(texts)))
    print(f"{len(texts)} docstrings, {len(truth)} pairs at Jaccard >= 0.8: {len(edges & truth)} found as edges, "
          f"{len(edges - truth)} wrong; cluster pairs {len(together)}, true {len(true_together)}")
    assert not edges - truth  # every edge is verified exactly
    assert len(edges & truth) >= 0.9 * len(truth)
    precision = len(together & true_together) / len(together)
    recall = len(together & true_together) / len(true_together)
    assert precision >= 0.95 and recall >= 0.9, (precision, recall)
