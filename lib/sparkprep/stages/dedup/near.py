"""Near-duplicate texts at scale: band keys, candidate pairs, exact Jaccard, components.

The per-text work (shingles, MinHash band keys, Jaccard) is compiled (minhash.py); this module is
the Spark shape around it, built so that Spark handles few rows:

1. Band keys, map side: each Arrow batch's texts get `bands` keys each. Two texts of Jaccard J
   share at least one key with probability 1 - (1 - J^r)^b: with the defaults b=25, r=8 that is
   0.99 at J=0.8 and 0.35 at J=0.6, so candidates are cheap to over-generate and verify. The
   (key, row_id) entries are not Spark rows: each batch groups its entries by destination task (a
   range of the keys' high bits) and sends one binary blob of packed entries per task, each key
   cut to its low 32 bits (12 bytes an entry, not 16). Spark shuffles a few large values per batch
   instead of 25 rows per text (as rows, the shuffle and its sort cost more than all the hashing). A key that one batch holds more than `max_bucket` times (boilerplate,
   templates) is turned into a star there: each of its rows paired with its smallest row, and
   only that row's entry sent on. So a hot key costs its task one entry per batch, never the
   whole hot bucket.
2. Buckets, reduce side: a task unpacks its blobs, sorts the entries by key (one sort of key and
   entry packed in 64 bits) and pairs up the rows that share a key; two keys that agree only on
   their low 32 bits add a candidate that verification drops. A bucket larger than `max_bucket` links each member to the bucket's smallest
   row_id instead of producing all pairs, so the pairs stay linear in the rows; a task drops its
   own repeated pairs (two texts share several bands), `distinct` the rest.
3. Verification: the set (or a Bloom filter) of the candidates' row_ids (probe_filter.py) picks
   their texts in one scan, and they are joined to the pairs; each pair's exact Jaccard of shingle
   sets is computed, and pairs at or above the threshold become edges. Precision therefore depends
   on the threshold only; recall on the banding (the formula above). Every other row is its own
   cluster, untouched.
4. Connected components of the edges (groups.connected_components), each named by its smallest
   row_id: `dup_cluster`. They are joined to the rows without shuffling the rows
   (probe_filter.join_small: broadcast as they are, or packed into blocks, in one pass over the
   rows; beyond PACKED_MEMBERS, only the rows a filter passes are shuffled).

Memory is bounded by the task's share of the entries: the number of tasks grows with the texts
(`_ENTRY_BYTES_PER_TASK`), never with the size of a cluster.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkprep.config import Config, NearDupConfig
from sparkprep.contract import DUP_CLUSTER, ROW_ID
from sparkprep.io.write import Materialise, counted
from sparkprep.stages.context import Context
from sparkprep.stages import probe_filter
from sparkprep.stages.dedup.exact import collapse
from sparkprep.stages.dedup.minhash import BandHasher, bucket_pairs, by_task, distinct_pairs, has_hot_keys, hot_runs, jaccard
from sparkprep.stages.groups import connected_components

log = logging.getLogger(__name__)

#: Packed (key, row_id) entries a bucket task holds at most (12 bytes each: the key's low 32 bits): 64 MB.
_ENTRY_BYTES_PER_TASK = 64 << 20
_ENTRY_BYTES = 12
_PAIRS_PER_BATCH = 1 << 20
_PAIR_SCHEMA = "a long, b long"
_BLOB_COLUMNS = ["task", "pairs", "first", "second"]
_CANDIDATE = "_sp_near_candidate"
#: Example pairs the report shows: the least similar over the threshold, and the most similar.
EXAMPLES = (3, 2)
#: Characters of an example's text the report shows.
EXAMPLE_CHARS = 300


def _packed(values: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """A binary array whose i-th value is values[offsets[i]:offsets[i+1]] as raw bytes."""
    return pa.Array.from_buffers(pa.binary(), offsets.size - 1,
                                 [None, pa.py_buffer(offsets.astype(np.int32) * values.itemsize), pa.py_buffer(values)])


def _unpacked(column: pa.Array, dtype: type = np.int64) -> np.ndarray:
    """The `dtype` values of all of a `_packed` column's blobs, one after the other."""
    offsets = np.frombuffer(column.buffers()[1], np.int32)[column.offset:column.offset + len(column) + 1]
    data = column.buffers()[2]
    if data is None:
        return np.empty(0, dtype)
    return np.frombuffer(data, np.uint8)[offsets[0]:offsets[-1]].view(dtype)


class _Banding:
    """Map side: (row_id, text) batches in; out, one (task, entries: keys, rows) blob row per
    destination task, and one (task, pairs: a, b) row of the pairs that replaced hot keys."""

    def __init__(self, config: NearDupConfig, routes: np.ndarray) -> None:
        self.hasher = BandHasher(config.shingle, config.shingle_size, config.bands, config.rows_per_band, config.seed)
        self.bands, self.max_bucket, self.routes = config.bands, config.max_bucket, routes

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            owners, keys = self.hasher.keys(batch.column(1))
            if not owners.size:
                continue
            rows = np.repeat(batch.column(0).to_numpy(zero_copy_only=False)[owners], self.bands)
            keys = keys.reshape(-1)
            # A key this batch alone holds more than max_bucket times (boilerplate) becomes a star
            # here, so a hot key sends one entry per batch, not one per text, to its task.
            if has_hot_keys(keys, self.max_bucket):
                order = np.argsort(keys)
                keys, rows = keys[order], rows[order]
                keep, a, b = hot_runs(keys, rows, self.max_bucket)
                keys, rows = keys[keep], rows[keep]
                first = np.array([0, a.size])
                yield pa.RecordBatch.from_arrays(
                    [pa.array(self.routes[[a[0] % self.routes.size]].astype(np.int32)), pa.array([True]),
                     _packed(a, first), _packed(b, first)], names=_BLOB_COLUMNS)
            low, rows, counts = by_task(keys, rows, self.routes.size)
            present = np.flatnonzero(counts)
            offsets = np.concatenate([[0], np.cumsum(counts[present])])
            yield pa.RecordBatch.from_arrays(
                [pa.array(self.routes[present].astype(np.int32)), pa.array(np.zeros(present.size, bool)),
                 _packed(low, offsets), _packed(rows, offsets)], names=_BLOB_COLUMNS)


def _pairs_of_buckets(max_bucket: int):
    """Reduce side: every blob of a task in, its distinct candidate pairs out."""
    def pairs(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        keys, rows, a, b = [], [], [], []
        for batch in batches:
            are_pairs = batch.column(1)
            for into, kind, first in (((keys, rows), pc.invert(are_pairs), np.uint32), ((a, b), are_pairs, np.int64)):
                chosen = batch.filter(kind)
                into[0].append(_unpacked(chosen.column(2), first))
                into[1].append(_unpacked(chosen.column(3)))
        if not keys:
            return
        found_a, found_b = bucket_pairs(np.concatenate(keys), np.concatenate(rows), max_bucket)
        found_a, found_b = distinct_pairs(np.concatenate([found_a, *a]), np.concatenate([found_b, *b]))
        for start in range(0, found_a.size, _PAIRS_PER_BATCH):
            stop = start + _PAIRS_PER_BATCH
            yield pa.RecordBatch.from_arrays([pa.array(found_a[start:stop]), pa.array(found_b[start:stop])],
                                             names=["a", "b"])
    return pairs


def _routes(spark: SparkSession, tasks: int) -> np.ndarray:
    """For each task t, a value that `repartition(tasks, column)` sends to partition t: Spark's hash
    partitioning sends the values 0..tasks-1 themselves to only about 63% of the partitions
    (measured: half the tasks got two shares, others none)."""
    found = np.full(tasks, -1, np.int64)
    tried = 0
    while (found < 0).any():
        values = spark.range(tried, tried + 8 * tasks).select(
            F.col("id").cast("int").alias("v"), F.pmod(F.hash(F.col("id").cast("int")), F.lit(tasks)).alias("p"))
        for value, partition in values.collect():
            if found[partition] < 0:
                found[partition] = value
        tried += 8 * tasks
    return found


def candidate_pairs(df: DataFrame, config: NearDupConfig, texts: int) -> DataFrame:
    """(`a`, `b`), a < b, distinct: the rows of `df` that share a band key (LSH candidates), with
    oversized buckets linked to their smallest row (module docstring, steps 1-2). A pair that
    shares bands handled by different tasks comes once from each (11 times on average for the
    bench's near-duplicates), hence the `distinct`.

    Args:
        df: rows with `row_id` and the text column.
        config: dedup.near.
        texts: how many rows `df` has (or an upper bound): sizes the tasks.
    """
    tasks = max(int(df.sparkSession.conf.get("spark.sql.shuffle.partitions")),
                math.ceil(texts * config.bands * _ENTRY_BYTES / _ENTRY_BYTES_PER_TASK))
    return (band_entries(df, config, tasks).repartition(tasks, "task")
            .mapInArrow(_pairs_of_buckets(config.max_bucket), _PAIR_SCHEMA).distinct())


def band_entries(df: DataFrame, config: NearDupConfig, tasks: int) -> DataFrame:
    """The map side's blobs (`task`, `pairs`, `first`, `second`): packed (key, row_id) entries per
    destination task (`pairs` false), and the pairs that replaced hot keys (`pairs` true), each
    blob's values as raw int64s (module docstring, step 1).

    Args:
        df: rows with `row_id` and the text column.
        config: dedup.near.
        tasks: the number of bucket tasks.
    """
    return df.select(ROW_ID, F.col(config.column).cast("string")).mapInArrow(
        _Banding(config, _routes(df.sparkSession, tasks)), "task int, pairs boolean, first binary, second binary")


def verified_pairs(rows: DataFrame, candidates: DataFrame, config: NearDupConfig) -> DataFrame:
    """Edges (`a`, `b`, `jaccard`): the `candidates` whose texts have an exact Jaccard similarity
    at or above the threshold (module docstring, step 3).

    Args:
        rows: rows with `row_id` and the text column: at least the candidates' (read twice).
        candidates: `candidate_pairs(...)`.
        config: dedup.near.
    """
    texts = rows.select(ROW_ID, F.col(config.column).cast("string").alias("t"))
    joined = (candidates.join(texts.withColumnsRenamed({ROW_ID: "a", "t": "ta"}), "a")
              .join(texts.withColumnsRenamed({ROW_ID: "b", "t": "tb"}), "b"))

    def verify(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            similarity = jaccard(batch.column("ta"), batch.column("tb"), config.shingle, config.shingle_size)
            yield pa.RecordBatch.from_arrays([batch.column("a"), batch.column("b"), pa.array(similarity)],
                                             names=["a", "b", "jaccard"])
    return (joined.select("a", "b", "ta", "tb").mapInArrow(verify, "a long, b long, jaccard double")
            .where(F.col("jaccard") >= config.threshold))


@dataclass(frozen=True)
class NearClusters:
    """`find_clusters`' rows with `dup_cluster`, and the small tables they came from, from which
    `summary` tells what was found (no table: no candidate or no edge).

    Args:
        rows: the rows with `dup_cluster`.
        candidates: how many candidate pairs there were.
        pairs: how many of them were verified (the edges).
        edges: the verified pairs (`a`, `b`, `jaccard`), materialised.
        clusters: (`row_id`, `dup_cluster`) of the rows in a cluster, materialised.
        texts: (`row_id`, text) of the candidates, materialised.
    """

    rows: DataFrame
    candidates: int = 0
    pairs: int = 0
    edges: DataFrame | None = None
    clusters: DataFrame | None = None
    texts: DataFrame | None = None

    def summary(self, config: NearDupConfig) -> dict[str, Any]:
        """What near-dup found, for the report: pairs and clusters (count, sizes), and example pairs
        (the least similar pairs over the threshold and the most similar, texts cut to
        EXAMPLE_CHARS). Small jobs over the small tables (an aggregation, two top-k, a lookup), none
        over the rows.

        Args:
            config: dedup.near.
        """
        found: dict[str, Any] = {"column": config.column, "threshold": config.threshold, "keep": config.keep,
                                 "candidate_pairs": self.candidates, "pairs": 0, "clusters": 0, "rows": 0,
                                 "sizes": {}, "examples": []}
        if self.edges is None or self.clusters is None or self.texts is None:
            return found
        sizes = {int(r["size"]): int(r["n"]) for r in self.clusters.groupBy(DUP_CLUSTER).agg(F.count(F.lit(1)).alias("size"))
                 .groupBy("size").agg(F.count(F.lit(1)).alias("n")).collect()}
        least, most = EXAMPLES
        ends = (self.edges.orderBy("jaccard", "a", "b").limit(least).collect()
                + self.edges.orderBy(F.desc("jaccard"), "a", "b").limit(most).collect())
        pairs = sorted({(r["jaccard"], r["a"], r["b"]) for r in ends})
        ids = sorted({i for _, a, b in pairs for i in (a, b)})
        texts = {r[0]: r[1] for r in self.texts.where(F.col(ROW_ID).isin(ids))
                 .select(ROW_ID, F.substring(F.col(config.column).cast("string"), 1, EXAMPLE_CHARS)).collect()}
        return {**found, "pairs": self.pairs, "clusters": sum(sizes.values()), "rows": sum(size * n for size, n in sizes.items()),
                "sizes": {str(size): n for size, n in sorted(sizes.items())},
                "examples": [{"a": a, "b": b, "jaccard": round(j, 4), "text_a": texts.get(a), "text_b": texts.get(b)}
                             for j, a, b in pairs]}


def find_clusters(df: DataFrame, config: NearDupConfig, materialise: Materialise, texts: int | None = None) -> NearClusters:
    """`df` with `dup_cluster`: the smallest row_id among its near-duplicates (itself if none), and
    the small tables it came from.

    Args:
        df: rows with `row_id` and the text column.
        config: dedup.near.
        materialise: where the candidates, their rows, edges, components and the filter are kept.
        texts: how many rows `df` has, or an upper bound (else they are counted): sizes the tasks.
    """
    texts = df.count() if texts is None else texts
    candidates, n_candidates = counted(materialise, candidate_pairs(df, config, texts), "near-candidates")
    if not n_candidates:
        log.info("near-dup: no candidate pairs")
        return NearClusters(df.withColumn(DUP_CLUSTER, F.col(ROW_ID)))
    # Only a candidate can have a near-duplicate: only the candidates' texts (and the few others a
    # filter passes) are kept, verified and clustered; every other row is its own cluster.
    ids = candidates.select(F.col("a").alias(ROW_ID)).unionByName(candidates.select(F.col("b").alias(ROW_ID)))
    texts = df.select(ROW_ID, config.column)
    marked = probe_filter.mark_members(texts, ROW_ID, ids, 2 * n_candidates, materialise, _CANDIDATE, "candidate-filter")
    candidate_texts = materialise(marked.where(F.col(_CANDIDATE)).drop(_CANDIDATE), "candidate-texts")
    edges, n_edges = counted(materialise, verified_pairs(candidate_texts, candidates, config), "near-edges")
    log.info("near-dup: %d candidate pairs, %d at Jaccard >= %s", n_candidates, n_edges, config.threshold)
    if not n_edges:
        return NearClusters(df.withColumn(DUP_CLUSTER, F.col(ROW_ID)), n_candidates)
    clusters = connected_components(edges, materialise, count=n_edges).withColumnsRenamed({"node": ROW_ID, "component": DUP_CLUSTER})
    joined = probe_filter.join_small(df, clusters, ROW_ID, 2 * n_edges, materialise, "clustered-filter")
    return NearClusters(joined.withColumn(DUP_CLUSTER, F.coalesce(F.col(DUP_CLUSTER), F.col(ROW_ID))), n_candidates,
                        n_edges, edges, clusters, candidate_texts)


def add_dup_clusters(df: DataFrame, config: NearDupConfig, materialise: Materialise) -> DataFrame:
    """`df` with `dup_cluster`: the smallest row_id among its near-duplicates (itself if none).

    Args:
        df: rows with `row_id` and the text column.
        config: dedup.near.
        materialise: where the candidates, their rows, edges, components and the filter are kept.
    """
    return find_clusters(df, config, materialise).rows


def apply(rows: DataFrame, config: Config, ctx: Context) -> DataFrame:
    """The dedup rule: near-duplicate clusters (dedup.near), collapsed to one row each with
    keep: representative (the smallest row_id), else kept whole (the split keeps a cluster in one fold).

    Args:
        rows: rows through the previous dedup rules, none of them rejected.
        config: the run's config (dedup.near).
        ctx: the run's scratch space, for the candidates, edges, components, filters and (keep:
            representative) the collapsed rows.
    """
    near = config.dedup.near
    if not near:
        return rows
    start = time.perf_counter()
    found = find_clusters(rows, near, ctx.under("dedup/near"), ctx.rows)
    ctx.note("near_duplicates", found.summary(near))
    clustered = found.rows
    if near.keep == "representative":
        clustered = ctx.materialise(collapse(clustered, [DUP_CLUSTER], F.col(ROW_ID), "near", largest=False), "dedup/unique")
    log.info("near-duplicates done in %.1fs", time.perf_counter() - start)
    return clustered
