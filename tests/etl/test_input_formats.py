"""prepare reads every supported input format; typed formats keep their types, Delta is pinned."""

import json

import pytest
from pyspark.sql import functions as F

from sparkprep.cli import main
from sparkprep.config import GenerateConfig
from sparkprep.generate import generate_rows

# Exact dedup only, no cleaning rules: the expected counts below are derived from the rows directly.
BASE = ["--set", "spark.master=local[2]", "--set", "spark.shuffle_partitions=4", "--set", "input.schema=null",
        "--set", "input.options={}", "--set", "clean.rules={}", "--set", "dedup.key=[]",
        "--set", "dedup.order_by=null", "--set", "dedup.conflicts=keep_all", "--set", "dedup.near=null"]


@pytest.fixture(scope="module")
def typed_rows(spark, tmp_path_factory):
    config = GenerateConfig(path=str(tmp_path_factory.mktemp("unused")), rows=1500, files=2)
    return generate_rows(spark, config).drop("row")


def _prepare(tmp_path, fmt, path):
    out = tmp_path / "out"
    code = main(["prepare", *BASE, "--set", f"input.format={fmt}", "--set", f"input.paths=[{path}]",
                 "--set", f"output.path={out}"])
    assert code == 0
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize("fmt", ["parquet", "orc"])
def test_typed_file_formats(spark, tmp_path, typed_rows, fmt):
    path = str(tmp_path / fmt)
    typed_rows.write.format(fmt).save(path)
    manifest = _prepare(tmp_path, fmt, path)
    rows = manifest["rows"]
    missing = typed_rows.where(F.col("label").isNull()).count()
    duplicates = typed_rows.count() - typed_rows.where(F.col("label").isNotNull()).distinct().count() - missing
    assert rows["input"] == 1500
    assert rows["rejected"] == missing and manifest["rejections"]["by_reason"] == {"missing_label": missing}
    assert rows["duplicates"] == duplicates > 0
    assert {"name": "emb", "type": "array<double>"} in manifest["schema"]


def test_delta_input_is_read_at_a_pinned_version(spark, tmp_path, typed_rows):
    path = str(tmp_path / "delta_in")
    typed_rows.limit(500).write.format("delta").save(path)
    typed_rows.write.format("delta").mode("overwrite").save(path)
    manifest = _prepare(tmp_path, "delta", path)
    assert manifest["inputs"][0]["delta_version"] == 1
    assert manifest["rows"]["input"] == 1500
