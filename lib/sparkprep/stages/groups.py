"""Groups that must stay in one fold: rows linked by a group column, a near-duplicate cluster or
identical features with conflicting labels.

Each key links the rows that share a (non-null) value to the smallest row_id among them (a star:
one edge per row, never all pairs). With one key that smallest row_id is the group; with several,
the groups are the connected components of all the stars together, so a row that shares a user
with one row and a near-duplicate text with another keeps all three in one fold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkprep.compiled import kernel

from sparkprep.contract import GROUP, ROW_ID
from sparkprep.errors import ContractError
from sparkprep.io.write import Materialise

log = logging.getLogger(__name__)

_MAX_ROUNDS = 64
#: Up to this many edges (16 bytes each) the components are found in one task by union-find
#: (about 50 ns an edge); beyond, by rounds of joins whose memory is Spark's to bound.
LOCAL_EDGES = 4_000_000


@kernel
def _roots(a, b, n):  # pragma: no cover (compiled)
    """Union-find over nodes 0..n-1 whose root is always the smallest node of its set (path
    halving); every node's root."""
    parent = np.arange(n)
    for e in range(a.size):
        x, y = a[e], b[e]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x < y:
            parent[y] = x
        elif y < x:
            parent[x] = y
    for i in range(n):  # a parent is never larger than its child: one pass in order finishes the job
        parent[i] = parent[parent[i]]
    return parent


def _components_in_one_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """(node, component) of all the edges the task is given."""
    ends = [(batch.column(0).to_numpy(), batch.column(1).to_numpy()) for batch in batches]
    if not ends:
        return
    a, b = np.concatenate([x for x, _ in ends]), np.concatenate([y for _, y in ends])
    nodes, index = np.unique(np.concatenate([a, b]), return_inverse=True)
    roots = _roots(index[:a.size], index[a.size:], nodes.size)
    yield pa.RecordBatch.from_arrays([pa.array(nodes), pa.array(nodes[roots])], names=["node", "component"])


def _jump(labels: DataFrame) -> DataFrame:
    """Each node's label becomes its label's label (pointer doubling)."""
    via = labels.select(F.col("node").alias("component"), F.col("component").alias("via"))
    return (labels.join(via, "component", "left")
            .select("node", F.least(F.col("component"), F.coalesce(F.col("via"), F.col("component"))).alias("component")))


def connected_components(edges: DataFrame, materialise: Materialise, local_edges: int = LOCAL_EDGES,
                         count: int | None = None) -> DataFrame:
    """(`node`, `component`) for every node of the undirected `edges` (`a`, `b`); the component is
    its smallest node. Materialised.

    Up to `local_edges` edges, one task runs union-find over them all. Beyond, labels form a
    forest that only ever points to smaller nodes. Each round: every node takes the
    smallest label around it; every label's node ("parent") takes the smallest value any of its
    children found (hooking, as in Shiloach-Vishkin, so one discovery re-labels a whole tree);
    then two pointer-doubling jumps. Plain min-propagation needs as many rounds as the graph's
    diameter (50 rounds on the demo's groups linked by near-duplicates); this converges in a
    few. `materialise` cuts the lineage every round so plans stay small.

    Args:
        edges: undirected edges (`a`, `b`).
        materialise: where each round's labels are kept (a scratch copy).
        local_edges: the most edges one task takes (LOCAL_EDGES).
        count: how many edges there are, where the caller knows (else they are counted).
    """
    count = edges.count() if count is None else count
    if count <= local_edges:
        log.info("connected components of %d edges in one task", count)
        return materialise(edges.select(F.col("a").cast("long"), F.col("b").cast("long")).coalesce(1)
                           .mapInArrow(_components_in_one_task, "node long, component long"), "cc-local")
    both = materialise(edges.select("a", "b").unionByName(edges.select(F.col("b").alias("a"), F.col("a").alias("b"))),
                       "cc-edges")
    labels = materialise(both.groupBy(F.col("a").alias("node")).agg(F.least(F.col("a"), F.min("b")).alias("component")),
                         "cc-0")
    for round_ in range(1, _MAX_ROUNDS + 1):
        lowest = (both.join(labels.withColumnsRenamed({"node": "b", "component": "cb"}), "b")
                  .groupBy(F.col("a").alias("node")).agg(F.min("cb").alias("low")))
        found = labels.join(lowest, "node").select("node", F.col("component").alias("parent"),
                                                   F.least("component", "low").alias("found"))
        hooks = found.groupBy(F.col("parent").alias("node")).agg(F.min("found").alias("hook"))
        hooked = (found.join(hooks, "node", "left")
                  .select("node", F.least(F.col("found"), F.coalesce(F.col("hook"), F.col("found"))).alias("component")))
        jumped = materialise(_jump(_jump(hooked)), f"cc-{round_}")
        changed = jumped.join(labels.withColumnRenamed("component", "before"), "node").where(
            F.col("component") != F.col("before")).limit(1).count()
        labels = jumped
        if not changed:
            log.info("connected components converged in %d rounds", round_)
            return labels
    raise ContractError(f"connected components did not converge in {_MAX_ROUNDS} rounds")


@dataclass(frozen=True)
class Anchor:
    """A key whose value already is the smallest row_id of the rows that share it (near-duplicate
    clusters): it links rows as it is, without the aggregation and join (a shuffle of every row)
    that find a plain key's smallest row_id.

    Args:
        column: the key.
    """

    column: Column


def add_groups(df: DataFrame, keys: list[Column | Anchor], materialise: Materialise) -> DataFrame:
    """`df` with `_sp_group`: the smallest row_id of the rows linked to it through any of `keys`
    (its own row_id when nothing links it).

    Args:
        df: rows with `row_id`.
        keys: what links rows (a row with a null key is linked by none).
        materialise: where the links and components are kept.
    """
    if not keys:
        return df.withColumn(GROUP, F.col(ROW_ID))
    anchored = df
    for i, key in enumerate(keys):
        if isinstance(key, Anchor):
            anchored = anchored.withColumn(f"_sp_ga{i}", key.column)
            continue
        keyed = anchored.withColumn(f"_sp_gk{i}", key)
        anchors = keyed.where(F.col(f"_sp_gk{i}").isNotNull()).groupBy(f"_sp_gk{i}").agg(F.min(ROW_ID).alias(f"_sp_ga{i}"))
        anchored = keyed.join(anchors, f"_sp_gk{i}", "left")
    temporary = [c for c in anchored.columns if c.startswith(("_sp_gk", "_sp_ga"))]
    if len(keys) == 1:
        return anchored.withColumn(GROUP, F.coalesce(F.col("_sp_ga0"), F.col(ROW_ID))).drop(*temporary)
    anchored = materialise(anchored, "group-keys")
    edges = None
    for i in range(len(keys)):
        star = anchored.select(F.col(f"_sp_ga{i}").alias("a"), F.col(ROW_ID).alias("b")).where(
            F.col("a").isNotNull() & (F.col("a") != F.col("b")))
        edges = star if edges is None else edges.unionByName(star)
    components = connected_components(edges, materialise)
    joined = anchored.join(components.withColumnRenamed("node", ROW_ID), ROW_ID, "left")
    return joined.withColumn(GROUP, F.coalesce(F.col("component"), F.col(ROW_ID))).drop("component", *temporary)
