"""Properties of the dedup chain (exact → by key → label conflicts): every input row is accounted
for, and the result does not depend on partitioning."""


from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from sparkprep.config import NearDupConfig
from sparkprep.stages.dedup.exact import (ABSORBED, MERGED, add_row_id, deduplicate, drop_exact_duplicates, keep_one_per_key)
from sparkprep.stages.dedup.conflicts import mark_label_conflicts
from sparkprep.stages.dedup.near import add_dup_clusters

SCHEMA = "k string, t int, x double, label string"
# Small domains, so that exact duplicates, key collisions and label conflicts are common.
ROWS = st.lists(st.tuples(st.sampled_from(["k0", "k1", "k2", "k3"]), st.one_of(st.none(), st.integers(0, 3)),
                          st.sampled_from([0.0, 1.0, 2.5]), st.sampled_from(["a", "b"])),
                min_size=1, max_size=40)


def _chain(df, policy, keyed):
    rows = drop_exact_duplicates(add_row_id(df))
    if keyed:
        rows = keep_one_per_key(rows, ["k"], "latest", "t")
    return mark_label_conflicts(rows, "label", policy, features=["x"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, policy=st.sampled_from(["keep_all", "keep_majority", "drop_all"]), keyed=st.booleans(),
       partitions=st.sampled_from([1, 3]))
def test_every_input_row_is_kept_rejected_or_counted_as_a_duplicate(spark, rows, policy, keyed, partitions):
    out = _chain(spark.createDataFrame(rows, SCHEMA).repartition(partitions), policy, keyed)
    got = out.agg(F.count_if(F.col("_sp_reason").isNull()).alias("kept"),
                  F.count_if(F.col("_sp_reason").isNotNull()).alias("rejected"),
                  *[F.sum(c).alias(k) for k, c in ABSORBED.items()], F.sum(MERGED).alias("merged")).first()
    duplicates = sum(got[k] for k in ABSORBED)
    assert len(rows) == got["kept"] + got["rejected"] + duplicates == got["merged"]
    if not keyed:  # without key dedup, exact duplicates are exactly what pandas would drop
        assert got["exact"] == len(rows) - len(set(rows))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS, exact=st.booleans(), keyed=st.booleans(), partitions=st.sampled_from([1, 3]))
def test_deduplicate_equals_collapsing_every_row(spark, materialise, rows, exact, keyed, partitions):
    """Passing rows without a repeated probe through untouched changes nothing."""
    df = add_row_id(spark.createDataFrame(rows, SCHEMA).repartition(partitions))
    everything = drop_exact_duplicates(df) if exact else df.drop("_sp_content_hash2")
    if keyed:
        everything = keep_one_per_key(everything, ["k"], "latest", "t")
    got = deduplicate(df, exact, ["k"] if keyed else [], "latest", "t", materialise)
    assert_df_equality(got, everything.select(got.columns), ignore_row_order=True, ignore_nullable=True)


def test_dedup_output_is_identical_for_1_4_and_32_partitions(spark, materialise):
    base = "a review of the product that arrived late but works well enough for daily use"
    rows = [(f"k{i % 37}", i % 5, float(i % 11), "a" if i % 3 else "b",
             base + f" {i % 13}" if i % 4 else f"text number {i} about something else entirely") for i in range(400)]
    df = spark.createDataFrame(rows, "k string, t int, x double, label string, text string")
    results = []
    for n in (1, 4, 32):
        chained = _chain(df.repartition(n), "keep_majority", keyed=True).where(F.col("_sp_reason").isNull())
        clustered = add_dup_clusters(chained, NearDupConfig(column="text"), materialise)
        results.append(clustered.select("row_id", "dup_cluster", MERGED, *ABSORBED.values()))
    for other in results[1:]:
        assert_df_equality(results[0], other, ignore_row_order=True)
