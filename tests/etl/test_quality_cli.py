"""`sparkprep profile | infer-schema | validate` through the CLI's main(): files and exit codes."""

import json

import yaml

from sparkprep.cli import main

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
