"""Row identity, exact and by-key deduplication, and conflicting labels.

`row_id` is xxhash64 of the canonical cleaned content (all data columns, in order). Exact
duplicates are found on 128 bits: `row_id` plus a second, independently salted 64-bit hash. Two
different rows share both only with probability ~ n^2 / 2^129 (about 1e-21 at a billion rows), so
no equality re-check is needed; `row_id` alone (64 bits) may collide with probability
~ n^2 / 2^65 at n rows (about 3% at a billion), which only ties the split's sort order, never
merges rows. Feature hashes (content without the label) use the same 128-bit scheme.

Exact and by-key deduplication share ONE shuffle: rows are hash-partitioned by the key (identical
content implies an identical key), and both steps are sort-based aggregations over that partitioning
(Spark cannot hash-aggregate a whole row, so each aggregation sorts). Done as two independent
aggregations, they cost two shuffles and four sorts of every row; this way one shuffle and one sort
(the key step reuses the exact step's order). A hot key makes one task long but never exhausts
memory: sorting spills. Each surviving row carries `_sp_merged`, the number of accepted input rows
it stands for, and per-step counts of the rows it absorbed, so the pipeline can count duplicates
by kind in one aggregation of the result.

Most rows have no duplicate, and they need no shuffle at all (`deduplicate`): a narrow aggregation
of one 64-bit probe per row (the dedup key's hash, else `row_id`) finds the probes that occur more
than once. Only the rows that carry one of those can have a duplicate; they alone go through the
collapse (shuffled and sorted), and every other row passes through unchanged. The rows are told
apart by a Bloom filter of the repeated probes (probe_filter.py), broadcast: its memory is bounded
however many probes repeat, and the few rows it passes by mistake collapse to themselves.
"""

from __future__ import annotations

import logging
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkprep.contract import CONFLICTING_LABEL, MESSAGE, RAW, REASON, REASON_COLUMN, ROW_ID
from sparkprep.stages.dedup import probe_filter
from sparkprep.errors import ConfigError

log = logging.getLogger(__name__)

MERGED = "_sp_merged"
#: Rows absorbed by each dedup step (per surviving row); their sum is `rows.duplicates`.
ABSORBED = {"exact": "_sp_dup_exact", "key": "_sp_dup_key", "near": "_sp_dup_near"}
CONTENT_HASH2 = "_sp_content_hash2"
_FEATURES = ("_sp_features1", "_sp_features2")
#: 64 bits of the feature hash, kept on every row for grouping conflicting rows.
FEATURE_HASH = _FEATURES[0]
_PROBE = "_sp_dedup_probe"
_MAYBE_REPEATED = "_sp_maybe_repeated"


def _data_columns(df: DataFrame) -> list[str]:
    return [c for c in df.columns if not c.startswith("_sp_")]


def add_row_id(df: DataFrame) -> DataFrame:
    """Add `row_id` (and the internal second hash) from every data column of `df`, and start the
    dedup counters (each row stands for itself)."""
    content = [F.col(c) for c in _data_columns(df)]
    return df.withColumns({
        ROW_ID: F.xxhash64(*content),
        CONTENT_HASH2: F.xxhash64(F.lit("sparkprep/content/2"), *content),
        MERGED: F.lit(1).cast("long"),
        **{c: F.lit(0).cast("long") for c in ABSORBED.values()},
    })


def collapse(df: DataFrame, keys: list[str], order: Column, step: str, largest: bool = True) -> DataFrame:
    """One row per `keys` (counted as `step` duplicates): the one with the largest (or smallest)
    `order`; counters summed. The key columns are the aggregation's own, so the result stays
    partitioned and ordered by them for a following step."""
    pick = F.max_by if largest else F.min_by
    survivor = pick(F.struct(*[F.col(c) for c in df.columns if c not in keys]), order)
    totals = [MERGED, *ABSORBED.values()]
    grouped = df.groupBy(*keys).agg(survivor.alias("_sp_row"), F.count(F.lit(1)).alias("_sp_n"),
                                    *[F.sum(c).alias(f"_sp_total{c}") for c in totals])
    absorbed = ABSORBED[step]
    counters = {**{c: F.col(f"_sp_total{c}") for c in totals}, absorbed: F.col(f"_sp_total{absorbed}") + F.col("_sp_n") - 1}
    return grouped.select([F.col(c) if c in keys else counters[c].alias(c) if c in counters else F.col(f"_sp_row.{c}")
                           for c in df.columns])


def drop_exact_duplicates(df: DataFrame, within: list[str] | None = None) -> DataFrame:
    """Keep one row per identical content (any copy: they are equal in every output column).
    `within`: the dedup key of a following `keep_one_per_key`, to partition by it once for both."""
    keys = [*(within or []), ROW_ID, CONTENT_HASH2]
    spread = df.repartition(*[F.col(c) for c in (within or keys)])
    return collapse(spread, keys, F.lit(0), "exact").drop(CONTENT_HASH2)


def keep_one_per_key(df: DataFrame, key: list[str], keep: str, order_by: str | None) -> DataFrame:
    """One row per `key`: the latest (largest `order_by`) or the first (smallest). A null
    `order_by` loses to any value; ties go to the smallest row_id, so the survivor never depends
    on partitioning."""
    missing = [c for c in [*key, *([order_by] if order_by else [])] if c not in df.columns]
    if missing:
        raise ConfigError(f"dedup.key/order_by name columns that are not in the input: {missing}")
    value = F.col(order_by) if order_by else F.lit(0)
    if keep == "latest":  # bitwise_not: decreasing in row_id without the overflow of -row_id
        order = F.struct(value.isNotNull(), value, F.bitwise_not(F.col(ROW_ID)))
    else:
        order = F.struct(value.isNull(), value, F.col(ROW_ID))
    return collapse(df, key, order, "key", largest=keep == "latest")


def deduplicate(df: DataFrame, exact: bool, key: list[str], keep: str, order_by: str | None,
                materialise: Callable[[DataFrame, str], DataFrame]) -> DataFrame:
    """Exact (`exact`) and by-key (`key`) deduplication of `add_row_id` rows, shuffling only the
    rows that can have a duplicate (module docstring). `materialise(df, name)` writes a scratch
    copy and reads it back: the repeated probes, their filter, and the collapsed rows."""
    if not (exact or key):
        return df.drop(CONTENT_HASH2)
    # Identical content implies an identical key, so the key's probe also finds exact duplicates.
    probe = F.xxhash64(F.lit("sparkprep/stages/dedup/exact-key"), *[F.col(c) for c in key]) if key else F.col(ROW_ID)
    probed = df.withColumn(_PROBE, probe)
    repeated = materialise(probed.groupBy(_PROBE).count().where(F.col("count") > 1).select(_PROBE), "repeated")
    n_repeated, kind = repeated.count(), "keys" if key else "contents"
    if not n_repeated:
        log.info("dedup: no repeated %s", kind)
        return df.drop(CONTENT_HASH2)
    bits = probe_filter.filter_bits(n_repeated)
    log.info("dedup: %d repeated %s; only their rows (and those a filter of %d bits cannot tell apart) are collapsed",
             n_repeated, kind, bits)
    members = materialise(probe_filter.build(repeated, _PROBE, bits), "filter")
    marked = probe_filter.mark(probed, _PROBE, members, bits, _MAYBE_REPEATED).drop(_PROBE)
    single = marked.where(~F.col(_MAYBE_REPEATED)).drop(_MAYBE_REPEATED, CONTENT_HASH2)
    rows = marked.where(F.col(_MAYBE_REPEATED)).drop(_MAYBE_REPEATED)
    rows = drop_exact_duplicates(rows, key or None) if exact else rows.drop(CONTENT_HASH2)
    merged = materialise(keep_one_per_key(rows, key, keep, order_by) if key else rows, "collapsed")
    return single.unionByName(merged)


def add_feature_hash(df: DataFrame, label: str, features: list[str] | None = None) -> DataFrame:
    """128-bit hash of the feature columns (default: every data column but the label)."""
    features = [F.col(c) for c in (features or [c for c in _data_columns(df) if c not in (label, ROW_ID)])]
    return df.withColumns({_FEATURES[0]: F.xxhash64(F.lit("sparkprep/features/1"), *features),
                           _FEATURES[1]: F.xxhash64(F.lit("sparkprep/features/2"), *features)})


def conflicting_groups(df: DataFrame, label: str, features: list[str] | None = None) -> DataFrame:
    """Feature groups (by the 128-bit feature hash) that carry more than one label, with the
    label counts that decide a majority: small (one row per conflicting group). Two aggregations
    of narrow columns, hash-based (fixed-width buffers) except the second, which sees one row
    per (group, label)."""
    hashed = df if _FEATURES[0] in df.columns else add_feature_hash(df, label, features)
    per_label = hashed.groupBy(*_FEATURES, label).agg(F.sum(MERGED).alias("_sp_label_rows"))
    per_group = per_label.groupBy(*_FEATURES).agg(
        F.count(F.lit(1)).alias("_sp_labels"),
        F.max_by(F.col(label), F.struct("_sp_label_rows", F.col(label))).alias("_sp_majority"),
        F.max("_sp_label_rows").alias("_sp_top"),
        # The runner-up's count decides whether the top label is a majority or a tie; labels per
        # feature group are few (a group is one content), so this list stays tiny.
        F.get(F.sort_array(F.collect_list("_sp_label_rows"), asc=False), 1).alias("_sp_second"))
    return per_group.where(F.col("_sp_labels") > 1)


def mark_label_conflicts(df: DataFrame, label: str, policy: str, features: list[str] | None = None,
                         groups: DataFrame | None = None) -> DataFrame:
    """Flag rows whose `features` (default: all data columns but the label; identifiers such as
    an id column are not features, so pass the feature roles) equal another row's with a
    different label.

    Adds `_sp_conflict` (true for every row of a conflicting feature group) and the quarantine
    columns (`_sp_reason` ...) for the rows the policy rejects: `drop_all` rejects the whole group,
    `keep_majority` all but the label with the most input rows (a tie has no majority: all go),
    `keep_all` none. `groups`: `conflicting_groups` of the same rows, computed beforehand (the
    pipeline materialises it and broadcasts it when small, so the rows are not shuffled)."""
    hashed = df if _FEATURES[0] in df.columns else add_feature_hash(df, label, features)
    conflicting = conflicting_groups(hashed, label) if groups is None else groups
    joined = hashed.join(conflicting, list(_FEATURES), "left")
    conflict = F.col("_sp_labels").isNotNull()
    has_majority = F.coalesce(F.col("_sp_top") > F.col("_sp_second"), F.lit(False))
    rejected = {"keep_all": F.lit(False),
                "drop_all": conflict,
                "keep_majority": conflict & ~(has_majority & (F.col(label) == F.col("_sp_majority")))}[policy]
    data = _data_columns(df)
    message = F.format_string(f"features identical to rows with %d labels; policy {policy}", F.col("_sp_labels"))
    return joined.withColumns({
        "_sp_conflict": conflict,
        REASON: F.when(rejected, F.lit(CONFLICTING_LABEL)),
        REASON_COLUMN: F.when(rejected, F.lit(label)),
        MESSAGE: F.when(rejected, message),
        RAW: F.when(rejected, F.to_json(F.struct(*[F.col(c) for c in data if c != ROW_ID]))),
    }).drop("_sp_labels", "_sp_majority", "_sp_top", "_sp_second")
