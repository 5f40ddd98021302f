"""Near-duplicate texts at scale: MinHash signatures, LSH banding, exact Jaccard, components.

1. Shingles: the text is lower-cased and its whitespace collapsed, then cut into character (or
   word) shingles, each hashed to an integer below the prime p = 2^31 - 1 by a polynomial hash.
   A text shorter than one shingle is one shingle; an empty or null text has none and is never
   compared (Spark's MinHashLSH fails on such rows; here they simply stay singletons). A whole
   Arrow batch is shingled at once: its texts are concatenated into one array of code points and
   every window of that array is hashed by numpy; windows that straddle two texts are dropped.
2. MinHash: `bands x rows_per_band` seeded multiply-add-shift hash functions
   h_i(x) = ((a_i x + b_i) mod 2^64) >> 32 (a_i odd), the same on every executor, applied to a
   batch's shingles in chunks, each text's minimum being one `np.minimum.reduceat` segment.
   `mapInArrow` moves the batch in and out without pandas or Python lists: converting ~90 shingle
   hashes per text to Python lists for a pandas UDF cost more than the hashing itself.
3. LSH: each band of r signature values becomes one 64-bit bucket key. Two texts of Jaccard J
   share at least one bucket with probability 1 - (1 - J^r)^b: with the defaults b=25, r=8 that is
   0.99 at J=0.8 and 0.35 at J=0.6, so candidates are cheap to over-generate and verify.
   One window over (band, key) sizes every bucket and finds its smallest row_id in a single shuffle
   of the (row, band) keys; its result (only rows of shared buckets) is materialised once. Bucket
   sizes are bounded: a bucket larger than `max_bucket` (boilerplate, templates) links each member
   to the bucket's smallest row_id instead of producing all pairs, so the work stays linear; only
   rows of smaller shared buckets meet in a self-join.
4. Every candidate pair is verified by the exact Jaccard of the two texts' shingle sets,
   recomputed from the texts (cheaper than storing the sets: candidates are few); only pairs at or
   above the threshold become edges. Precision therefore depends on the threshold only; recall on
   the banding (the formula above).
5. Connected components of the edges (groups.connected_components), each named by its smallest
   row_id: `dup_cluster`. A row with no near-duplicate is its own cluster.
"""

from __future__ import annotations

import functools
import zlib
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from sparkprep.contract import DUP_CLUSTER, ROW_ID
from sparkprep.config import Config, NearDupConfig
from sparkprep.io.write import Materialise
from sparkprep.stages.context import Context
from sparkprep.stages.dedup.exact import collapse
from sparkprep.stages.groups import connected_components

_PRIME = (1 << 31) - 1
_CHUNK_SHINGLES = 1 << 13  # measured: 8192 columns keep the temporaries in cache


@functools.lru_cache(maxsize=64)
def _powers(width: int) -> np.ndarray:
    """Polynomial hash weights, computed once per shingle width rather than once per text."""
    return np.array([pow(1_000_003, j, _PRIME) for j in range(width)], dtype=np.int64)


def _polynomial(units: np.ndarray, width: int, count: int) -> np.ndarray:
    """Hashes of the `count` windows of `width` units starting at 0, 1, ...: one pass per unit of
    the window, so memory stays O(count) rather than O(count x width)."""
    hashes = np.zeros(count, dtype=np.int64)
    for j, power in enumerate(_powers(width)):
        # Each term is below 2^62 before it is reduced, so int64 never overflows.
        hashes = (hashes + units[j:j + count] % _PRIME * power) % _PRIME
    return hashes


def shingles(texts: Sequence[str | None], kind: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(owner, hash) of the distinct shingles of every text, sorted by owner (the text's index
    in `texts`) and then hash. Texts without shingles own none.

    Args:
        texts: the texts (None: no shingles).
        kind: dedup.near.shingle: characters or words.
        size: dedup.near.shingle_size.
    """
    normal = [" ".join(t.lower().split()) if t else "" for t in texts]
    if kind == "char":
        lengths = np.fromiter(map(len, normal), dtype=np.int64, count=len(normal))
        units = np.frombuffer("".join(normal).encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    else:
        words = [t.split(" ") if t else [] for t in normal]
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        units = np.fromiter((zlib.crc32(w.encode("utf-8")) for ws in words for w in ws), dtype=np.int64,
                            count=int(lengths.sum()))
    ends = np.cumsum(lengths)
    starts = ends - lengths
    owners, hashes = [], []
    if units.size >= size:
        full = _polynomial(units, size, units.size - size + 1)
        at = np.arange(full.size)
        owner = np.searchsorted(ends, at, side="right")
        inside = at + size <= ends[owner]
        owners.append(owner[inside])
        hashes.append(full[inside])
    for i in np.flatnonzero((lengths > 0) & (lengths < size)):
        owners.append(np.array([i]))
        hashes.append(_polynomial(units[starts[i]:ends[i]], int(lengths[i]), 1))
    if not owners:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    keys = np.sort((np.concatenate(owners) << 31) | np.concatenate(hashes))
    keys = keys[np.diff(keys, prepend=-1) != 0]  # sort + neighbour test: 8x numpy 2's hash-based unique here
    return keys >> 31, keys & _PRIME


class _MinHash:
    """The seeded hash family and band mixing of one NearDupConfig."""

    def __init__(self, config: NearDupConfig) -> None:
        rng = np.random.default_rng(config.seed)
        n = config.bands * config.rows_per_band
        self.config = config
        self.a = rng.integers(0, 1 << 63, size=(n, 1), dtype=np.int64).astype(np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 1 << 63, size=(n, 1), dtype=np.int64).astype(np.uint64)
        self.mix = rng.integers(1, 1 << 62, size=config.rows_per_band, dtype=np.int64).astype(np.uint64) | np.uint64(1)

    def band_keys(self, texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """(owners, keys): the indexes of the texts that have shingles, and their
        (len(owners), bands) bucket keys. Shingles go through the hash family in chunks of about
        `_CHUNK_SHINGLES` (bands x rows_per_band x chunk uint64s of memory), whole texts per chunk."""
        config = self.config
        owner, values = shingles(texts, config.shingle, config.shingle_size)
        segments = np.flatnonzero(np.diff(owner, prepend=-1))  # where each text's shingles begin
        keys = np.empty((segments.size, config.bands), dtype=np.int64)
        first = 0
        while first < segments.size:
            last = max(first + 1, int(np.searchsorted(segments, segments[first] + _CHUNK_SHINGLES, side="right")))
            stop = segments[last] if last < segments.size else values.size
            x = values[segments[first]:stop].astype(np.uint64)
            with np.errstate(over="ignore"):  # multiply-add-shift hashing wraps modulo 2^64
                hashed = (self.a * x + self.b) >> np.uint64(32)
            signature = np.minimum.reduceat(hashed, segments[first:last] - segments[first], axis=1)
            bands = signature.T.reshape(last - first, config.bands, config.rows_per_band)
            with np.errstate(over="ignore"):
                keys[first:last] = (bands * self.mix).sum(axis=2).view(np.int64)
            first = last
        return owner[segments], keys

    def banded(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """(row_id, band, key) rows, one per band of every text that has shingles."""
        bands = self.config.bands
        for batch in batches:
            owners, keys = self.band_keys(batch.column(1).to_pylist())
            row_ids = batch.column(0).to_numpy(zero_copy_only=False)[owners]
            yield pa.RecordBatch.from_arrays(
                [pa.array(np.repeat(row_ids, bands)), pa.array(np.tile(np.arange(bands, dtype=np.int32), owners.size)),
                 pa.array(keys.reshape(-1))], names=[ROW_ID, "band", "key"])


def signatures(df: DataFrame, config: NearDupConfig) -> DataFrame:
    """(`row_id`, `band`, `key`): the LSH bucket of every band of every row of `df` whose text
    has at least one shingle.

    Args:
        df: rows with `row_id` and the text column.
        config: dedup.near.
    """
    return df.select(ROW_ID, F.col(config.column).cast("string")).mapInArrow(
        _MinHash(config).banded, f"{ROW_ID} long, band int, key long")


def jaccard(left: Sequence[str | None], right: Sequence[str | None], kind: str, size: int) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of left[i] and right[i], for every i (0 when
    either text has no shingles).

    Args:
        left: texts.
        right: texts, as many as `left`.
        kind: the shingle kind.
        size: the shingle size.
    """
    (la, ha), (lb, hb) = shingles(left, kind, size), shingles(right, kind, size)
    both = np.intersect1d((la << 31) | ha, (lb << 31) | hb, assume_unique=True) >> 31
    n = len(left)
    common = np.bincount(both, minlength=n)
    union = np.bincount(la, minlength=n) + np.bincount(lb, minlength=n) - common
    return np.divide(common, union, out=np.zeros(n), where=union > 0)


def shared_buckets(signed: DataFrame) -> DataFrame:
    """The rows of `signatures(...)` whose bucket holds more than one row, with the bucket's size
    `n` and smallest row_id `anchor`: one window, one shuffle of every (row, band) key.

    Args:
        signed: `signatures(...)`.
    """
    bucket = Window.partitionBy("band", "key")
    return signed.select(ROW_ID, "band", "key", F.count(F.lit(1)).over(bucket).alias("n"),
                         F.min(ROW_ID).over(bucket).alias("anchor")).where(F.col("n") > 1)


def similar_pairs(df: DataFrame, sized: DataFrame, config: NearDupConfig) -> DataFrame:
    """Verified edges (`a`, `b`, `jaccard`) with a < b between rows of `df` (`row_id` and the text
    column) whose texts have Jaccard similarity >= threshold; `sized` is `shared_buckets(...)`,
    read three times (both sides of the self-join and the anchors): pass it materialised, or the
    window runs three times.

    Args:
        df: rows with `row_id` and the text column.
        sized: `shared_buckets(...)`, materialised.
        config: dedup.near.
    """
    small = sized.where(F.col("n") <= config.max_bucket).select(ROW_ID, "band", "key")
    left, right = small.alias("l"), small.alias("r")
    all_pairs = (left.join(right, [F.col("l.band") == F.col("r.band"), F.col("l.key") == F.col("r.key"),
                                   F.col(f"l.{ROW_ID}") < F.col(f"r.{ROW_ID}")])
                 .select(F.col(f"l.{ROW_ID}").alias("a"), F.col(f"r.{ROW_ID}").alias("b")))
    to_anchor = (sized.where((F.col("n") > config.max_bucket) & (F.col(ROW_ID) != F.col("anchor")))
                 .select(F.col("anchor").alias("a"), F.col(ROW_ID).alias("b")))
    texts = df.select(ROW_ID, F.col(config.column).cast("string").alias("t"))
    candidates = (all_pairs.unionByName(to_anchor).distinct()
                  .join(texts.withColumnsRenamed({ROW_ID: "a", "t": "ta"}), "a")
                  .join(texts.withColumnsRenamed({ROW_ID: "b", "t": "tb"}), "b"))

    def verify(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            similarity = jaccard(batch.column("ta").to_pylist(), batch.column("tb").to_pylist(),
                                 config.shingle, config.shingle_size)
            yield pa.RecordBatch.from_arrays([batch.column("a"), batch.column("b"), pa.array(similarity)],
                                             names=["a", "b", "jaccard"])
    return (candidates.select("a", "b", "ta", "tb").mapInArrow(verify, "a long, b long, jaccard double")
            .where(F.col("jaccard") >= config.threshold))


def add_dup_clusters(df: DataFrame, config: NearDupConfig, materialise: Materialise) -> DataFrame:
    """`df` with `dup_cluster`: the smallest row_id among its near-duplicates (itself if none).

    Args:
        df: rows with `row_id` and the text column.
        config: dedup.near.
        materialise: where the signatures, buckets, edges and components are kept.
    """
    sized = materialise(shared_buckets(materialise(signatures(df, config), "near-signatures")), "near-buckets")
    edges = materialise(similar_pairs(df, sized, config), "near-edges")
    components = connected_components(edges, materialise)
    joined = df.join(components.withColumnRenamed("node", ROW_ID), ROW_ID, "left")
    return joined.withColumn(DUP_CLUSTER, F.coalesce(F.col("component"), F.col(ROW_ID))).drop("component")


def apply(rows: DataFrame, config: Config, ctx: Context) -> DataFrame:
    """The dedup rule: near-duplicate clusters (dedup.near), collapsed to one row each with
    keep: representative (the smallest row_id), else kept whole (the split keeps a cluster in one fold).

    Args:
        rows: rows through the previous dedup rules, none of them rejected.
        config: the run's config (dedup.near).
        ctx: the run's scratch space, for the signatures, buckets, pairs and the result.
    """
    near = config.dedup.near
    if not near:
        return rows
    clustered = add_dup_clusters(rows, near, ctx.under("dedup/near"))
    if near.keep == "representative":
        clustered = collapse(clustered, [DUP_CLUSTER], F.col(ROW_ID), "near", largest=False)
    return ctx.materialise(clustered, "dedup/unique")
