"""measure_groups' Parquet path: the same groups as Spark's aggregation, by hand and on generated
files; Delta snapshots; where it steps aside."""

import logging
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sparkprep.stages.normalise import fit as normalise
from sparkprep.config import ArrayTransform, NumericTransform
from sparkprep.stages.normalise.fit import FitSpec, measure_groups

SPEC = FitSpec({"x": NumericTransform(method="minmax"), "y": NumericTransform(log1p=True), "z": NumericTransform()})


def _spark_path(monkeypatch):
    monkeypatch.setattr(normalise, "file_source", lambda *a: (None, None, "forced by the test"))


def _groups_by_both_paths(spark, path, spec, monkeypatch, caplog):
    df = spark.read.parquet(str(path))
    with caplog.at_level(logging.INFO, logger="sparkprep.stages.normalise.fit"):
        files = measure_groups(df, list(spec.numeric), spec)
    assert "statistics from the Parquet files" in caplog.text
    with monkeypatch.context() as m:
        _spark_path(m)
        spark_groups = measure_groups(df, list(spec.numeric), spec)
    return files, spark_groups


def _assert_same(files, spark_groups):
    assert (files.rows, files.copies, files.undersampled) == (spark_groups.rows, spark_groups.copies,
                                                              spark_groups.undersampled)
    assert files.extents == spark_groups.extents
    assert files.moments.keys() == spark_groups.moments.keys()
    for key, per_column in files.moments.items():
        for column, m in per_column.items():
            theirs = spark_groups.moments[key][column]
            assert m.count == theirs.count, (key, column)
            assert math.isclose(m.mean, theirs.mean, rel_tol=1e-12, abs_tol=1e-12), (key, column)
            assert math.isclose(m.m2, theirs.m2, rel_tol=1e-9, abs_tol=1e-9), (key, column)


def test_hand_built_groups_equal_what_was_derived_by_hand(spark, tmp_path, monkeypatch, caplog):
    # fold 0 class 0: x = 1, 3 (originals), 50 (copy: ignored), NaN (missing); y = e-1 -> log1p 1;
    # fold 0 class 1: x = null, 5, in_train false twice; fold -1: x = 100.
    table = pa.table({
        "fold": pa.array([0, 0, 0, 0, 0, 0, -1], pa.int32()),
        "label_index": pa.array([0, 0, 0, 0, 1, 1, 0], pa.int32()),
        "replica": pa.array([0, 0, 1, 0, 0, 0, 0], pa.int32()),
        "in_train": pa.array([True, True, True, True, False, False, True]),
        "x": pa.array([1.0, 3.0, 50.0, math.nan, None, 5.0, 100.0]),
        "y": pa.array([math.e - 1, math.e - 1, 7.0, -(math.e - 1), 0.0, math.inf, None]),
        "z": pa.array([1, 2, 3, 4, 5, 6, 7], pa.int64()),
    })
    pq.write_table(table, tmp_path / "part-0.parquet", row_group_size=3)
    files, spark_groups = _groups_by_both_paths(spark, tmp_path, SPEC, monkeypatch, caplog)
    assert files.rows == {(0, 0): 3, (0, 1): 2, (-1, 0): 1}
    assert files.copies == {(0, 0): 1, (0, 1): 0, (-1, 0): 0}
    assert files.undersampled == {(0, 0): 0, (0, 1): 2, (-1, 0): 0}
    x = files.moments[(0, 0)]["x"]
    assert (x.count, x.mean, x.m2) == (2, 2.0, 2.0)
    assert (files.extents[(0, 0)]["x"].low, files.extents[(0, 0)]["x"].high) == (1.0, 3.0)
    assert files.moments[(0, 1)]["x"].count == 1 and files.extents[(0, 1)]["x"].low == 5.0
    y = files.moments[(0, 0)]["y"]  # log1p(e - 1) = 1 twice, -1 once (symlog)
    assert y.count == 3 and math.isclose(y.mean, 1 / 3) and math.isclose(y.m2, 8 / 3)
    assert files.moments[(0, 1)]["y"].count == 1  # 0.0 counts, inf is missing
    assert files.moments[(-1, 0)]["z"].mean == 7.0
    _assert_same(files, spark_groups)


def _generated(rng, n):
    fold = rng.integers(-1, 5, n)
    label = rng.choice(3, n, p=[0.85, 0.1, 0.05])
    x = rng.normal(1e4, 3, n)  # |mean| >> std: the shift keeps the sums from cancelling
    x[rng.random(n) < 0.01] = np.nan
    y = rng.lognormal(0, 2, n) * rng.choice([-1, 1], n)
    return pa.table({
        "row_id": pa.array(rng.integers(0, 1 << 62, n)),
        "fold": pa.array(fold.astype(np.int32)),
        "label_index": pa.array(label.astype(np.int32)),
        "replica": pa.array(np.where((rng.random(n) < 0.2) & (fold >= 0), 1, 0).astype(np.int32)),
        "in_train": pa.array(rng.random(n) > 0.1),
        "x": pa.array(x, mask=rng.random(n) < 0.05),
        "y": pa.array(y),
        "z": pa.array(rng.integers(-50, 50, n).astype(np.int16), mask=rng.random(n) < 0.3),
    })


def test_generated_files_give_the_groups_of_sparks_aggregation(spark, tmp_path, monkeypatch, caplog):
    rng = np.random.default_rng(11)
    for i, n in enumerate((40_000, 25_000, 70_000)):  # several chunks, row groups and tasks
        pq.write_table(_generated(rng, n), tmp_path / f"part-{i}.parquet", row_group_size=20_000)
    files, spark_groups = _groups_by_both_paths(spark, tmp_path, SPEC, monkeypatch, caplog)
    assert sum(files.rows.values()) + sum(files.copies.values()) == 135_000
    _assert_same(files, spark_groups)


def test_a_delta_snapshot_is_read_not_the_files_it_removed(spark, tmp_path, monkeypatch, caplog):
    rng = np.random.default_rng(5)
    path = str(tmp_path / "delta")
    for table in (_generated(rng, 30_000), _generated(rng, 10_000)):  # the second overwrites the first
        spark.createDataFrame(table.to_pandas()).write.format("delta").mode("overwrite").save(path)
    df = spark.read.format("delta").load(path)
    with caplog.at_level(logging.INFO, logger="sparkprep.stages.normalise.fit"):
        groups = measure_groups(df, ["x", "y", "z"], SPEC)
    assert "statistics from the Parquet files" in caplog.text
    assert sum(groups.rows.values()) + sum(groups.copies.values()) == 10_000
    with monkeypatch.context() as m:
        _spark_path(m)
        _assert_same(groups, measure_groups(df, ["x", "y", "z"], SPEC))


def test_array_positions_and_data_not_read_from_files_take_sparks_aggregation(spark, tmp_path, caplog):
    rng = np.random.default_rng(2)
    table = _generated(rng, 1_000).append_column("a", pa.array([[1.0, 2.0]] * 1_000, pa.list_(pa.float64())))
    pq.write_table(table, tmp_path / "part-0.parquet")
    df = spark.read.parquet(str(tmp_path))
    arrays = FitSpec({"x": NumericTransform()}, arrays={"a": ArrayTransform()}, widths={"a": 2})
    with caplog.at_level(logging.INFO, logger="sparkprep.stages.normalise.fit"):
        groups = measure_groups(df, ["x"], arrays)
        assert "'a[0]' is an array position" in caplog.text
        caplog.clear()
        measure_groups(df.where("fold >= 0"), ["x"], FitSpec({"x": NumericTransform()}))
        assert "statistics by Spark's grouped aggregation: the DataFrame is not a bare file read" in caplog.text
    assert groups.moments[(0, 0)]["a[1]"].mean == 2.0

