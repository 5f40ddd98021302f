"""Bad input through the CLI entry point (in-process, sharing the test session): clear error,
non-zero exit, nothing that looks like a complete dataset."""

import csv
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sparkprep.cli import main

BASE = ["--set", "spark.master=local[2]", "--set", "spark.shuffle_partitions=4"]


def _prepare(spark, tmp_path, *sets: str) -> int:
    args = ["prepare", *BASE, "--set", f"output.path={tmp_path / 'out'}"]
    for s in sets:
        args += ["--set", s]
    return main(args)


def _nothing_complete(tmp_path: Path) -> None:
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name or ".scratch-" in p.name]


@pytest.fixture(scope="module")
def small_csv(spark, tmp_path_factory):
    path = tmp_path_factory.mktemp("raw") / "csv"
    assert main(["generate", *BASE, "--set", "generate.rows=1000", "--set", f"generate.path={path}"]) == 0
    return path


def test_missing_input_path_is_named(spark, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert _prepare(spark, tmp_path, f"input.paths=[{missing}]") == 3
    assert f"input path does not exist: file:{missing}" in capsys.readouterr().err
    _nothing_complete(tmp_path)


def test_empty_input_is_an_error(spark, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "part-0.csv").write_text("")
    assert _prepare(spark, tmp_path, f"input.paths=[{empty}]") == 3
    assert "no rows in input" in capsys.readouterr().err
    _nothing_complete(tmp_path)


def test_a_csv_file_read_as_parquet_is_named(spark, tmp_path, small_csv, capsys):
    assert _prepare(spark, tmp_path, f"input.paths=[{small_csv}]", "input.format=parquet") == 3
    err = capsys.readouterr().err
    assert "cannot read" in err and str(small_csv) in err
    _nothing_complete(tmp_path)


def test_missing_label_column_is_named(spark, tmp_path, small_csv, capsys):
    assert _prepare(spark, tmp_path, f"input.paths=[{small_csv}]", "columns.label=target") == 3
    err = capsys.readouterr().err
    assert "columns.label: column(s) ['target'] not found" in err and "the input has: id, num_0" in err
    _nothing_complete(tmp_path)


def test_reserved_input_column_is_named_with_the_fix(spark, tmp_path, small_csv, capsys):
    assert _prepare(spark, tmp_path, f"input.paths=[{small_csv}]", "input.schema.fold=string") == 3
    err = capsys.readouterr().err
    assert "['fold']" in err and "columns.rename" in err
    _nothing_complete(tmp_path)


def test_config_error_names_key_and_file(spark, tmp_path, capsys):
    assert main(["prepare", "--set", "split.k=one"]) == 2
    err = capsys.readouterr().err
    assert "conf/demo.yaml" in err and "split.k" in err


def test_failed_rerun_leaves_the_previous_dataset_intact(spark, tmp_path, small_csv):
    assert _prepare(spark, tmp_path, f"input.paths=[{small_csv}]") == 0
    manifest = (tmp_path / "out" / "manifest.json").read_text()
    assert _prepare(spark, tmp_path, f"input.paths=[{small_csv}]", "columns.numeric=[nope]") == 3
    assert (tmp_path / "out" / "manifest.json").read_text() == manifest
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name or ".old-" in p.name or ".scratch-" in p.name]


def test_refuses_to_replace_a_directory_that_is_not_an_output(spark, tmp_path, small_csv, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    assert _prepare(spark, tmp_path, f"input.paths=[{small_csv}]") == 3
    assert "not a sparkprep output" in capsys.readouterr().err
    assert (tmp_path / "out" / "thesis.tex").read_text() == "precious"


def test_json_input_quarantines_malformed_lines(spark, tmp_path):
    raw = tmp_path / "json"
    assert main(["generate", *BASE, "--set", "generate.rows=2000", "--set", "generate.format=json",
                 "--set", f"generate.path={raw}"]) == 0
    assert _prepare(spark, tmp_path, f"input.paths=[{raw}]", "input.format=json", "input.options={}") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    reasons = manifest["rejections"]["by_reason"]
    assert reasons["malformed_record"] > 0 and reasons["unparsable_value"] > 0
    rows = manifest["rows"]
    assert rows["input"] == 2000 == rows["rejected"] + rows["duplicates"] + rows["output"]


def test_time_cut_holdout(spark, tmp_path, small_csv):
    # The generator's event_time spans 2023-11..2024-11; rows from 2024-09-01 on are the holdout.
    assert _prepare(spark, tmp_path, f"input.paths=[{small_csv}]", "split.holdout_fraction=0",
                    "split.holdout_column=event_time", "split.holdout_from=2024-09-01") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert "holdout = rows selected by event_time" in manifest["verified"]
    data = spark.read.parquet(str(tmp_path / "out" / "data"))
    late = data.where("event_time >= timestamp'2024-09-01 00:00:00'")
    assert late.count() == late.where("fold = -1").count() > 0
    # The demo keeps near-duplicate clusters whole: an earlier row of a held-out cluster is held out too.
    extra = data.where("fold = -1 and event_time < timestamp'2024-09-01 00:00:00'")
    assert extra.join(late.select("dup_cluster"), "dup_cluster", "left_anti").count() == 0
    assert late.count() + extra.count() == manifest["rows"]["by_fold"]["-1"]
    rows = manifest["rows"]
    assert rows["input"] == rows["rejected"] + rows["duplicates"] + rows["output"]


def test_two_holdout_rules_are_a_config_error(spark, tmp_path, small_csv, capsys):
    assert _prepare(spark, tmp_path, f"input.paths=[{small_csv}]", "split.holdout_column=grp",
                    "split.holdout_values=[g1]") == 2
    assert "choose one holdout rule" in capsys.readouterr().err


@pytest.fixture
def csv_with_a_corrupt_file(small_csv, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(small_csv, raw)
    (raw / "part-corrupt.csv.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not a gzip stream at all" * 20)
    return raw


def test_an_unreadable_file_fails_the_run_naming_it(spark, tmp_path, csv_with_a_corrupt_file, capsys):
    assert _prepare(spark, tmp_path, f"input.paths=[{csv_with_a_corrupt_file}]") == 3
    assert "part-corrupt.csv.gz" in capsys.readouterr().err
    _nothing_complete(tmp_path)


def test_an_unreadable_file_is_quarantined_when_configured(spark, tmp_path, csv_with_a_corrupt_file):
    assert _prepare(spark, tmp_path, f"input.paths=[{csv_with_a_corrupt_file}]",
                    "input.on_unreadable_file=quarantine") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    files = manifest["quarantine"]["unreadable_files"]
    assert len(files) == 1 and files[0].endswith("part-corrupt.csv.gz")
    rows = manifest["rows"]
    # 400 lines, read as RFC 4180 records: a line cut inside a quoted text runs on into the next.
    records = sum(len(list(csv.reader(f.open(newline="")))) for f in csv_with_a_corrupt_file.glob("part-*.txt"))
    assert rows["input"] == records == rows["rejected"] + rows["duplicates"] + rows["output"]
    quarantine = pq.read_table(tmp_path / "out" / "quarantine").to_pylist()
    entry = [q for q in quarantine if q["reason"] == "unreadable_file"]
    assert len(entry) == 1 and entry[0]["source_file"] == files[0] and entry[0]["raw"] is None
    assert manifest["quarantine"]["rows"] == rows["rejected"] + 1
