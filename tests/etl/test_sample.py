"""The report's samples (quality/sample.py): taken while rows are written, the rows with the smallest
row_id whatever the partitioning, only rows offered, bounded."""

import pytest
from pyspark.sql import functions as F

from sparkprep.quality import sample as sampling
from sparkprep.quality.sample import Roles, sample_rows, sampling_rate

ROLES = Roles(numeric=("x",), categorical=("c",), text=("t",), arrays=("a",))


@pytest.fixture(scope="module")
def rows(spark):
    return spark.range(500).select(
        F.xxhash64("id").alias("row_id"), (F.col("id") * 0.5).alias("x"), F.repeat(F.lit("c"), 150).alias("c"),
        F.when(F.col("id") % 7 != 0, F.repeat(F.lit("w"), (F.col("id") % 30).cast("int"))).alias("t"),
        F.array_repeat(F.lit(1.0), (F.col("id") % 4).cast("int")).alias("a"), (F.col("id") % 3 == 0).alias("keep"))


def _written(df, tmp_path, name, **kwargs):
    taken = sample_rows(df, ROLES, **kwargs)
    taken.rows.write.parquet(str(tmp_path / name))
    return taken.taken()


def test_the_sample_is_the_rows_with_the_smallest_row_id_whatever_the_partitioning(spark, rows, tmp_path, monkeypatch):
    monkeypatch.setattr(sampling, "SAMPLE_ROWS", 50)
    everything = sorted(rows.collect(), key=lambda r: r["row_id"])[:50]
    want = {"x": [r["x"] for r in everything], "c": ["c" * sampling.STRING_CHARS] * 50,
            "t": [None if r["t"] is None else len(r["t"]) for r in everything], "a": [len(r["a"]) for r in everything],
            "id": [r["row_id"] for r in everything]}
    for parts in (1, 4):
        got = _written(rows.repartition(parts), tmp_path, f"p{parts}", rate=1.0, extra={"id": F.col("row_id")})
        assert got.rows == 50 and got.columns == want
    assert spark.read.parquet(str(tmp_path / "p4")).count() == 500  # the rows themselves written whole


def test_only_rows_offered_are_sampled(rows, tmp_path, monkeypatch):
    monkeypatch.setattr(sampling, "SAMPLE_ROWS", 1000)
    got = _written(rows, tmp_path, "half", rate=0.5, where=F.col("keep"), extra={"id": F.col("row_id"), "keep": F.col("keep")})
    offered = [r["row_id"] for r in rows.collect() if r["keep"] and r["row_id"] < 0]  # a rate of 0.5: below 0
    assert sorted(got.columns["id"]) == sorted(offered) and all(got.columns["keep"])


def test_the_rate_offers_about_twice_the_sample_or_every_row():
    assert sampling_rate(rows=10 * sampling.SAMPLE_ROWS) == pytest.approx(0.2)
    assert sampling_rate(rows=100) == 1.0 and sampling_rate() == 1.0 and sampling_rate(input_bytes=(1 << 63) - 1) == 1.0
    assert sampling_rate(input_bytes=20 * 10**9) == pytest.approx(sampling.SAMPLE_ROWS * sampling.MAX_ROW_BYTES / 2e10)
