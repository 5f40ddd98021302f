from collections import Counter

from chispa import assert_df_equality
from pyspark.sql import functions as F

from sparkprep.config import DefectRates, GenerateConfig
from sparkprep.generate import COLUMNS, generate_rows, write_generated


def _config(tmp_path, **kw):
    return GenerateConfig(path=str(tmp_path / "raw"), rows=kw.pop("rows", 3000), **kw)


def test_same_rows_for_any_number_of_files(spark, tmp_path):
    one = generate_rows(spark, _config(tmp_path, files=1)).drop("row")
    many = generate_rows(spark, _config(tmp_path, files=5)).drop("row")
    assert_df_equality(one, many, ignore_row_order=True)


def test_labels_follow_the_ratios_and_defects_are_present(spark, tmp_path):
    rows = generate_rows(spark, _config(tmp_path, rows=20000)).collect()
    labels = Counter(r["label"] for r in rows)
    assert abs(labels["class_0"] / 20000 - 0.9) < 0.02 and abs(labels["class_2"] / 20000 - 0.01) < 0.005
    assert labels[None] > 0  # missing labels
    contents = Counter(tuple(r[c] if c != "emb" else tuple(r[c]) for c in COLUMNS) for r in rows)
    assert 400 < sum(n - 1 for n in contents.values()) < 800  # ~3% exact duplicates
    assert any(r["num_0"] is None for r in rows)
    assert any(r["num_1"] is not None and abs(r["num_1"]) > 1e4 for r in rows)  # outliers


def test_no_defects_when_rates_are_zero(spark, tmp_path):
    zero = DefectRates(**{name: 0.0 for name in DefectRates.model_fields})
    df = generate_rows(spark, _config(tmp_path, defects=zero))
    assert df.select(*COLUMNS).distinct().count() == 3000
    assert df.where(F.col("label").isNull() | F.col("num_0").isNull()).count() == 0


def test_csv_has_cut_lines_and_unparsable_numbers(spark, tmp_path):
    config = _config(tmp_path, rows=5000, format="csv")
    write_generated(spark, config)
    lines = [r["value"] for r in spark.read.text(config.path).collect()]
    assert len(lines) == 5000
    fields = Counter(len(line.split(",")) for line in lines)
    assert fields[len(COLUMNS)] > 4900 and sum(n for f, n in fields.items() if f < len(COLUMNS)) > 5
    assert any(",n/a," in line or ",1.2.3," in line or ",#VALUE!," in line for line in lines)


def test_json_lines_parse_except_the_cut_ones(spark, tmp_path):
    import json

    config = _config(tmp_path, rows=3000, format="json")
    write_generated(spark, config)
    bad = 0
    for r in spark.read.text(config.path).collect():
        try:
            json.loads(r["value"])
        except ValueError:
            bad += 1
    assert 0 < bad < 30
