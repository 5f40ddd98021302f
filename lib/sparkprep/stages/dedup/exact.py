"""Row identity, and exact and by-key deduplication (label conflicts: conflicts.py).

`row_id` is xxhash64 of the canonical cleaned content (all data columns, in order). Exact
duplicates are found on 128 bits: `row_id` plus a second, independently salted 64-bit hash. Two
different rows share both only with probability ~ n^2 / 2^129 (about 1e-21 at a billion rows), so
no equality re-check is needed; `row_id` alone (64 bits) may collide with probability
~ n^2 / 2^65 at n rows (about 3% at a billion), which only ties the split's sort order, never
merges rows. Feature hashes (content without the label) use the same 128-bit scheme.

Exact and by-key deduplication are two aggregations (Spark cannot hash-aggregate a whole row, so
each sorts), each folding its groups inside every map task before its shuffle (a partial
aggregation): a hot key (one id with a tenth of the rows, say) reaches its reduce task as one row
per map task, never as all its rows. Partitioning by the key once for both steps cost one
shuffle fewer, but put every row of a hot key into one task. Each surviving row carries
`_sp_merged`, the number of accepted input rows it stands for, and per-step counts of the rows it
absorbed, so the pipeline can count duplicates by kind in one aggregation of the result.

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

from sparkprep.config import Config
from sparkprep.contract import INTERNAL_PREFIX, ROW_ID
from sparkprep.errors import ConfigError
from sparkprep.stages.context import Context
from sparkprep.stages import probe_filter

log = logging.getLogger(__name__)

MERGED = "_sp_merged"
#: A rule that absorbs rows counts them per surviving row in `_sp_dup_<rule>` (`collapse` adds the
#: column); their sum is `rows.duplicates`.
ABSORBED_PREFIX = "_sp_dup_"
#: A rule that counts rows without absorbing them (conflicting labels) keeps its count per row in
#: `_sp_counted_<name>`; a collapse sums it like the absorbed counts, so later rules keep it whole.
COUNTED_PREFIX = "_sp_counted_"
#: The absorbing rules every row starts with a counter for (`add_row_id`).
ABSORBED = {rule: ABSORBED_PREFIX + rule for rule in ("exact", "key", "near")}
CONTENT_HASH2 = "_sp_content_hash2"
_PROBE = "_sp_dedup_probe"
_MAYBE_REPEATED = "_sp_maybe_repeated"


def apply(rows: DataFrame, config: Config, ctx: Context) -> DataFrame:
    """The dedup rule: exact and by-key deduplication as dedup.exact and dedup.key ask.

    Args:
        rows: `add_row_id` rows.
        config: the run's config (its dedup section).
        ctx: the run's scratch space, for the repeated probes, their filter and the collapsed rows.
    """
    dedup = config.dedup
    return deduplicate(rows, dedup.exact, dedup.key, dedup.keep, dedup.order_by, ctx.under("dedup"))


def data_columns(df: DataFrame) -> list[str]:
    """The columns of `df` that are data (not internal).

    Args:
        df: any rows of a run.
    """
    return [c for c in df.columns if not c.startswith(INTERNAL_PREFIX)]


def add_row_id(df: DataFrame) -> DataFrame:
    """Add `row_id` (and the internal second hash) from every data column of `df`, and start the
    dedup counters (each row stands for itself).

    Args:
        df: accepted rows (data columns and internal ones).
    """
    content = [F.col(c) for c in data_columns(df)]
    return df.withColumns({
        ROW_ID: F.xxhash64(*content),
        CONTENT_HASH2: F.xxhash64(F.lit("sparkprep/content/2"), *content),
        MERGED: F.lit(1).cast("long"),
        **{c: F.lit(0).cast("long") for c in ABSORBED.values()},
    })


def counters(df: DataFrame) -> list[str]:
    """The dedup counters `df` carries (absorbed and counted rows), which a collapse sums.

    Args:
        df: rows of `add_row_id`, through any dedup rules.
    """
    return [c for c in df.columns if c.startswith((ABSORBED_PREFIX, COUNTED_PREFIX))]


def collapse(df: DataFrame, keys: list[str], order: Column, step: str, largest: bool = True) -> DataFrame:
    """One row per `keys` (counted as `step` duplicates): the one with the largest (or smallest)
    `order`; counters summed. Spark folds each map task's rows of a key into one before the
    shuffle (max_by / min_by, count and sum all merge partial results).

    Args:
        df: rows with the dedup counters.
        keys: the columns whose equal values make one row.
        order: the survivor is the row with the largest (or smallest) order.
        step: the rule counting the absorbed rows (its counter: `_sp_dup_<step>`).
        largest: keep the largest `order` (else the smallest).
    """
    absorbed = ABSORBED_PREFIX + step
    if absorbed not in df.columns:
        df = df.withColumn(absorbed, F.lit(0).cast("long"))
    pick = F.max_by if largest else F.min_by
    survivor = pick(F.struct(*[F.col(c) for c in df.columns if c not in keys]), order)
    totals = [MERGED, *counters(df)]
    grouped = df.groupBy(*keys).agg(survivor.alias("_sp_row"), F.count(F.lit(1)).alias("_sp_n"),
                                    *[F.sum(c).alias(f"_sp_total{c}") for c in totals])
    summed = {**{c: F.col(f"_sp_total{c}") for c in totals}, absorbed: F.col(f"_sp_total{absorbed}") + F.col("_sp_n") - 1}
    return grouped.select([F.col(c) if c in keys else summed[c].alias(c) if c in summed else F.col(f"_sp_row.{c}")
                           for c in df.columns])


def drop_exact_duplicates(df: DataFrame) -> DataFrame:
    """Keep one row per identical content (any copy: they are equal in every output column).

    Args:
        df: `add_row_id` rows.
    """
    return collapse(df, [ROW_ID, CONTENT_HASH2], F.lit(0), "exact").drop(CONTENT_HASH2)


def keep_one_per_key(df: DataFrame, key: list[str], keep: str, order_by: str | None) -> DataFrame:
    """One row per `key`: the latest (largest `order_by`) or the first (smallest). A null
    `order_by` loses to any value; ties go to the smallest row_id, so the survivor never depends
    on partitioning.

    Args:
        df: `add_row_id` rows.
        key: dedup.key.
        keep: dedup.keep: latest or first.
        order_by: dedup.order_by.
    """
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
    copy and reads it back: the repeated probes, their filter, and the collapsed rows.

    Args:
        df: `add_row_id` rows.
        exact: dedup.exact.
        key: dedup.key.
        keep: dedup.keep.
        order_by: dedup.order_by.
        materialise: where the scratch copies go.
    """
    if not (exact or key):
        return df.drop(CONTENT_HASH2)
    # Identical content implies an identical key, so the key's probe also finds exact duplicates.
    probe = F.xxhash64(F.lit("sparkprep/stages/dedup/exact-key"), *[F.col(c) for c in key]) if key else F.col(ROW_ID)
    probed = df.withColumn(_PROBE, probe)
    repeated, n_repeated = probe_filter.repeated(probed, _PROBE, materialise, "repeated")
    kind = "keys" if key else "contents"
    if not n_repeated:
        log.info("dedup: no repeated %s", kind)
        return df.drop(CONTENT_HASH2)
    log.info("dedup: %d repeated %s; only their rows are collapsed", n_repeated, kind)
    marked = probe_filter.mark_members(probed, _PROBE, repeated, n_repeated, materialise, _MAYBE_REPEATED,
                                       "filter").drop(_PROBE)
    single = marked.where(~F.col(_MAYBE_REPEATED)).drop(_MAYBE_REPEATED, CONTENT_HASH2)
    rows = marked.where(F.col(_MAYBE_REPEATED)).drop(_MAYBE_REPEATED)
    rows = drop_exact_duplicates(rows) if exact else rows.drop(CONTENT_HASH2)
    merged = materialise(keep_one_per_key(rows, key, keep, order_by) if key else rows, "collapsed")
    return single.unionByName(merged)
