from chispa import assert_df_equality
from pyspark.sql import functions as F

from sparkprep.dedup import add_row_id, drop_exact_duplicates


def test_identical_rows_collapse_and_different_rows_stay(spark):
    df = spark.createDataFrame([(1, "a", 0.5), (1, "a", 0.5), (1, "a", 0.5), (1, "a", 0.25), (2, "a", 0.5)],
                               "id long, t string, x double")
    got = drop_exact_duplicates(add_row_id(df)).drop("row_id")
    expected = spark.createDataFrame([(1, "a", 0.5), (1, "a", 0.25), (2, "a", 0.5)], "id long, t string, x double")
    assert_df_equality(got, expected, ignore_row_order=True)


def test_row_id_depends_on_content_only(spark):
    df = spark.createDataFrame([(i % 7, str(i % 3)) for i in range(50)], "a long, b string")
    one = add_row_id(df.coalesce(1)).select("a", "b", "row_id").distinct()
    many = add_row_id(df.repartition(5)).select("a", "b", "row_id").distinct()
    assert_df_equality(one, many, ignore_row_order=True)
    assert one.select(F.countDistinct("row_id")).first()[0] == 21  # 7 x 3 distinct contents


def test_row_id_ignores_internal_columns(spark):
    a = spark.createDataFrame([(1, "f1")], "x long, _sp_source_file string")
    b = spark.createDataFrame([(1, "f2")], "x long, _sp_source_file string")
    assert add_row_id(a).first()["row_id"] == add_row_id(b).first()["row_id"]
