import math
import unicodedata

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from sparkprep.contract import CORRUPT, SOURCE_FILE
from sparkprep.stages.clean import accepted, mark_rejections, quarantine_rows, rules_from_schema
from sparkprep.config import ColumnRule
from sparkprep.errors import ConfigError

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
        ("1", "[[1]]", "a", None, "f2"),          # one bracket comes off each end, not two
        ("3", " [ 5 ;6\t]", "a", None, "f1"),     # good: spaces around elements and brackets
        (None, None, None, "1,2,", "f2"),         # malformed line (corrupt record wins)
        ("2", "1;2", " ", None, "f3"),            # missing label
        ("2", "1;2", "zzz", None, "f3"),          # unknown label
    ])
    marked = mark_rejections(df, SCHEMA, "label", classes=["a", "b"])
    got = quarantine_rows(marked)  # no record numbers without ingest's positions: null
    expected = spark.createDataFrame([
        ("unparsable_value", "x", "column x: 'n/a' is not a valid double", "f2",
         '{"x":"n/a","emb":"1;2","label":"a"}'),
        ("unparsable_value", "emb", "column emb: '1;x' is not a valid array<double>", "f2",
         '{"x":"1","emb":"1;x","label":"a"}'),
        ("unparsable_value", "emb", "column emb: '[[1]]' is not a valid array<double>", "f2",
         '{"x":"1","emb":"[[1]]","label":"a"}'),
        ("malformed_record", None, "malformed line: wrong number of fields, broken quoting or invalid JSON", "f2", "1,2,"),
        ("missing_label", "label", "label column label is empty", "f3", '{"x":"2","emb":"1;2","label":" "}'),
        ("unknown_label", "label", "label zzz is not one of columns.classes ['a', 'b']", "f3",
         '{"x":"2","emb":"1;2","label":"zzz"}'),
    ], "reason string, column string, message string, source_file string, raw string").withColumn(
        "record", F.lit(None).cast("long"))
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)

    good = spark.createDataFrame([(1.5, [1.0, 2.0], "a"), (0.0, [3.0, 4.0], "b"), (None, None, "a"),
                                  (3.0, [5.0, 6.0], "a")],
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


RULES_SCHEMA = {"x": "double", "cat": "string", "label": "string"}


def test_rules_reject_with_their_reason_and_column(spark):
    rules = {"x": ColumnRule(min=0, max=10, nulls="reject"),
             "cat": ColumnRule(allowed=["a", "b"], normalise=["trim", "lower"])}
    df = spark.createDataFrame([
        ("5", " A ", "l", None, "f"),     # good: ' A ' normalises to 'a'
        ("10", "b", "l", None, "f"),      # good: bounds are inclusive
        ("", "a", "l", None, "f"),        # x null and nulls=reject
        ("-1", "a", "l", None, "f"),      # below min
        ("11", "a", "l", None, "f"),      # above max
        ("1", "c", "l", None, "f"),       # not allowed
        ("99", "c", "l", None, "f"),      # two failures: the first rule in order wins (x's range)
        ("zz", "c", "l", None, "f"),      # unparsable comes before every rule
    ], f"x string, cat string, label string, {CORRUPT} string, {SOURCE_FILE} string")
    marked = mark_rejections(df, RULES_SCHEMA, "label", rules=rules)
    got = quarantine_rows(marked).select("reason", "column", "message")
    expected = spark.createDataFrame([
        ("missing_value", "x", "column x is null or empty"),
        ("out_of_range", "x", "column x: -1.0 is outside [0.0, 10.0]"),
        ("out_of_range", "x", "column x: 11.0 is outside [0.0, 10.0]"),
        ("unexpected_category", "cat", "column cat: 'c' is not one of ['a', 'b']"),
        ("out_of_range", "x", "column x: 99.0 is outside [0.0, 10.0]"),
        ("unparsable_value", "x", "column x: 'zz' is not a valid double"),
    ], "reason string, column string, message string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    good = spark.createDataFrame([(5.0, "a", "l"), (10.0, "b", "l")], "x double, cat string, label string")
    assert_df_equality(accepted(marked), good, ignore_row_order=True, ignore_nullable=True)


def test_unicode_normalisation_makes_equal_text_equal(spark):
    # 'é' precomposed (U+00E9) and decomposed (e + U+0301); 'Straße' case-folds to 'strasse'.
    df = spark.createDataFrame([("caf\u00e9", "Stra\u00dfe"), ("cafe\u0301", "STRASSE")], "t string, u string")
    rules = {"t": ColumnRule(normalise=["nfc"]), "u": ColumnRule(normalise=["casefold"])}
    got = accepted(mark_rejections(df.withColumn("label", F.lit("l")), None, "label", rules=rules))
    assert [tuple(r) for r in got.select("t", "u").distinct().collect()] == [("caf\u00e9", "strasse")]


def test_unicode_forms_equal_python_s_and_keep_nulls(spark):
    # The JVM (ICU) forms against Python's own: ASCII, a null, compatibility characters NFC
    # keeps (the fi ligature, ²), Hangul jamo that compose, Greek sigma, dotted I, ß, ǅ.
    texts = ["Plain ASCII", None, "\ufb01ne x\u00b2", "\u1100\u1161\u11a8", "\u039f\u0394\u039f\u03a3",
             "\u0130stanbul", "Stra\u00dfe", "\u01c5ungla", "A\u030a ring"]
    df = spark.createDataFrame([(t, t, "l") for t in texts], "t string, u string, label string")
    rules = {"t": ColumnRule(normalise=["nfc"]), "u": ColumnRule(normalise=["casefold"])}
    got = accepted(mark_rejections(df, None, "label", rules=rules)).select("t", "u").collect()
    assert sorted(map(tuple, got), key=str) == sorted(
        [(t and unicodedata.normalize("NFC", t), t and t.casefold()) for t in texts], key=str)


def test_rules_on_missing_columns_are_a_config_error(spark):
    df = spark.createDataFrame([("1", "l")], "x string, label string")
    with pytest.raises(ConfigError, match=r"\['nope'\]"):
        mark_rejections(df, None, "label", rules={"nope": ColumnRule(min=0)})


def test_blocking_schema_rules_become_cleaning_rules_and_warnings_do_not(spark):
    schema = {"version": 1, "columns": {
        "x": {"type": "double", "range": {"min": 0, "max": 10, "severity": "error"},
              "nulls": {"max_fraction": 0.0, "severity": "error"}},
        "cat": {"type": "string", "domain": {"values": ["a", "b"], "severity": "error"},
                "nulls": {"max_fraction": 0.2, "severity": "error"}},
        "y": {"type": "double", "range": {"min": 0, "max": 1, "severity": "warning"}}}}
    rules = rules_from_schema(schema)
    assert rules == {"x": ColumnRule(min=0, max=10, nulls="reject"), "cat": ColumnRule(allowed=["a", "b"])}
    df = spark.createDataFrame([("5", "a", "l"), ("", "a", "l"), ("3", "z", "l")], "x string, cat string, label string")
    reasons = sorted(r["_sp_reason"] or "" for r in mark_rejections(df, {"x": "double"}, "label", rules=rules).collect())
    assert reasons == ["", "missing_value", "unexpected_category"]


def _overflow_message(column, text, kind="double", largest="1.797693e+308"):
    return (f"column {column}: '{text}' is beyond the range of {kind} (±{largest}) and would become infinity; "
            f"correct the value, or read the column as string")


def _kept(marked, column):
    """The accepted values of `column`, as Python floats (or lists), sorted by their text."""
    return sorted((r[0] for r in accepted(marked).select(column).collect()), key=str)


def test_a_number_too_large_for_its_type_is_out_of_range_and_infinity_literals_are_kept(spark):
    df = _raw(spark, [
        ("1e309", "1", "a", None, "f"),           # overflows double
        ("-1e309", "1", "a", None, "f"),          # overflows double, negative
        ("1.8e308", "1", "a", None, "f"),         # just past the largest double
        ("1.7e308", "1", "a", None, "f"),         # good: large but finite
        ("inf", "1", "a", None, "f"),             # good: an infinity literal, kept by default
        (" -Infinity ", "1", "a", None, "f"),     # good: Java's spelling, any case, spaces around
        ("NaN", "1", "a", None, "f"),             # good: a NaN literal, kept by default
        ("1", "1;1e400", "a", None, "f"),         # an array element overflows
        ("2", "[INF; 2]", "a", None, "f"),        # good: an infinity literal in an array
    ])
    marked = mark_rejections(df, SCHEMA, "label")
    expected = spark.createDataFrame([
        ("out_of_range", "x", _overflow_message("x", "1e309")),
        ("out_of_range", "x", _overflow_message("x", "-1e309")),
        ("out_of_range", "x", _overflow_message("x", "1.8e308")),
        ("out_of_range", "emb", _overflow_message("emb", "1;1e400")),
    ], "reason string, column string, message string")
    assert_df_equality(quarantine_rows(marked).select("reason", "column", "message"), expected,
                       ignore_row_order=True, ignore_nullable=True)
    x = _kept(marked, "x")
    assert x[:4] == [-math.inf, 1.7e308, 2.0, math.inf] and math.isnan(x[4]) and len(x) == 5
    assert _kept(marked, "emb")[-1] == [math.inf, 2.0]


def test_a_float_column_overflows_past_float_s_range(spark):
    df = spark.createDataFrame([("1e39", "a", "f"), ("3.4e38", "a", "f"), ("-Inf", "a", "f")],
                               f"f string, label string, {SOURCE_FILE} string")
    marked = mark_rejections(df, {"f": "float", "label": "string"}, "label")
    assert [tuple(r) for r in quarantine_rows(marked).select("reason", "column", "message").collect()] == [
        ("out_of_range", "f", _overflow_message("f", "1e39", "float", "3.402823e+38"))]
    assert _kept(marked, "f") == [-math.inf, pytest.approx(3.4e38, rel=1e-7)]


def _reject_message(column, text):
    return (f"column {column}: '{text}' is not a finite number, and non_finite is reject; to keep NaN and "
            f"infinities, set clean.non_finite or clean.rules.{column}.non_finite to keep")


def test_non_finite_reject_quarantines_nan_and_infinity_unless_a_column_rule_keeps_them(spark):
    df = _raw(spark, [
        ("inf", "1", "a", None, "f"),
        ("nan", "1", "a", None, "f"),
        ("1", "[1; -Infinity]", "a", None, "f"),
        ("1", "1;NaN", "a", None, "f"),
        ("1", "1;2", "a", None, "f"),              # good
    ])
    marked = mark_rejections(df, SCHEMA, "label", non_finite="reject")
    expected = spark.createDataFrame([
        ("out_of_range", "x", _reject_message("x", "inf")),
        ("out_of_range", "x", _reject_message("x", "nan")),
        ("out_of_range", "emb", _reject_message("emb", "[1; -Infinity]")),
        ("out_of_range", "emb", _reject_message("emb", "1;NaN")),
    ], "reason string, column string, message string")
    assert_df_equality(quarantine_rows(marked).select("reason", "column", "message"), expected,
                       ignore_row_order=True, ignore_nullable=True)
    kept = mark_rejections(df, SCHEMA, "label", rules={"x": ColumnRule(non_finite="keep")}, non_finite="reject")
    assert sorted(r["message"] for r in quarantine_rows(kept).collect()) == sorted(
        [_reject_message("emb", "[1; -Infinity]"), _reject_message("emb", "1;NaN")])


def test_non_finite_reject_applies_to_typed_input_too(spark):
    df = spark.createDataFrame([(math.nan, "a", "f"), (math.inf, "a", "f"), (1.0, "a", "f")],
                               f"x double, label string, {SOURCE_FILE} string")
    marked = mark_rejections(df, None, "label", non_finite="reject")
    assert sorted(r["message"] for r in quarantine_rows(marked).collect()) == [
        _reject_message("x", "Infinity"), _reject_message("x", "NaN")]
    assert _kept(marked, "x") == [1.0]
