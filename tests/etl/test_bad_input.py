"""Bad input through the CLI entry point (in-process, sharing the test session): clear error,
non-zero exit, nothing that looks like a complete dataset."""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import csv_records
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


def test_missing_input_path_is_named_with_no_java_stack_before(tmp_path):
    # A process of its own: the JVM's log lines go to the stderr it was started with.
    missing = tmp_path / "nowhere"
    proc = subprocess.run([sys.executable, "-m", "sparkprep.cli", "prepare", *BASE, "--set", f"input.paths=[{missing}]",
                           "--set", f"output.path={tmp_path / 'out'}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 3
    assert f"input path does not exist: file:{missing}" in proc.stderr
    assert "FileNotFoundException" not in proc.stderr and "\tat org.apache" not in proc.stderr
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
    assert _prepare(spark, tmp_path, f"input.paths=[{raw}]", "input.format=json", "input.options={}") == 0
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
    assert _prepare(spark, tmp_path, f"input.paths=[{raw}]", "input.format=json", "input.options={multiline: 'true'}") == 0
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
                    "input.on_unreadable_file=quarantine") == 0
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


# The bad-input table (issue 28): every row runs `prepare` where a previous, good output already
# is, and states the exit code, what the error says or which rows are quarantined why, and, for a
# failing run, that the previous output and the input survive it byte for byte.

@dataclass(frozen=True)
class Case:
    """One prepared case: the `--set`s of the run, its output.path, and paths that must survive."""

    sets: list[str]
    out: Path
    kept: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class BadInput:
    name: str
    #: (case directory, the good input, the previous output copied to <case>/out) -> Case
    make: Callable[[Path, Path, Path], Case]
    exit: int
    #: Fragments of stderr ({case}: the case directory).
    says: tuple[str, ...] = ()
    #: exit 0: (reason, column) -> rows in the manifest's rejections.by_column
    rejected: dict[tuple[str, str], int] = field(default_factory=dict)
    #: exit 0: rows.input beyond the good input's records
    added_rows: int | None = None
    #: exit 0: fragments of quarantine messages, each found in some message
    messages: tuple[str, ...] = ()
    #: exit 0: a SQL condition -> how many originals of the output data meet it
    data: dict[str, int] = field(default_factory=dict)


def _input_inside_output(case: Path, raw: Path, out: Path) -> Case:
    shutil.copytree(raw, out / "raw")
    return Case([f"input.paths=[{out / 'raw'}]"], out, [out / "raw"])


def _input_inside_output_by_a_link(case: Path, raw: Path, out: Path) -> Case:
    shutil.copytree(raw, out / "raw")
    (case / "link").symlink_to(out / "raw")
    # A file:// URI is taken as given (a bare path is resolved on the way in): the link is resolved by the check.
    return Case([f"input.paths=[file://{case / 'link'}]"], out, [out / "raw"])


def _output_inside_input(case: Path, raw: Path, out: Path) -> Case:
    shutil.copytree(raw, case / "raw")
    out.rename(case / "raw" / "out")
    return Case([f"input.paths=[{case / 'raw'}]", f"output.path={case / 'raw' / 'out'}"], case / "raw" / "out",
                [case / "raw"])


def _input_in_a_staging_sibling(case: Path, raw: Path, out: Path) -> Case:
    left = case / ".out.staging-20261201T000000Z-abcdef" / "raw"
    shutil.copytree(raw, left)
    return Case([f"input.paths=[{left}]"], out, [left])


#: Six rows in the demo layout, good but for num_1 (and num_2, read as float) as given.
_NUMBERS = [("1e309", "0.5"), ("-1e309", "0.5"), ("1.8e308", "0.5"), ("inf", "0.5"), ("NaN", "0.5"),
            ("0.5", "1e39")]
_TEXTS = ["amber falcon", "quiet harbour", "seven lanterns", "iron meadow", "paper comet", "violet tundra"]


def _overflowing(case: Path, raw: Path, out: Path) -> Case:
    shutil.copytree(raw, case / "raw")
    lines = [f'{900_001 + i},0.5,{n1},{n2},0.25,0.75,a,0.1;0.2;0.3;0.4,"{text} {text}",g1,2024-05-01 10:00:00,class_0'
             for i, ((n1, n2), text) in enumerate(zip(_NUMBERS, _TEXTS))]
    (case / "raw" / "part-overflow.csv").write_text("\n".join(lines) + "\n")
    return Case([f"input.paths=[{case / 'raw'}]", "input.schema.num_2=float"], out)


def _overflowing_non_finite_rejected(case: Path, raw: Path, out: Path) -> Case:
    made = _overflowing(case, raw, out)
    return Case([*made.sets, "clean.non_finite=reject"], out)


_NON_FINITE = "isnan(num_1) or abs(num_1) = double('inf') or isnan(num_2) or abs(num_2) = float('inf')"


BAD_INPUTS = [
    BadInput("input inside the output", _input_inside_output, 3,
             ("{case}/out/raw is inside output.path", "{case}/out: publishing", "Move the input out of")),
    BadInput("input inside the output through a symlink", _input_inside_output_by_a_link, 3,
             ("{case}/link is inside output.path", "{case}/out")),
    BadInput("output inside the input", _output_inside_input, 3,
             ("{case}/raw is a directory that holds output.path", "{case}/raw/out")),
    BadInput("input in a staging directory beside the output", _input_in_a_staging_sibling, 3,
             (".out.staging-20261201T000000Z-abcdef/raw is inside a directory that runs writing",)),
    BadInput("numbers beyond double and float, infinity and NaN literals kept", _overflowing, 0,
             rejected={("out_of_range", "num_1"): 3, ("out_of_range", "num_2"): 1}, added_rows=6,
             messages=("column num_1: '1e309' is beyond the range of double", "column num_1: '-1e309' is beyond",
                       "column num_1: '1.8e308' is beyond", "column num_2: '1e39' is beyond the range of float"),
             data={"num_1 = double('inf')": 1, "isnan(num_1)": 1, "num_1 = double('-inf')": 0}),
    BadInput("infinity and NaN literals with clean.non_finite: reject", _overflowing_non_finite_rejected, 0,
             rejected={("out_of_range", "num_1"): 5, ("out_of_range", "num_2"): 1}, added_rows=6,
             messages=("column num_1: 'inf' is not a finite number, and non_finite is reject",
                       "column num_1: 'NaN' is not a finite number"),
             data={_NON_FINITE: 0}),
]


@pytest.fixture(scope="module")
def previous_output(spark, small_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("previous") / "out"
    assert main(["prepare", *BASE, "--set", f"output.path={out}", "--set", f"input.paths=[{small_csv}]"]) == 0
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[b.name for b in BAD_INPUTS])
def test_bad_input(spark, tmp_path, small_csv, previous_output, capsys, bad):
    shutil.copytree(previous_output, tmp_path / "out")
    case = bad.make(tmp_path, small_csv, tmp_path / "out")
    before = {p: _files(p) for p in [case.out, *case.kept]}
    beside = sorted(os.listdir(case.out.parent))
    code = main(["prepare", *BASE, "--set", f"output.path={case.out}", *[a for s in case.sets for a in ("--set", s)]])
    err = capsys.readouterr().err.replace("file://", "").replace("file:", "")
    assert code == bad.exit, err
    for fragment in bad.says:
        assert fragment.format(case=tmp_path) in err, err
    if bad.exit:
        # Neither the previous output nor the input changed, and nothing was left beside the output.
        assert {p: _files(p) for p in before} == before
        assert sorted(os.listdir(case.out.parent)) == beside
        return
    manifest = json.loads((case.out / "manifest.json").read_text())
    by_column = {(r["reason"], r["column"]): r["rows"] for r in manifest["rejections"]["by_column"]}
    assert {key: by_column.get(key, 0) for key in bad.rejected} == bad.rejected
    assert manifest["rows"]["input"] == csv_records(small_csv) + bad.added_rows
    messages = [r["message"] for r in pq.read_table(case.out / "quarantine", columns=["message"]).to_pylist()]
    for fragment in bad.messages:
        assert any(fragment in m for m in messages), fragment
    originals = spark.read.parquet(str(case.out / "data")).where("replica = 0")
    assert {condition: originals.where(condition).count() for condition in bad.data} == bad.data
