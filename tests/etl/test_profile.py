"""profile: one input scan (on both paths), exact moments vs pandas, sketch error bounds, partition-independent stats."""

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from sklearn.datasets import load_wine

from sparkprep.quality.profile import ALPHA, HLL_RSE, Profile, column_kinds, profile
from sparkprep.io.arrow_tasks import plan
from sparkprep.quality.kernels import GAMMA
from sparkprep.quality.state import TINY, bucket_codes, bucket_key


@pytest.fixture(scope="module")
def wine(spark):
    """scikit-learn's bundled wine dataset (178 rows) with nulls punched in, and its Spark twin."""
    frame = load_wine(as_frame=True).frame
    frame["target"] = frame["target"].map({0: "c0", 1: "c1", 2: "c2"})
    frame.loc[frame.index % 7 == 0, "alcohol"] = np.nan  # null in Spark (None), NaN in pandas
    sdf = spark.createDataFrame(frame.astype(object).where(frame.notna(), None))
    return frame, sdf


def test_moments_match_pandas_exactly_and_sketches_within_their_error(wine):
    frame, sdf = wine
    stats = profile(sdf, label="target")
    assert stats.rows == len(frame)
    for name in frame.columns.drop("target"):
        col, s = stats.columns[name], frame[name]
        assert (col.count, col.nulls) == (int(s.notna().sum()), int(s.isna().sum())), name
        assert col.mean == pytest.approx(s.mean(), rel=1e-9), name
        assert col.std == pytest.approx(s.std(ddof=0), rel=1e-9), name
        assert (col.min, col.max) == (s.min(), s.max()), name
        true_distinct = s.nunique()
        assert abs(col.distinct - true_distinct) <= max(3 * HLL_RSE * true_distinct, 1), name
        values = np.sort(s.dropna().to_numpy())
        for q, est in col.quantiles.items():
            truth = np.quantile(values, float(q), method="lower")
            assert abs(est - truth) <= ALPHA * abs(truth) + 1e-12, (name, q, est, truth)
    label = stats.columns["target"]
    assert label.top == [[k, int(v)] for k, v in sorted(frame["target"].value_counts().items(), key=lambda kv: -kv[1])]
    assert label.distinct == 3 and label.is_label


@pytest.mark.parametrize("partitions", [None, 16])
def test_input_is_scanned_once_in_one_job(spark, wine, partitions):
    """Every input row passes through a counting UDF: one scan reads each row exactly once, and
    `profile` runs ONE Spark job (the partials' treeAggregate; with 16 partitions it merges them
    through a tree level, a shuffle stage of that job), with adaptive execution off and on."""
    frame, sdf = wine
    rows = len(frame) * (partitions or 1)
    if partitions:  # 16 partitions without a shuffle before profile (spark.range)
        sdf = spark.range(0, rows, numPartitions=partitions).select(
            (F.col("id") % len(frame)).cast("double").alias("alcohol"), (F.col("id") % 3).cast("string").alias("target"))
    reads = spark.sparkContext.accumulator(0)

    @F.udf("double")
    def counted(x):
        reads.add(1)
        return x

    assert jobs_per_run(spark, lambda: profile(sdf.withColumn("alcohol", counted("alcohol")), label="target"),
                        f"profile-scan-test-{partitions}") == [1, 1]
    assert reads.value == 2 * rows  # two profiles, each reading every row once


def jobs_per_run(spark, run, group):
    """Spark jobs that `run()` starts, with adaptive execution off, then on."""
    tracker = spark.sparkContext.statusTracker()
    adaptive = spark.conf.get("spark.sql.adaptive.enabled")
    jobs = []
    try:
        for on in ("false", "true"):
            spark.conf.set("spark.sql.adaptive.enabled", on)
            spark.sparkContext.setJobGroup(f"{group}-{on}", "count jobs")
            run()
            jobs.append(len(tracker.getJobIdsForGroup(f"{group}-{on}")))
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        spark.conf.set("spark.sql.adaptive.enabled", adaptive)
    return jobs


def test_parquet_path_runs_one_job_that_reads_every_row_once(spark, tmp_path):
    """The Parquet path (pyarrow reads pieces of the files) also runs ONE job; each of the 3 x 4
    row groups is read once: every row counted once."""
    for i in range(3):
        pq.write_table(pa.table({"x": np.arange(400.0) + i, "c": [f"v{k % 5}" for k in range(400)]}),
                       tmp_path / f"part-{i}.parquet", row_group_size=100)
    df = spark.read.parquet(str(tmp_path))
    assert plan(df, column_kinds(df), None)[1] is not None  # the Parquet path applies
    stats = []
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1k")  # a task per row group or two
    try:
        assert jobs_per_run(spark, lambda: stats.append(profile(df)), "profile-files-jobs") == [1, 1]
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert [s.rows for s in stats] == [1200, 1200] and stats[0].columns["x"].count == 1200
    assert plan(df.select(), {}, None)[1] is not None and profile(df.select()).rows == 1200  # no column read


def test_stats_json_identical_for_any_partitioning(spark):
    rows = [(i, (i * 37 % 1000) / 7.0 if i % 11 else None, f"v{i % 13}", "x" * (i % 9), [0.0] * (i % 4))
            for i in range(5000)]
    df = spark.createDataFrame(rows, "id long, x double, c string, t string, a array<double>")
    dumps = {json.dumps(profile(df.repartition(n, "id"), text=("t",)).to_dict(), sort_keys=True)
             for n in (1, 4, 7)}
    dumps.add(json.dumps(profile(df.orderBy(F.desc("id")).coalesce(3), text=("t",)).to_dict(), sort_keys=True))
    assert len(dumps) == 1


def test_nan_inf_and_round_trip(spark):
    df = spark.createDataFrame([(1.0,), (float("nan"),), (float("inf"),), (float("-inf"),), (None,), (3.0,)], "x double")
    stats = profile(df)
    x = stats.columns["x"]
    assert (x.count, x.nulls, x.nan, x.inf, x.min, x.max, x.mean) == (5, 1, 1, 2, 1.0, 3.0, 2.0)
    saved = json.loads(json.dumps(stats.to_dict()))
    assert Profile.from_dict(saved).to_dict() == saved


def test_bucket_keys_agree_with_the_spark_formula_at_every_boundary(spark):
    """The numpy codes keep the keys of the previous, Spark-computed version (Spark's log is
    java.lang.StrictMath's; numpy's is its own): at, just below and just above every γ^i."""
    edges = GAMMA ** np.arange(-1381, 35488, dtype=np.float64)  # every edge of a double (not γ^35488 > 1.8e308)
    x = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf), [TINY, np.nextafter(TINY, 0)]])
    x = np.concatenate([x, -x[::7]])
    index = F.ceil(F.log(F.abs("x")) / math.log(GAMMA)).cast("string")
    key = (F.when(F.abs("x") < TINY, F.lit("0")).when(F.col("x") > 0, F.concat(F.lit("+"), index))
           .otherwise(F.concat(F.lit("-"), index)))
    rows = spark.createDataFrame(pd.DataFrame({"x": x})).select("x", key.alias("key")).collect()
    values = np.array([r["x"] for r in rows])
    ours = [bucket_key(int(c)) for c in bucket_codes(values)]
    differ = [(v, r["key"], k) for v, r, k in zip(values, rows, ours) if r["key"] != k]
    assert len(rows) == len(x) and not differ, differ[:10]
