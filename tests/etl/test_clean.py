from chispa import assert_df_equality

from sparkprep.clean import accepted, mark_rejections, quarantine_rows
from sparkprep.ingest import CORRUPT, SOURCE_FILE

SCHEMA = {"x": "double", "emb": "array<double>", "label": "string"}
RAW = f"x string, emb string, label string, {CORRUPT} string, {SOURCE_FILE} string"


def _raw(spark, rows):
    return spark.createDataFrame(rows, RAW)


def test_each_bad_row_gets_its_reason_and_good_rows_are_typed(spark):
    df = _raw(spark, [
        ("1.5", "1;2", "a", None, "f1"),         # good
        ("-0.0", "[3, 4]", "b", None, "f1"),      # good: -0.0 canonical, bracketed array
        ("", "", "a", None, "f1"),                # good: empty numbers are null, not errors
        ("n/a", "1;2", "a", None, "f2"),          # unparsable number
        ("1", "1;x", "a", None, "f2"),            # unparsable array element
        (None, None, None, "1,2,", "f2"),         # malformed line (corrupt record wins)
        ("2", "1;2", " ", None, "f3"),            # missing label
        ("2", "1;2", "zzz", None, "f3"),          # unknown label
    ])
    marked = mark_rejections(df, SCHEMA, "label", classes=["a", "b"])
    got = quarantine_rows(marked)
    expected = spark.createDataFrame([
        ("unparsable_value", "column x: 'n/a' is not a valid double", "f2",
         '{"x":"n/a","emb":"1;2","label":"a"}'),
        ("unparsable_value", "column emb: '1;x' is not a valid array<double>", "f2",
         '{"x":"1","emb":"1;x","label":"a"}'),
        ("malformed_record", "malformed line: wrong number of fields, broken quoting or invalid JSON", "f2", "1,2,"),
        ("missing_label", "label column label is empty", "f3", '{"x":"2","emb":"1;2","label":" "}'),
        ("unknown_label", "label zzz is not one of columns.classes ['a', 'b']", "f3",
         '{"x":"2","emb":"1;2","label":"zzz"}'),
    ], "reason string, message string, source_file string, raw string")
    assert_df_equality(got, expected, ignore_row_order=True)

    good = spark.createDataFrame([(1.5, [1.0, 2.0], "a"), (0.0, [3.0, 4.0], "b"), (None, None, "a")],
                                 "x double, emb array<double>, label string")
    assert_df_equality(accepted(marked), good, ignore_row_order=True, ignore_nullable=True)


def test_negative_zero_is_stored_as_positive_zero(spark):
    marked = mark_rejections(_raw(spark, [("-0.0", "1", "a", None, "f")]), SCHEMA, "label")
    value = accepted(marked).first()["x"]
    assert value == 0.0 and str(value) == "0.0"


def test_all_reasons_are_counted_once_per_row(spark):
    # A row that is both unparsable and unlabelled is counted under the first reason only.
    df = _raw(spark, [("bad", "1", None, None, "f")])
    reasons = [r["reason"] for r in quarantine_rows(mark_rejections(df, SCHEMA, "label")).collect()]
    assert reasons == ["unparsable_value"]
