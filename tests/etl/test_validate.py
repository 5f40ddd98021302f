"""validate: the reference cases (TFDV semantics) on hand-built stats, and inference on real profiles."""

import pytest

from sparkprep.quality.profile import ColumnStats, Profile, profile
from sparkprep.quality.schema_rules import dump_schema, infer_schema, load_schema
from sparkprep.quality.validate import validate


def _cat(name: str, counts: dict[str, int], nulls: int = 0, is_label: bool = False) -> ColumnStats:
    return ColumnStats(name=name, kind="categorical", type="string", count=sum(counts.values()), nulls=nulls,
                       distinct=len(counts), distinct_exact=True, top=[[k, n] for k, n in counts.items()],
                       is_label=is_label)


def _stats(*cols: ColumnStats) -> Profile:
    return Profile(rows=cols[0].count + cols[0].nulls, columns={c.name: c for c in cols})


def _schema(**columns) -> dict:
    return {"version": 1, "min_rows": 1, "columns": columns}


def test_value_outside_the_domain_is_an_error_with_examples_and_fraction():
    schema = _schema(c={"type": "string", "domain": {"values": ["A", "B", "C"], "severity": "error"}})
    [anomaly] = validate(_stats(_cat("c", {"A": 5, "B": 2, "D": 1})), schema).anomalies
    assert (anomaly.type, anomaly.column, anomaly.severity) == ("unexpected_values", "c", "error")
    assert anomaly.value == {"examples": ["D"], "fraction": 1 / 8}


def test_categorical_drift_over_the_linf_threshold_names_b():
    schema = _schema(c={"drift": {"linf": 0.01, "severity": "error"}})
    result = validate(_stats(_cat("c", {"a": 1, "b": 1})), schema, baseline=_stats(_cat("c", {"a": 3, "b": 1})))
    [anomaly] = result.anomalies
    assert anomaly.type == "drift_linf" and anomaly.value == pytest.approx(0.25) and "'b'" in anomaly.message
    assert result.distances["c"].moved_most == "b"


def test_distances_are_reported_even_without_an_anomaly():
    same = _stats(_cat("c", {"a": 3, "b": 1}))
    result = validate(same, _schema(c={}), baseline=same)
    assert result.anomalies == [] and result.distances["c"].linf == 0 and result.distances["c"].psi == 0


def test_label_may_be_absent_in_serving_but_not_in_training():
    schema = _schema(x={"environments": ["TRAINING", "SERVING"]}, label={"environments": ["TRAINING"]})
    batch = _stats(_cat("x", {"u": 1}))
    assert validate(batch, schema, "SERVING").anomalies == []
    [anomaly] = validate(batch, schema, "TRAINING").anomalies
    assert (anomaly.type, anomaly.column, anomaly.severity) == ("missing_column", "label", "error")


def test_inferred_schema_accepts_its_own_batch_and_flags_a_bad_one(spark):
    good = spark.createDataFrame([(1.0, "A", [1.0, 2.0], "y"), (2.0, "B", [3.0], "n"), (None, "A", [], "y")],
                                 "x double, c string, a array<double>, label string")
    schema = load_schema(dump_schema(infer_schema(profile(good, label="label"))), "inferred")
    assert schema["columns"]["label"]["environments"] == ["TRAINING"]
    assert validate(profile(good, label="label"), schema).anomalies == []
    bad = spark.createDataFrame([(float("nan"), "Z", [1.0] * 5, 1), (None, None, None, 0), (None, "A", [], 1)],
                                "x double, c string, a array<double>, extra int")
    found = {(a.type, a.column) for a in validate(profile(bad), schema).anomalies}
    assert found == {("nan_or_inf", "x"), ("nulls_above_allowed", "x"), ("nulls_above_allowed", "c"),
                     ("unexpected_values", "c"), ("array_length_out_of_range", "a"), ("nulls_above_allowed", "a"),
                     ("missing_column", "label"), ("new_column", "extra")}


def test_wrong_type_out_of_range_too_few_rows_and_distinct():
    col = ColumnStats(name="x", kind="numeric", type="float", count=3, nulls=0, min=-1.0, max=9.0, distinct=3)
    schema = {"version": 1, "min_rows": 10, "columns": {"x": {
        "type": "double", "range": {"min": 0.0, "max": 10.0, "severity": "warning"},
        "distinct": {"min": 5, "max": 50, "severity": "warning"}}}}
    found = {(a.type, a.severity, str(a.value)) for a in validate(_stats(col), schema).anomalies}
    assert found == {("too_few_rows", "error", "3"), ("wrong_type", "error", "float"),
                     ("out_of_range", "warning", "[-1.0, 9.0]"), ("distinct_too_low", "warning", "3")}
