"""profile: one input scan, exact moments vs pandas, sketch error bounds, partition-independent stats."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from sklearn.datasets import load_wine

from sparkprep.profile import ALPHA, HLL_RSE, Profile, profile


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


def test_input_is_scanned_once(spark, wine):
    """Every input row passes through a counting UDF: one scan reads each row exactly once."""
    frame, sdf = wine
    reads = spark.sparkContext.accumulator(0)

    @F.udf("double")
    def counted(x):
        reads.add(1)
        return x

    tracker = spark.sparkContext.statusTracker()
    # Adaptive execution runs each shuffle stage as a job of its own; an in-process CLI test may
    # have switched it on in the shared session, so count jobs without it.
    adaptive = spark.conf.get("spark.sql.adaptive.enabled")
    spark.conf.set("spark.sql.adaptive.enabled", "false")
    spark.sparkContext.setJobGroup("profile-scan-test", "count jobs")
    try:
        profile(sdf.withColumn("alcohol", counted("alcohol")), label="target")
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        spark.conf.set("spark.sql.adaptive.enabled", adaptive)
    assert reads.value == len(frame)
    # Two jobs: the first aggregates the input into the persisted groups; the second (distinct
    # counts of categorical columns) reads only those groups.
    assert len(tracker.getJobIdsForGroup("profile-scan-test")) == 2


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
