"""CSV files as pandas and Python's csv module write them read back value for value; columns are
matched by the header's names, never by the schema's order."""

import csv
import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from sparkprep.contract import CORRUPT
from sparkprep.cli import main
from sparkprep.config import InputConfig
from sparkprep.errors import InputError
from sparkprep.io.read import read_input

HEADER = ["id", "score", "text", "label"]
#: Every awkward thing a text field holds in real exports.
TEXTS = ['he said "hi", then left', "two\nlines", "windows\r\nline", "comma, inside", "naïve café ✓ 東京",
         '""', "  padded  ", "ends with quote\"", 'a "quoted" word', "plain", "trailing comma,", "tab\there"]


def _rows(n: int) -> list[list[str]]:
    return [[str(i), f"{i * 0.25:.2f}", f"{TEXTS[i % len(TEXTS)]} #{i}", "good" if i % 3 else "bad"] for i in range(n)]


def _write(path, writer: str, rows: list[list[str]]) -> None:
    """One file as the named writer writes it."""
    if writer.startswith("pandas"):
        frame = pd.DataFrame(rows, columns=HEADER)
        frame.to_csv(path, index=False, lineterminator="\r\n" if writer == "pandas_crlf" else "\n")
        return
    quoting = csv.QUOTE_ALL if writer == "csv_quote_all" else csv.QUOTE_MINIMAL
    encoding = "utf-8-sig" if writer == "csv_bom" else "utf-8"
    with open(path, "w", newline="", encoding=encoding) as f:  # csv's default line end: \r\n
        w = csv.writer(f, quoting=quoting)
        w.writerow(HEADER)
        w.writerows(rows)


def _records_as_written(rows: list[list[str]], which) -> set[str]:
    """Each row's record as Python's csv module writes it (QUOTE_MINIMAL), without the line end."""
    out = set()
    for i in which:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerow(rows[i])
        out.add(text.getvalue()[:-1])
    return out


def _python_reads(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


WRITERS = ["pandas_lf", "pandas_crlf", "csv_minimal", "csv_quote_all", "csv_bom"]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_file_reads_back_as_pythons_csv_reads_it(spark, tmp_path, writer):
    path = tmp_path / f"{writer}.csv"
    _write(path, writer, _rows(48))
    # The schema lists the columns in another order than the header: names decide.
    config = InputConfig(paths=[str(path)], format="csv", options={"header": "true"},
                         schema={"label": "string", "text": "string", "id": "string", "score": "string"})
    got = read_input(spark, config).collect()
    expected = _python_reads(path)
    assert len(got) == len(expected) == 48
    assert all(r[CORRUPT] is None for r in got)
    by_id = {r["id"]: r for r in got}
    for want in expected:
        row = by_id[want["id"]]
        assert {c: row[c] for c in HEADER} == want


def test_files_with_different_column_orders_read_by_name(spark, tmp_path):
    data = tmp_path / "mixed"
    data.mkdir()
    rows = _rows(20)
    _write(data / "a.csv", "pandas_lf", rows[:10])
    reordered = pd.DataFrame(rows[10:], columns=HEADER)[["label", "text", "score", "id"]]
    reordered.to_csv(data / "b.csv", index=False)
    config = InputConfig(paths=[str(data)], format="csv", options={"header": "true"},
                         schema={"id": "string", "score": "string", "text": "string", "label": "string"})
    got = {r["id"]: [r[c] for c in HEADER] for r in read_input(spark, config).collect()}
    assert got == {row[0]: row for row in rows}


def test_a_mixed_line_end_file_keeps_no_carriage_return(spark, tmp_path):
    path = tmp_path / "mixed-ends.csv"
    path.write_bytes(b'id,text,label\n1,"a, b",x\n2,plain,y\r\n3,"c\r\nd",z\r\n4,e,w\n')
    config = InputConfig(paths=[str(path)], format="csv", options={"header": "true"},
                         schema={"id": "string", "text": "string", "label": "string"})
    got = sorted(tuple(r[c] for c in ("id", "text", "label")) for r in read_input(spark, config).collect())
    assert got == [("1", "a, b", "x"), ("2", "plain", "y"), ("3", "c\r\nd", "z"), ("4", "e", "w")]


def test_a_line_cut_inside_quotes_is_malformed_not_merged_into_a_text(spark, tmp_path):
    path = tmp_path / "cut.csv"
    path.write_bytes(b'id,text,label\n1,"ok",x\n2,"cut here\n3,"fine",y\n4,"more",z\n')
    config = InputConfig(paths=[str(path)], format="csv", options={"header": "true"},
                         schema={"id": "string", "text": "string", "label": "string"})
    rows = read_input(spark, config).collect()
    accepted = [(r["id"], r["text"], r["label"]) for r in rows if r[CORRUPT] is None]
    # Spark's default would accept one row whose text holds 'cut here\n3,' (record 3 vanished).
    assert all("\n" not in (t or "") for _, t, _ in accepted)
    # Where a parser resynchronises after an unclosed quote is guesswork (Python's csv runs on to
    # the end of record 4); what matters is that the records after the cut are kept as raw text.
    raw = "".join(r[CORRUPT] for r in rows if r[CORRUPT] is not None)
    assert all(part in raw for part in ("cut here", "fine", "more")) and ("1", "ok", "x") in accepted


def test_a_users_own_option_still_wins(spark, tmp_path):
    path = tmp_path / "backslash.csv"
    path.write_text('id,text,label\n1,"say \\"hi\\"",x\n')
    config = InputConfig(paths=[str(path)], format="csv", options={"header": "true", "escape": "\\"},
                         schema={"id": "string", "text": "string", "label": "string"})
    assert [r["text"] for r in read_input(spark, config).collect()] == ['say "hi"']


def test_a_schema_column_missing_from_the_header_names_file_and_both_lists(spark, tmp_path):
    path = tmp_path / "a.csv"
    _write(path, "pandas_lf", _rows(3))
    config = InputConfig(paths=[str(path)], format="csv", options={"header": "true"},
                         schema={"id": "string", "review": "string", "label": "string", "score": "string", "text": "string"})
    with pytest.raises(InputError) as err:
        read_input(spark, config)
    message = str(err.value)
    assert "a.csv" in message and "['review']" in message
    assert "header: id, score, text, label" in message and "schema: id, review, label, score, text" in message


def test_a_header_column_the_schema_lacks_is_an_error_unless_ignored(spark, tmp_path):
    path = tmp_path / "a.csv"
    _write(path, "pandas_lf", _rows(3))
    schema = {"id": "string", "label": "string", "text": "string"}
    with pytest.raises(InputError, match=r"(?s)\['score'\] are not in input.schema.*extra_columns: ignore"):
        read_input(spark, InputConfig(paths=[str(path)], format="csv", options={"header": "true"}, schema=schema))
    ignoring = InputConfig(paths=[str(path)], format="csv", options={"header": "true"}, schema=schema,
                           extra_columns="ignore")
    df = read_input(spark, ignoring)
    assert "score" not in df.columns and sorted(r["label"] for r in df.collect()) == ["bad", "good", "good"]


def test_without_a_schema_files_with_different_headers_are_refused(spark, tmp_path):
    data = tmp_path / "two"
    data.mkdir()
    (data / "a.csv").write_text("id,label\n1,x\n")
    (data / "b.csv").write_text("label,id\ny,2\n")
    with pytest.raises(InputError, match="(?s)different headers.*Set input.schema"):
        read_input(spark, InputConfig(paths=[str(data)], format="csv"))


# --- end to end: the 600 pandas rows of the issue, half with \n and half with \r\n line ends -----

def test_pandas_reviews_prepare_with_every_row_and_value(spark, tmp_path, csv_config):
    data = tmp_path / "reviews"
    data.mkdir()
    rows = _rows(600)
    _write(data / "lf.csv", "pandas_lf", rows[:300])
    _write(data / "crlf.csv", "pandas_crlf", rows[300:])
    schema = {"id": "bigint", "score": "double", "label": "string", "text": "string"}  # not the header's order
    assert main(["prepare", "--config", csv_config(data, schema)]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rows"]["input"] == 600 and manifest["rows"]["rejected"] == 0
    assert manifest["rows"]["input"] == manifest["rows"]["rejected"] + manifest["rows"]["duplicates"] + manifest["rows"]["output"]
    assert manifest["classes"] == ["bad", "good"]
    written = pq.read_table(tmp_path / "out" / "data", columns=["id", "text", "label", "replica"]).to_pylist()
    expected = {int(r[0]): (r[2], r[3]) for r in rows}
    assert {r["id"]: (r["text"], r["label"]) for r in written if r["replica"] == 0} == expected


def test_a_rejected_record_is_numbered_within_its_file(spark, tmp_path, csv_config):
    data = tmp_path / "numbered"
    data.mkdir()
    first, second = _rows(40), _rows(80)[40:]
    first[2][1], first[25][1], second[0][1] = "n/a", "oops", "#VALUE!"  # texts before them span lines
    _write(data / "a.csv", "pandas_lf", first)
    _write(data / "b.csv", "csv_minimal", second)
    schema = {"id": "bigint", "score": "double", "label": "string", "text": "string"}
    assert main(["prepare", "--config", csv_config(data, schema)]) == 0
    quarantine = pq.read_table(tmp_path / "out" / "quarantine").to_pylist()
    found = sorted((q["source_file"].rsplit("/", 1)[1], q["record"], q["reason"]) for q in quarantine)
    assert found == [("a.csv", 3, "unparsable_value"), ("a.csv", 26, "unparsable_value"), ("b.csv", 1, "unparsable_value")]


def test_invalid_utf8_is_quarantined_with_its_bytes_not_replaced(spark, tmp_path, csv_config):
    data = tmp_path / "bytes.csv"
    good = "".join(f"{i},{i}.5,caf\u00e9 \u6771\u4eac {i},{'good' if i % 2 else 'bad'}\n" for i in range(40)).encode()
    bad = b"100,1.5,bad\xff\xfe one,good\n101,2.5,\xc3\x28 two,bad\n102,3.5,fine,go\xffod\n"
    data.write_bytes(b"id,score,text,label\n" + good + bad)
    schema = {"id": "bigint", "score": "double", "text": "string", "label": "string"}
    assert main(["prepare", "--config", csv_config(data, schema)]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rows"]["input"] == 43 and manifest["rejections"]["by_reason"] == {"invalid_encoding": 3}
    quarantine = pq.read_table(tmp_path / "out" / "quarantine").to_pylist()
    found = sorted((q["column"], q["raw"]) for q in quarantine)
    one, two, label = ("0x" + b.hex().upper() for b in (b"bad\xff\xfe one", b"\xc3\x28 two", b"go\xffod"))
    assert found == [("label", f"102,3.5,fine,{label}"), ("text", f"100,1.5,{one},good"), ("text", f"101,2.5,{two},bad")]
    texts = pq.read_table(tmp_path / "out" / "data", columns=["text", "replica"]).to_pylist()
    assert sorted(t["text"] for t in texts if t["replica"] == 0) == sorted(f"caf\u00e9 \u6771\u4eac {i}" for i in range(40))


def test_a_rejected_rows_raw_is_its_record_and_reads_back_after_a_fix(spark, tmp_path, csv_config):
    data = tmp_path / "first"
    data.mkdir()
    rows = _rows(48)
    for i in (1, 2, 5, 8):  # texts with a quote, a line break, a CRLF, a comma
        rows[i][1] = "n/a"
    _write(data / "a.csv", "pandas_lf", rows)
    schema = {"id": "bigint", "score": "double", "label": "string", "text": "string"}
    assert main(["prepare", "--config", csv_config(data, schema)]) == 0
    raws = {q["raw"] for q in pq.read_table(tmp_path / "out" / "quarantine").to_pylist()}
    # One record each, as Python's csv writes it (a record may span lines: split records, not lines).
    assert raws == _records_as_written(rows, (1, 2, 5, 8))
    # Fixed and fed back under the file's header, they read as the rows they were.
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    (fixed / "b.csv").write_text(",".join(HEADER) + "\n" + "\n".join(r.replace(",n/a,", ",1.5,", 1) for r in raws) + "\n")
    rows_back = read_input(spark, InputConfig(paths=[str(fixed)], format="csv", options={"header": "true"},
                                              schema={c: "string" for c in HEADER})).collect()
    assert sorted((r["id"], r["text"], r["label"]) for r in rows_back) == sorted(
        (rows[i][0], rows[i][2], rows[i][3]) for i in (1, 2, 5, 8))


@pytest.mark.parametrize("content, cause", [
    (b"id;score;text;label\n1;0.5;fine;good\n", "set input.options.sep: ';'"),
    (b"id\tscore\ttext\tlabel\n1\t0.5\tfine\tgood\n", "set input.options.sep: '\\t'"),
    (b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x04\x15\x00\x00\x00binary", "the file is a Parquet file: set input.format: parquet"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00binary", "gzip-compressed, but its name does not end in .gz"),
])
def test_a_file_that_is_not_the_configured_csv_is_diagnosed(spark, tmp_path, content, cause):
    (tmp_path / "data.csv").write_bytes(content)
    config = InputConfig(paths=[str(tmp_path / "data.csv")], format="csv", options={"header": "true"},
                         schema={"id": "string", "score": "string", "text": "string", "label": "string"})
    with pytest.raises(InputError, match="Likely cause: ") as err:
        read_input(spark, config)
    assert cause in str(err.value) and "data.csv" in str(err.value)


def test_everything_malformed_names_the_likely_delimiter(spark, tmp_path, csv_config, capsys):
    data = tmp_path / "semi.csv"
    data.write_text("".join(f"{i};{i}.5;text {i};good\n" for i in range(20)))
    config = csv_config(data, {"id": "bigint", "score": "double", "text": "string", "label": "string"},
                        input={"options": {"header": "false"}})
    assert main(["prepare", "--config", config]) == 3
    err = capsys.readouterr().err
    assert "no rows left after ingest+clean: 20 rows read, all rejected" in err
    assert "Likely cause: its first line has 3 x ';' and 0 x ','" in err


def test_a_file_in_another_encoding_reads_with_its_option(spark, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,text,label\n1,caf\u00e9 cr\u00e8me,x\n".encode("latin-1"))
    config = InputConfig(paths=[str(path)], format="csv", options={"header": "true", "encoding": "ISO-8859-1"},
                         schema={"label": "string", "id": "string", "text": "string"})
    assert [(r["id"], r["text"], r["label"]) for r in read_input(spark, config).collect()] == [("1", "caf\u00e9 cr\u00e8me", "x")]
