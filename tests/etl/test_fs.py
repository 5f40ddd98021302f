"""Where one URI lies relative to another: the check that keeps a run from deleting its input."""

import pytest

from sparkprep.io.fs import HadoopFS, relative_to


@pytest.mark.parametrize("inner, outer, expected", [
    ("hdfs://nn:8020/data/out/raw", "hdfs://nn:8020/data/out", "raw"),
    ("hdfs://nn:8020/data/out", "hdfs://nn:8020/data/out/", ""),        # the same place
    ("hdfs://nn:8020/data/out2", "hdfs://nn:8020/data/out", None),      # a string prefix is not a parent
    ("hdfs://other:8020/data/out/raw", "hdfs://nn:8020/data/out", None),  # another cluster
    ("s3a://bucket/data/out/raw", "hdfs://nn:8020/data/out", None),     # another file system
    ("s3a://bucket/out/a/../raw", "s3a://bucket/out", "raw"),
    ("s3a://Bucket/out/raw", "S3A://bucket/out", "raw"),               # scheme and host ignore case
])
def test_inside_means_same_scheme_authority_and_a_path_prefix_on_a_slash(inner, outer, expected):
    assert relative_to(inner, outer) == expected


def test_local_paths_are_compared_with_symlinks_resolved(tmp_path):
    (tmp_path / "out" / "raw").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "out" / "raw")
    (tmp_path / "out-link").symlink_to(tmp_path / "out")
    assert relative_to(f"file://{tmp_path}/link/part-0.csv", f"file:{tmp_path}/out") == "raw/part-0.csv"
    assert relative_to(f"file://{tmp_path}/out/raw", f"file://{tmp_path}/out-link") == "raw"
    assert relative_to(f"file://{tmp_path}/link", f"file://{tmp_path}/raw") is None


def test_a_missing_authority_is_the_default_file_system_s(spark, tmp_path):
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    before = conf.get("fs.defaultFS")
    conf.set("fs.defaultFS", "hdfs://nn:8020")
    try:
        fs = HadoopFS(spark, f"file://{tmp_path}")
        assert fs.qualified("hdfs:///data/out/raw") == "hdfs://nn:8020/data/out/raw"
        assert fs.qualified("hdfs://other:9000/data") == "hdfs://other:9000/data"
        assert fs.qualified(f"file://{tmp_path}/x") == f"file://{tmp_path}/x"
    finally:
        conf.set("fs.defaultFS", before)
