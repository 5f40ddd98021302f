"""`sparkprep profile | infer-schema | validate` through the CLI's main(): files and exit codes."""

import json
import logging

import yaml

from sparkprep.cli import main
from sparkprep.quality.profile import profile

LOCAL = ["--set", "spark.master=local[2]"]


def test_profile_infer_validate_exit_codes(spark, tmp_path, capsys):
    data = tmp_path / "batch"
    spark.createDataFrame([(1.0, "A", "y"), (2.0, "B", "n"), (3.0, "C", "y"), (None, "A", "y")],
                          "x double, c string, label string").write.parquet(str(data))
    stats, schema, report = tmp_path / "stats.json", tmp_path / "schema.yaml", tmp_path / "anomalies.json"
    assert main(["profile", *LOCAL, "--input", str(data), "--format", "parquet", "--out", str(stats)]) == 0
    assert json.loads(stats.read_text())["rows"] == 4
    assert main(["infer-schema", "--stats", str(stats), "--out", str(schema)]) == 0
    assert main(["validate", "--schema", str(schema), "--stats", str(stats), "--baseline", str(stats),
                 "--report", str(report)]) == 0
    assert json.loads(report.read_text())["distances"]["c"]["linf"] == 0

    rules = yaml.safe_load(schema.read_text())
    rules["columns"]["c"]["domain"]["values"] = ["A", "B"]  # a user narrows the domain by hand
    schema.write_text(yaml.safe_dump(rules))
    capsys.readouterr()
    assert main(["validate", "--schema", str(schema), "--stats", str(stats)]) == 1
    assert "unexpected_values" in capsys.readouterr().out
    # Input errors (a stats file that does not exist) and usage errors both exit 2.
    assert main(["validate", "--schema", str(schema), "--stats", str(tmp_path / "missing.json")]) == 2
    assert main(["validate", "--schema", str(stats), "--stats", str(stats)]) == 2


def test_validate_html_report_overlays_the_drifted_batch(spark, tmp_path):
    """--html: one self-contained page with the drift anomaly, the distances, and baseline vs
    current histograms of the numeric column on common bins."""
    def stats_of(name, rows):
        (tmp_path / f"{name}.json").write_text(json.dumps(profile(spark.createDataFrame(rows, "x double, c string")).to_dict()))
        return tmp_path / f"{name}.json"

    before = stats_of("before", [(float(i % 10), "A" if i % 4 else "B") for i in range(200)])
    after = stats_of("after", [(float(i % 10) + 30, "A" if i % 2 else "B") for i in range(200)])
    schema, page = tmp_path / "schema.yaml", tmp_path / "report.html"
    assert main(["infer-schema", "--stats", str(before), "--out", str(schema)]) == 0
    rules = yaml.safe_load(schema.read_text())
    rules["columns"]["c"]["drift"] = {"linf": 0.1, "severity": "error"}
    schema.write_text(yaml.safe_dump(rules))
    assert main(["validate", "--schema", str(schema), "--stats", str(after), "--baseline", str(before),
                 "--html", str(page)]) == 1
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "http" not in text.replace('"http://www.w3.org/2000/svg"', "")
    assert "x: baseline vs current" in text and text.count("<svg") >= 3
    assert "drift" in text and "linf 0.25" in text  # c: A 0.75 -> 0.5, so L-infinity 0.25


def test_profile_of_a_parquet_input_takes_the_parquet_path(spark, tmp_path, caplog):
    """`sparkprep profile` of plain Parquet reads the files with pyarrow, with the Spark path's
    stats; a configured string -> double coercion makes it a computed column: the Spark path."""
    data = tmp_path / "batch"
    spark.createDataFrame([(1.0, "A", "y", "2.5"), (None, "B", "n", None)],
                          "x double, c string, label string, z string").write.parquet(str(data))
    caplog.set_level(logging.INFO, logger="sparkprep.quality.profile")
    outs = {}
    for name, extra in (("plain", []), ("coerced", ["--set", "input.format=parquet", "--set", "input.schema.z=double"])):
        caplog.clear()
        outs[name] = tmp_path / f"{name}.json"
        assert main(["profile", *LOCAL, *extra, "--input", str(data), "--format", "parquet", "--out", str(outs[name])]) == 0
        assert ("profile: Parquet path" if name == "plain" else "profile: Spark path") in caplog.text
    plain, coerced = (json.loads(outs[n].read_text()) for n in ("plain", "coerced"))
    assert plain["columns"]["x"] == coerced["columns"]["x"] and plain["columns"]["label"] == coerced["columns"]["label"]
    assert (plain["columns"]["z"]["kind"], coerced["columns"]["z"]["kind"]) == ("categorical", "numeric")
