import textwrap

import pytest

from sparkprep.config import load_config
from sparkprep.errors import ConfigError


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return path


MINIMAL = """
input: {paths: [x], format: csv}
columns: {label: y}
output: {path: out}
"""


def test_demo_config_is_valid():
    config = load_config("conf/demo.yaml")
    config.require("generate", "input", "columns", "output")
    assert config.split.k == 5 and config.input.schema_["emb"] == "array<double>"


def test_unknown_key_is_named_with_the_file(tmp_path):
    path = _write(tmp_path, MINIMAL + "split: {k: 3, kk: 4}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "split.kk: unknown key" in str(err.value) and str(path) in str(err.value)


def test_wrong_type_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"split\.k: .*integer.*'five'"):
        load_config(_write(tmp_path, MINIMAL + "split: {k: five}\n"))


def test_missing_required_field_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"columns\.label: required field is missing"):
        load_config(_write(tmp_path, "input: {paths: [x], format: csv}\ncolumns: {numeric: [a]}\n"))


def test_set_overrides_are_typed_and_validated(tmp_path):
    path = _write(tmp_path, MINIMAL)
    config = load_config(path, ["split.k=3", "output.format=delta", "spark.conf.spark.x=1"])
    assert config.split.k == 3 and config.output.format == "delta"
    assert config.spark.conf == {"spark.x": "1"}
    with pytest.raises(ConfigError, match=r"output\.format"):
        load_config(path, ["output.format=csv"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(path, ["split.k"])


def test_a_command_names_the_section_it_misses(tmp_path):
    config = load_config(_write(tmp_path, "split: {k: 2}\n"))
    with pytest.raises(ConfigError, match="missing required section.*input, columns, output"):
        config.require("input", "columns", "output")


def test_config_hash_changes_with_content(tmp_path):
    path = _write(tmp_path, MINIMAL)
    assert load_config(path).sha256() == load_config(path).sha256()
    assert load_config(path).sha256() != load_config(path, ["split.seed=1"]).sha256()


def test_holdout_rule_values_are_read_as_text(tmp_path):
    config = load_config(_write(tmp_path, MINIMAL), ["split.holdout_fraction=0", "split.holdout_column=t",
                                                     "split.holdout_from=2024-10-01"])
    assert config.split.holdout_from == "2024-10-01"
    config = load_config(_write(tmp_path, MINIMAL), ["split.holdout_fraction=0", "split.holdout_column=y",
                                                     "split.holdout_values=[2023, b]"])
    assert config.split.holdout_values == ["2023", "b"]
    with pytest.raises(ConfigError, match="need holdout_column"):
        load_config(_write(tmp_path, MINIMAL), ["split.holdout_values=[a]"])
