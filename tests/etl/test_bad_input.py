"""Bad input through the CLI entry point (in-process, sharing the test session): clear error,
non-zero exit, nothing that looks like a complete dataset."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pyspark.sql import SparkSession

from conftest import csv_records
from sparkprep.cli import main
from sparkprep.config import InputConfig
from sparkprep.io.read import read_input

BASE = ["--set", "spark.master=local[2]", "--set", "spark.shuffle_partitions=4"]
#: For the demo-config runs about reading: near-duplicate detection is a third of a small run's
#: Spark jobs and none of what they test (test_neardup covers it; test_time_cut_holdout keeps it on).
NO_NEAR = "dedup.near=null"


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


def test_failed_rerun_leaves_the_previous_dataset_intact(spark, tmp_path, small_csv, previous_output):
    shutil.copytree(previous_output, tmp_path / "out")  # what a finished run left (the table's fixture)
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


def test_json_input_quarantines_bad_lines_keeping_each_line_as_read(spark, tmp_path):
    raw = tmp_path / "json"
    assert main(["generate", *BASE, "--set", "generate.rows=2000", "--set", "generate.format=json",
                 "--set", f"generate.path={raw}"]) == 0
    # Beside the generator's defects: a line with bytes that are not UTF-8, a value that does not
    # parse written with unusual spacing (raw must keep the line, not re-render its fields), and a
    # blank line (skipped, as Spark's JSON reader skips it).
    good = json.loads(next(raw.glob("part-*")).read_text().splitlines()[0])
    not_utf8 = json.dumps({**good, "id": 900001}).encode().replace(b'"text": "', b'"text": "\xff\xfe ', 1)
    spaced = json.dumps({**good, "id": 900002, "num_0": "many"}, separators=(" ,", " :  "))
    (raw / "part-extra.json").write_bytes(not_utf8 + b"\n\n" + spaced.encode() + b"\n")
    assert _prepare(spark, tmp_path, f"input.paths=[{raw}]", "input.format=json", "input.options={}", NO_NEAR) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    reasons = manifest["rejections"]["by_reason"]
    assert reasons["malformed_record"] > 0 and reasons["unparsable_value"] > 0 and reasons["invalid_encoding"] == 1
    rows = manifest["rows"]
    assert rows["input"] == 2002 == rows["rejected"] + rows["duplicates"] + rows["output"]
    quarantine = pq.read_table(tmp_path / "out" / "quarantine").to_pylist()
    by_raw = {q["raw"]: q for q in quarantine}
    assert by_raw["0x" + not_utf8.hex().upper()]["reason"] == "invalid_encoding"
    assert by_raw[spaced]["reason"] == "unparsable_value" and by_raw[spaced]["column"] == "num_0"
    # Every line that cleaning rejected keeps its line, byte for byte. (Rows that dedup quarantines
    # later, conflicting_label, keep their fields as JSON: the line is not carried past cleaning.)
    lines = {line for f in raw.glob("part-*") for line in f.read_bytes().decode("utf-8", "replace").splitlines()}
    cleaned = [q for q in quarantine if q["reason"] not in ("invalid_encoding", "conflicting_label")]
    assert len(cleaned) > 10 and all(q["raw"] in lines for q in cleaned), [q for q in cleaned if q["raw"] not in lines]


def test_a_multi_line_json_document_is_read_whole_whatever_the_option_s_case(spark, tmp_path):
    # Spark's option names ignore case; read as lines, this file's records would all be malformed.
    raw = tmp_path / "json"
    assert main(["generate", *BASE, "--set", "generate.rows=2000", "--set", "generate.format=json",
                 "--set", f"generate.path={raw}"]) == 0
    records = []
    for part in raw.glob("part-*"):
        for line in part.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # the generator's malformed lines
                pass
        part.unlink()
    (raw / "all.json").write_text(json.dumps(records, indent=2))
    assert _prepare(spark, tmp_path, f"input.paths=[{raw}]", "input.format=json", "input.options={multiline: 'true'}",
                    NO_NEAR) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rows"]["input"] == len(records)
    assert "malformed_record" not in manifest["rejections"]["by_reason"]


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
                    "input.on_unreadable_file=quarantine", NO_NEAR) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    files = manifest["quarantine"]["unreadable_files"]
    assert len(files) == 1 and files[0].endswith("part-corrupt.csv.gz")
    # Listed with its size, in the manifest and the report: its rows are in no count.
    size = (csv_with_a_corrupt_file / "part-corrupt.csv.gz").stat().st_size
    assert manifest["quarantine"]["unreadable_file_bytes"] == {files[0]: size}
    assert f"{size:,} bytes" in (tmp_path / "out" / "report.html").read_text()
    rows = manifest["rows"]
    assert rows["input"] == csv_records(csv_with_a_corrupt_file) == rows["rejected"] + rows["duplicates"] + rows["output"]
    quarantine = pq.read_table(tmp_path / "out" / "quarantine").to_pylist()
    entry = [q for q in quarantine if q["reason"] == "unreadable_file"]
    assert len(entry) == 1 and entry[0]["source_file"] == files[0] and entry[0]["raw"] is None
    assert manifest["quarantine"]["rows"] == rows["rejected"] + 1


# The bad-input table (issue 28 item 8): the documented inventory of bad input. Every row builds its
# input by hand beside a copy of a previous, good output, runs `prepare` (or another command) and
# states the exit code, what the command says, and for a run that publishes: rows read, rows
# rejected per (reason, column), the quarantine's raw records and conditions on the data, all
# counted from the input as written. A failing run must leave the previous output and the input
# byte for byte as they were, and nothing beside the output (but the quarantine a run with no row
# left keeps for the user). Rows run on a small config (k = 2, no holdout, no dedup rules): a few
# hand-written rows cost a run's fixed seconds only. Where a class has a test of its own elsewhere,
# that test goes deeper; the row keeps the class in the inventory.

HEADER = "id,score,text,label"
SCHEMA = {"id": "bigint", "score": "double", "text": "string", "label": "string"}
#: Eight good rows in the small layout: 4 of class a, 4 of b, two of each per fold with k = 2.
GOOD = [f"{i},{i * 0.5},review {i},{'ab'[i % 2]}" for i in range(8)]
#: The rows of GOOD in the output meet this, value for value.
AS_WRITTEN = "score = id * 0.5 and text = concat('review ', id) and label = if(id % 2 = 0, 'a', 'b')"
SMALL = {
    "spark": {"master": "local[2]", "shuffle_partitions": 4},
    "input": {"format": "csv", "options": {"header": "true"}, "schema": SCHEMA},
    "columns": {"label": "label", "numeric": ["score"], "text": ["text"]},
    "dedup": {"exact": False},
    "split": {"k": 2, "holdout_fraction": 0, "seed": 3},
    "output": {"format": "parquet"},
}


@dataclass(frozen=True)
class Case:
    """One prepared case: the `--set`s of the run, its output.path, paths that must survive, the
    config's sections that differ from SMALL (each replaces that section's keys), and the command
    when it is not prepare (its arguments after `sparkprep`)."""

    sets: list[str]
    out: Path
    kept: list[Path] = field(default_factory=list)
    config: dict[str, dict] = field(default_factory=dict)
    command: list[str] | None = None


@dataclass(frozen=True)
class BadInput:
    name: str
    #: (case directory, the good input's directory, the previous output copied to <case>/out) -> Case
    make: Callable[[Path, Path, Path], Case]
    exit: int
    #: Fragments of what the command wrote, stderr then stdout ({case}: the case directory).
    says: tuple[str, ...] = ()
    #: Fragments it must not write.
    never_says: tuple[str, ...] = ()
    #: Run in a process of its own: the JVM's console (its stderr) is then seen too.
    own_process: bool = False
    #: A run with no row left: the rows of the quarantine it keeps at <out>.failed-<run_id>/.
    kept_quarantine: int | None = None
    #: exit 0: the manifest's rows.input.
    rows: int | None = None
    #: exit 0: (reason, column) -> rows, the whole of the manifest's rejections.by_column.
    rejected: dict[tuple[str, str | None], int] = field(default_factory=dict)
    #: exit 0: the quarantine's raw records, all of them (None: not checked).
    raws: tuple[str, ...] | None = None
    #: exit 0: fragments of quarantine messages, each found in some message.
    messages: tuple[str, ...] = ()
    #: exit 0: a SQL condition -> how many originals of the output data meet it.
    data: dict[str, int] = field(default_factory=dict)
    #: More checks, given the session, the case directory and the Case.
    after: Callable[[SparkSession, Path, Case], None] | None = None
    #: A known bug: the row fails until it is fixed (pytest xfail, strict).
    xfail: str | None = None


def _write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _lines(*lines: str, header: str | None = HEADER, end: str = "\n") -> str:
    return "".join(f"{line}{end}" for line in ([header] if header is not None else []) + list(lines))


def _reading(case: Path, *files: tuple[str, bytes | str], **sections: dict) -> Case:
    """A Case that reads <case>/raw, holding `files` (name, content), with `sections` of config."""
    for name, content in files:
        _write(case / "raw" / name, content)
    config = {**sections, "input": {"paths": [str(case / "raw")], **sections.get("input", {})}}
    return Case([], case / "out", [case / "raw"], config)


def _csv(content: bytes | str, name: str = "data.csv", **sections: dict) -> Callable[[Path, Path, Path], Case]:
    """One file under <case>/raw, read with the small config (`sections` replace its keys)."""
    return lambda case, good, out: _reading(case, (name, content), **sections)


def _json_lines(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


JSON = {"input": {"format": "json", "options": {}}}
RECORDS = [{"id": i, "score": i * 0.5, "text": f"review {i}", "label": "ab"[i % 2]} for i in range(8)]


# --- the paths: missing, overlapping the output --------------------------------------------------

def _missing(case: Path, good: Path, out: Path) -> Case:
    return Case([f"input.paths=[{case / 'nowhere'}]"], out)


def _input_inside_output(case: Path, good: Path, out: Path) -> Case:
    shutil.copytree(good, out / "raw")
    return Case([f"input.paths=[{out / 'raw'}]"], out, [out / "raw"])


def _input_inside_output_by_a_link(case: Path, good: Path, out: Path) -> Case:
    shutil.copytree(good, out / "raw")
    (case / "link").symlink_to(out / "raw")
    # A file:// URI is taken as given (a bare path is resolved on the way in): the link is resolved by the check.
    return Case([f"input.paths=[file://{case / 'link'}]"], out, [out / "raw"])


def _output_inside_input(case: Path, good: Path, out: Path) -> Case:
    shutil.copytree(good, case / "raw")
    out.rename(case / "raw" / "out")
    return Case([f"input.paths=[{case / 'raw'}]"], case / "raw" / "out", [case / "raw"])


def _output_is_the_input(case: Path, good: Path, out: Path) -> Case:
    shutil.copytree(good, case / "raw")
    return Case([f"input.paths=[{case / 'raw'}]"], case / "raw", [case / "raw", out])


def _input_in_a_staging_sibling(case: Path, good: Path, out: Path) -> Case:
    left = case / ".out.staging-20261201T000000Z-abcdef" / "raw"
    shutil.copytree(good, left)
    return Case([f"input.paths=[{left}]"], out, [left])


def _with_an_empty_directory(case: Path, good: Path, out: Path) -> Case:
    (case / "empty").mkdir()
    return Case([f"input.paths=[{good / 'data.csv'},{case / 'empty'}]"], out)


# --- files that are not what the config says ------------------------------------------------------

def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _table(ids, score=lambda i: i * 0.5) -> pa.Table:
    return pa.table({"id": list(ids), "score": [score(i) for i in ids], "text": [f"review {i}" for i in ids],
                     "label": ["ab"[i % 2] for i in ids]})


PARQUET = {"input": {"format": "parquet", "options": {}, "schema": None}}


def _truncated_parquet(case: Path, good: Path, out: Path) -> Case:
    whole = _parquet_bytes(_table(range(4, 8)))
    return _reading(case, ("a.parquet", _parquet_bytes(_table(range(4)))), ("b.parquet", whole[:len(whole) // 2]),
                    **PARQUET)


def _parquet_types_differ(case: Path, good: Path, out: Path) -> Case:
    # pandas writes an integer column as int64, and as double in a file where one value is missing.
    return _reading(case, ("a.parquet", _parquet_bytes(_table(range(4), score=lambda i: i))),
                    ("b.parquet", _parquet_bytes(_table(range(4, 8), score=lambda i: None if i == 5 else i * 0.5))),
                    **PARQUET)


def _delta_read_as_parquet(case: Path, good: Path, out: Path) -> Case:
    spark = SparkSession.getActiveSession()
    table = str(case / "raw" / "delta")
    # Version 0 holds rows 100-107; version 1 replaces them with rows 0-7. Its Parquet files hold both.
    spark.createDataFrame(_table(range(100, 108)).to_pylist()).write.format("delta").save(table)
    spark.createDataFrame(_table(range(8)).to_pylist()).write.format("delta").mode("overwrite").save(table)
    return Case([], out, [case / "raw"], {"input": {"paths": [table], **PARQUET["input"]}})


CORRUPT_GZIP = b"\x1f\x8b\x08\x00 not gzip at all" * 20


def _unreadable_file_skipped(case: Path, good: Path, out: Path) -> Case:
    made = _reading(case, ("data.csv", _lines(*GOOD)), ("part-corrupt.csv.gz", CORRUPT_GZIP))
    return Case(made.sets, made.out, made.kept, {"input": {**made.config["input"], "on_unreadable_file": "quarantine"}})


def _skipped_file_counted(spark, case: Path, made: Case) -> None:
    manifest = json.loads((made.out / "manifest.json").read_text())
    uri = f"file://{case / 'raw' / 'part-corrupt.csv.gz'}"
    assert manifest["quarantine"]["unreadable_files"] == [uri]
    assert manifest["quarantine"]["unreadable_file_bytes"] == {uri: len(CORRUPT_GZIP)}
    assert manifest["quarantine"]["rows"] == 1  # no row rejected, one file skipped


# --- the config -------------------------------------------------------------------------------------

def _set(*sets: str) -> Callable[[Path, Path, Path], Case]:
    """The good input, with `sets`."""
    return lambda case, good, out: Case([f"input.paths=[{good}]", *sets], out)


# --- verify -------------------------------------------------------------------------------------------

def _class_weights_edited(case: Path, good: Path, out: Path) -> Case:
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["class_weights"]["folds"]["0"] = [1, 5]
    (out / "manifest.json").write_text(json.dumps(manifest))
    return Case([], out, command=["verify", str(out)])


# --- values -------------------------------------------------------------------------------------------

def _hex(text: bytes) -> str:
    return "0x" + text.hex().upper()


#: Six rows good but for num_1 (double) and num_2 (float) as given, then four good ones.
_NUMBERS = [("1e309", "0.5"), ("-1e309", "0.5"), ("1.8e308", "0.5"), ("inf", "0.5"), ("NaN", "0.5"), ("0.5", "1e39")]
NUMBERS = {"input": {"schema": {"id": "bigint", "num_1": "double", "num_2": "float", "label": "string"}},
           "columns": {"numeric": ["num_1", "num_2"], "text": []}}
_OVERFLOWING = _lines(*[f"{900 + i},{n1},{n2},a" for i, (n1, n2) in enumerate(_NUMBERS)],
                      *[f"{i},0.25,0.75,{'ab'[i % 2]}" for i in range(4)], header="id,num_1,num_2,label")
_NON_FINITE = "isnan(num_1) or abs(num_1) = double('inf') or isnan(num_2) or abs(num_2) = float('inf')"

#: A record whose text needs quoting (a comma, doubled quotes) and whose score is not a number.
QUOTED = '8,n/a,"say ""hi"", then go",a'


def _raw_reads_back_after_a_fix(spark, case: Path, made: Case) -> None:
    (raw,) = [q["raw"] for q in pq.read_table(made.out / "quarantine").to_pylist()]
    fixed = _write(case / "fixed" / "data.csv", _lines(raw.replace(",n/a,", ",4.0,")))
    config = InputConfig(paths=[str(fixed)], format="csv", options={"header": "true"}, schema=SCHEMA)
    assert [(r.id, r.score, r.text, r.label) for r in read_input(spark, config).collect()] == [
        ("8", "4.0", 'say "hi", then go', "a")]


UNCLOSED = '50,1.0,"unclosed,a'


def _unclosed_runs_to_the_end(spark, case: Path, made: Case) -> None:
    (raw,) = [q["raw"] for q in pq.read_table(made.out / "quarantine").to_pylist()]
    assert raw.startswith(UNCLOSED + "\n") and all(line in raw for line in GOOD[4:]), raw


DATES = {"input": {"schema": {**SCHEMA, "when": "timestamp"}}}


def _dated(i: int, when: str) -> str:
    return f"{i},{i * 0.5},{when},review {i},{'ab'[i % 2]}"


SEMICOLONS = [r.replace(",", ";") for r in GOOD]
INVALID_UTF8 = (b"8,4.0,bad\xff\xfe one,a", b"9,4.5,\xc3\x28 two,b")
SPREADSHEET = ('8,"1,234.5",thousands,a', "9,1 234,space,b", "10,NA,na,a")
NOT_BIGINT = ("12.7,4.0,fraction,a", "9223372036854775808,4.0,past,b")
RAGGED = ("100,1.5,short", "101,2.5,long,a,extra")
CUT_JSON = '{"id": 8, "score": 4.0, "text": "cut'
CAFE = "8,4.0,café crème,a"
NO_COLUMN_IN_HEADER = "input.schema column(s) ['id', 'score', 'text', 'label'] are not in the file's header"


def _invalid_utf8_raw(line: bytes) -> str:
    """The record of a CSV line whose text (its third field) is not UTF-8, as the quarantine keeps it."""
    i, score, text, label = line.split(b",")
    return f"{i.decode()},{score.decode()},{_hex(text)},{label.decode()}"


def _two_files(*files: tuple[str, str]) -> Callable[[Path, Path, Path], Case]:
    return lambda case, good, out: _reading(case, *files)


BAD_INPUTS = [
    # -- the 25 classes ---------------------------------------------------------------------
    BadInput("missing input path", _missing, 3, ("input path does not exist: {case}/nowhere",)),
    BadInput("missing input path, without a Java stack before the error", _missing, 3,
             ("input path does not exist: {case}/nowhere",), ("FileNotFoundException", "\tat "), own_process=True),
    BadInput("empty file", _csv(""), 3, ("no rows in input",)),
    BadInput("header-only file", _csv(_lines()), 3, ("no rows in input",)),
    BadInput("reserved column name in the input",
             _csv(_lines(*[r + ",0" for r in GOOD], header=HEADER + ",fold"),
                  input={"schema": {**SCHEMA, "fold": "int"}}),
             3, ("input column(s) ['fold']", "names reserved for the output", "--set columns.rename.fold=src_fold")),
    BadInput("reserved column name in the input, one written only when copies are counted",
             _csv(_lines(*[r + ",0" for r in GOOD], header=HEADER + ",copies"),
                  input={"schema": {**SCHEMA, "copies": "int"}}),
             3, ("input column(s) ['copies']", "--set columns.rename.copies=src_copies")),
    BadInput("unknown config key", _set("split.kk=3"), 2,
             ("{case}/config.yaml: invalid configuration", "split.kk: unknown key")),
    BadInput("k = 1", _set("split.k=1"), 2, ("split.k: Input should be greater than or equal to 2",)),
    BadInput("output.path equal to the input directory", _output_is_the_input, 3,
             ("input path {case}/raw is inside output.path {case}/raw",)),
    BadInput("gzip input (.csv.gz)", _csv(gzip.compress(_lines(*GOOD).encode()), "data.csv.gz"), 0,
             rows=8, data={AS_WRITTEN: 8}),
    BadInput("UTF-8 byte order mark", _csv(b"\xef\xbb\xbf" + _lines(*GOOD).encode()), 0, rows=8, data={AS_WRITTEN: 8}),
    BadInput("1 MB field", _csv(_lines(*GOOD, f"8,4.0,{'x' * (1 << 20)},a")), 0,
             rows=9, data={AS_WRITTEN: 8, "length(text) = 1048576": 1}),
    BadInput("JSON Lines with one bad line", _csv(_json_lines(RECORDS) + CUT_JSON + "\n", "data.json", **JSON), 0,
             rows=9, rejected={("malformed_record", None): 1}, raws=(CUT_JSON,), data={AS_WRITTEN: 8}),
    BadInput("a failing run (a stray label, found after reading) leaves the previous output",
             _csv(_lines(*GOOD, "8,4.0,stray,c")), 3, ("1 class(es) with fewer than 2 rows", "'c': 1")),
    BadInput("input inside the output", _input_inside_output, 3,
             ("{case}/out/raw is inside output.path", "{case}/out: publishing", "Move the input out of")),
    BadInput("input inside the output through a symlink", _input_inside_output_by_a_link, 3,
             ("{case}/link is inside output.path", "{case}/out")),
    BadInput("output inside the input", _output_inside_input, 3,
             ("{case}/raw is a directory that holds output.path", "{case}/raw/out")),
    BadInput("input in a staging directory beside the output", _input_in_a_staging_sibling, 3,
             (".out.staging-20261201T000000Z-abcdef/raw is inside a directory that runs writing",)),
    BadInput("everything rejected: label empty in every row", _csv(_lines(*[r[:-1] for r in GOOD])), 3,
             ("no rows left after ingest+clean: 8 rows read, all rejected", "8 x missing_label (label)",
              "record 1: '0,0.0,review 0,'", "the dataset at {case}/out is unchanged"), kept_quarantine=8),
    BadInput("everything rejected: a double column holding words in every row",
             _csv(_lines(*[f"{i},many,review {i},{'ab'[i % 2]}" for i in range(8)])), 3,
             ("8 rows read, all rejected", "8 x unparsable_value (score)", "record 1: '0,many,review 0,a'"),
             kept_quarantine=8),
    BadInput("everything rejected: a ';'-delimited file read as the demo reads (no header)",
             _csv(_lines(*SEMICOLONS, header=None), input={"options": {"header": "false"}}), 3,
             ("8 rows read, all rejected", "8 x malformed_record",
              "Likely cause: its first line has 3 x ';' and 0 x ',': set input.options.sep: ';'"), kept_quarantine=8),
    BadInput("a ';'-delimited file with a header", _csv(_lines(*SEMICOLONS, header="id;score;text;label")), 3,
             ("{case}/raw/data.csv: " + NO_COLUMN_IN_HEADER, "Likely cause: its first line has 3 x ';' and 0 x ','")),
    BadInput("a Parquet file named .csv", _csv(_parquet_bytes(_table(range(8)))), 3,
             ("{case}/raw/data.csv", "Likely cause: the file is a Parquet file: set input.format: parquet")),
    BadInput("a gzip file named .csv", _csv(gzip.compress(_lines(*GOOD).encode())), 3,
             ("{case}/raw/data.csv", "Likely cause: the file is gzip-compressed, but its name does not end in .gz")),
    BadInput("invalid UTF-8 in text fields", _csv(_lines(*GOOD).encode() + b"\n".join(INVALID_UTF8) + b"\n"), 0,
             rows=10, rejected={("invalid_encoding", "text"): 2}, raws=tuple(map(_invalid_utf8_raw, INVALID_UTF8)),
             data={AS_WRITTEN: 8, "text like '%\ufffd%'": 0}),
    BadInput("numbers beyond double and float, infinity and NaN literals kept", _csv(_OVERFLOWING, **NUMBERS), 0,
             rows=10, rejected={("out_of_range", "num_1"): 3, ("out_of_range", "num_2"): 1},
             messages=("column num_1: '1e309' is beyond the range of double", "column num_1: '-1e309' is beyond",
                       "column num_1: '1.8e308' is beyond", "column num_2: '1e39' is beyond the range of float"),
             data={"num_1 = double('inf')": 1, "isnan(num_1)": 1, "num_1 = double('-inf')": 0}),
    BadInput("infinity and NaN literals with clean.non_finite: reject",
             _csv(_OVERFLOWING, **NUMBERS, clean={"non_finite": "reject"}), 0,
             rows=10, rejected={("out_of_range", "num_1"): 5, ("out_of_range", "num_2"): 1},
             messages=("column num_1: 'inf' is not a finite number, and non_finite is reject",
                       "column num_1: 'NaN' is not a finite number"),
             data={_NON_FINITE: 0}),
    BadInput("raw of a bad value is the record as in the file, and reads back after a fix",
             _csv(_lines(*GOOD, QUOTED)), 0, rows=9, rejected={("unparsable_value", "score"): 1}, raws=(QUOTED,),
             data={AS_WRITTEN: 8}, after=_raw_reads_back_after_a_fix),
    BadInput("truncated Parquet, without a Java stack before the error", _truncated_parquet, 3,
             ("{case}/raw/b.parquet", "is not a Parquet file", "set input.on_unreadable_file: quarantine"),
             ("\tat ",), own_process=True),
    BadInput("an unreadable file skipped (on_unreadable_file: quarantine) is listed with its bytes",
             _unreadable_file_skipped, 0, rows=8, data={AS_WRITTEN: 8}, after=_skipped_file_counted),
    BadInput("verify: class weights edited", _class_weights_edited, 4, ("FAIL", "class_weights.folds.0")),
    # -- more that a demanding user hits ------------------------------------------------------------
    BadInput("ragged rows: a field short, a field over", _csv(_lines(*GOOD, *RAGGED)), 0,
             rows=10, rejected={("malformed_record", None): 2}, raws=RAGGED, data={AS_WRITTEN: 8}),
    # RFC 4180: a quoted field runs to its closing quote; without one, to the end of the file.
    BadInput("an unclosed quote mid-file: one malformed record to the end, the rows before it kept",
             _csv(_lines(*GOOD[:4], UNCLOSED, *GOOD[4:])), 0,
             rows=5, rejected={("malformed_record", None): 1}, data={AS_WRITTEN: 4}, after=_unclosed_runs_to_the_end),
    BadInput("CRLF line ends", _csv(_lines(*GOOD, end="\r\n")), 0, rows=8, data={AS_WRITTEN: 8}),
    BadInput("a column named twice in the header", _csv(_lines(*[r + ",1" for r in GOOD], header=HEADER + ",score")), 3,
             ("{case}/raw/data.csv: the header names column(s) ['score'] more than once",)),
    BadInput("a label with one class only", _csv(_lines(*[f"{i},{i * 0.5},review {i},a" for i in range(8)])), 3,
             ("label column label has one class only: 'a' (8 rows after cleaning and dedup)",)),
    BadInput("input.schema listing the columns in another order than the header",
             _csv(_lines(*GOOD), input={"schema": dict(reversed(SCHEMA.items()))}), 0, rows=8, data={AS_WRITTEN: 8}),
    BadInput("files with their columns in different orders",
             _two_files(("a.csv", _lines(*GOOD[:4])),
                        ("b.csv", _lines(*[",".join(reversed(r.split(","))) for r in GOOD[4:]],
                                         header="label,text,score,id"))),
             0, rows=8, data={AS_WRITTEN: 8}),
    BadInput("a file whose header lacks a schema column",
             _two_files(("a.csv", _lines(*GOOD[:4])), ("b.csv", _lines("5,2.5,b", "7,3.5,b", header="id,score,label"))),
             3,
             ("{case}/raw/b.csv: input.schema column(s) ['text'] are not in the file's header",)),
    BadInput("a Latin-1 file read as UTF-8", _csv(_lines(*GOOD, CAFE).encode("latin-1")), 0,
             rows=9, rejected={("invalid_encoding", "text"): 1}, raws=(_invalid_utf8_raw(CAFE.encode("latin-1")),),
             data={AS_WRITTEN: 8}),
    BadInput("a UTF-16 file read as UTF-8", _csv(_lines(*GOOD).encode("utf-16")), 3,
             ("{case}/raw/data.csv: " + NO_COLUMN_IN_HEADER,)),
    BadInput("a NUL byte in a field is kept", _csv(_lines(*GOOD, "8,4.0,nul\0here,a")), 0,
             rows=9, data={AS_WRITTEN: 8, "text = concat('nul', char(0), 'here')": 1}),
    BadInput("a very long line: more fields than the CSV parser takes (20,480)",
             _csv(_lines(*GOOD, "8,4.0,x," + ",".join(["y"] * 30_000))), 3,
             ("{case}/raw/data.csv", "a record has more than 20480 fields, the CSV parser's limit",
              "input.options.maxColumns")),
    BadInput("an empty directory among the input paths", _with_an_empty_directory, 0, rows=8, data={AS_WRITTEN: 8}),
    BadInput("numbers as spreadsheets write them: 1,234.5 / 1 234 / NA", _csv(_lines(*GOOD, *SPREADSHEET)), 0,
             rows=11, rejected={("unparsable_value", "score"): 3}, raws=SPREADSHEET, data={AS_WRITTEN: 8}),
    BadInput("dates in a wrong format",
             _csv(_lines(*[_dated(i, "2024-05-01 10:00:00") for i in range(8)], _dated(8, "05/01/2024 10:00"),
                         _dated(9, "2024-02-30 10:00:00"), _dated(10, "2024-13-01"), header="id,score,when,text,label"),
                  **DATES), 0,
             rows=11, rejected={("unparsable_value", "when"): 3},
             messages=("column when: '05/01/2024 10:00' is not a valid timestamp", "'2024-02-30 10:00:00'",
                       "'2024-13-01'"),
             data={AS_WRITTEN: 8, "when = timestamp'2024-05-01 10:00:00'": 8}),
    BadInput("an integer column: a fraction, and one past bigint",
             _csv(_lines(*GOOD, *NOT_BIGINT, "-9223372036854775808,4.0,least,b")), 0,
             rows=11, rejected={("unparsable_value", "id"): 2}, raws=NOT_BIGINT,
             data={AS_WRITTEN: 8, "id = -9223372036854775808 and text = 'least'": 1}),
    BadInput("misspelt type in input.schema", _csv(_lines(*GOOD), input={"schema": {**SCHEMA, "score": "dobule"}}), 2,
             ("input.schema.score: 'dobule' is not a Spark SQL type",)),
    BadInput("a JSON array on one line", _csv(json.dumps(RECORDS) + "\n", "data.json", **JSON), 0,
             rows=8, data={AS_WRITTEN: 8}),
    # 1 line '[' + 8 x 6 lines ('{', 4 keys, '}') + 1 line ']': 50 lines, none a JSON value of its own.
    BadInput("a JSON array over many lines, read without multiLine",
             _csv(json.dumps(RECORDS, indent=2), "data.json", **JSON), 3,
             ("no rows left after ingest+clean: 50 rows read, all rejected", "50 x malformed_record"),
             kept_quarantine=50),
    BadInput("a Delta table read as Parquet", _delta_read_as_parquet, 3,
             ("{case}/raw/delta is a Delta table", "set input.format: delta")),
    BadInput("Parquet files whose column types differ", _parquet_types_differ, 3,
             ("Parquet column [score]", "{case}/raw/")),
    BadInput("a CSV directory read as Delta", _csv(_lines(*GOOD), input={"format": "delta", "schema": None}), 3,
             ("{case}/raw is not a readable Delta table",)),
]


@pytest.fixture(scope="module")
def good_input(tmp_path_factory) -> Path:
    raw = tmp_path_factory.mktemp("good")
    _write(raw / "data.csv", _lines(*GOOD))
    return raw


def _write_config(case_dir: Path, sections: dict[str, dict]) -> Path:
    config = {name: {**SMALL.get(name, {}), **sections.get(name, {})} for name in {*SMALL, *sections}}
    path = case_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def previous_output(spark, good_input, tmp_path_factory):
    root = tmp_path_factory.mktemp("previous")
    config = _write_config(root, {"input": {"paths": [str(good_input)]}})
    assert main(["prepare", "--config", str(config), "--set", f"output.path={root / 'out'}"]) == 0
    return root / "out"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(args: list[str], own_process: bool, capsys) -> tuple[int, str]:
    """The command's exit code and what it wrote (stderr, then stdout)."""
    if own_process:
        proc = subprocess.run([sys.executable, "-m", "sparkprep.cli", *args], capture_output=True, text=True,
                              timeout=600)
        return proc.returncode, proc.stderr + proc.stdout
    code = main(args)
    said = capsys.readouterr()
    return code, said.err + said.out


def _param(bad: BadInput):
    return pytest.param(bad, id=bad.name, marks=[pytest.mark.xfail(reason=bad.xfail, strict=True)] if bad.xfail else [])


@pytest.mark.parametrize("bad", [_param(b) for b in BAD_INPUTS])
def test_bad_input(spark, tmp_path, good_input, previous_output, capsys, bad):
    shutil.copytree(previous_output, tmp_path / "out")
    case = bad.make(tmp_path, good_input, tmp_path / "out")
    config = _write_config(tmp_path, case.config)
    before = {p: _files(p) for p in [case.out, *case.kept]}
    beside = sorted(os.listdir(case.out.parent))
    args = case.command or ["prepare", "--config", str(config), "--set", f"output.path={case.out}",
                            *[a for s in case.sets for a in ("--set", s)]]
    code, said = _run(args, bad.own_process, capsys)
    said = re.sub(r"file:(//)?(?=/)", "", said)  # URIs as paths: file:///x, file:/x -> /x
    assert code == bad.exit, said
    for fragment in bad.says:
        assert fragment.format(case=tmp_path) in said, said
    for fragment in bad.never_says:
        assert fragment not in said, said
    if bad.after:
        bad.after(spark, tmp_path, case)
    if bad.exit:
        # Neither the previous output nor the input changed, and nothing was left beside the output
        # but the quarantine of a run with no row left.
        assert {p: _files(p) for p in before} == before
        left = sorted(set(os.listdir(case.out.parent)) - set(beside))
        if bad.kept_quarantine is None:
            assert left == []
        else:
            assert len(left) == 1 and left[0].startswith(f"{case.out.name}.failed-") and left[0] in said
            assert pq.read_table(case.out.parent / left[0] / "quarantine").num_rows == bad.kept_quarantine
        return
    manifest = json.loads((case.out / "manifest.json").read_text())
    rows = manifest["rows"]
    assert rows["input"] == bad.rows == rows["rejected"] + rows["duplicates"] + rows["output"]
    assert {(r["reason"], r["column"]): r["rows"] for r in manifest["rejections"]["by_column"]} == bad.rejected
    quarantine = pq.read_table(case.out / "quarantine", columns=["message", "raw"]).to_pylist()
    if bad.raws is not None:
        assert sorted(q["raw"] for q in quarantine) == sorted(bad.raws)
    for fragment in bad.messages:
        assert any(fragment in q["message"] for q in quarantine), fragment
    originals = spark.read.parquet(str(case.out / "data")).where("replica = 0")
    assert {condition: originals.where(condition).count() for condition in bad.data} == bad.data
