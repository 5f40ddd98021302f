"""Label hygiene and runs with nothing left: a stray label value is never silently a class, and a
run that rejects everything says why and keeps the evidence, without touching the dataset in force."""

import json

import pyarrow.parquet as pq

from sparkprep.cli import main

SCHEMA = {"id": "bigint", "score": "double", "text": "string", "label": "string"}


def _reviews(path, n_good: int, n_bad: int, extra: list[str] = ()) -> None:
    lines = ["id,score,text,label"]
    lines += [f"{i},{i * 0.5},review number {i},good" for i in range(n_good)]
    lines += [f"{1000 + i},{-i * 0.5},another review {i},bad" for i in range(n_bad)]
    path.write_text("\n".join([*lines, *extra]) + "\n")


def _no_run_left_behind(tmp_path) -> None:
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name or ".scratch-" in p.name]


def test_a_class_too_small_to_stratify_stops_the_run_naming_it(spark, tmp_path, csv_config, capsys):
    data = tmp_path / "raw.csv"
    # A shifted column puts part of a text in the label: a class of two rows.
    _reviews(data, 60, 40, ['2000,1.0,"bad, really",great', "2001,2.0,so so,great"])
    assert main(["prepare", "--config", csv_config(data, SCHEMA)]) == 3
    err = capsys.readouterr().err
    assert "'great': 2" in err and "fewer than 5 rows" in err
    assert "columns.classes" in err and "columns.rare_classes: quarantine" in err
    assert not (tmp_path / "out").exists()
    _no_run_left_behind(tmp_path)


def test_rare_classes_can_be_quarantined_with_their_rows(spark, tmp_path, csv_config, capsys):
    data = tmp_path / "raw.csv"
    _reviews(data, 60, 40, ["2000,1.0,odd one,great", "2001,2.0,odd two,great", "2002,3.0,odd three,great"])
    config = csv_config(data, SCHEMA, columns={"rare_classes": "quarantine", "min_class_rows": 4})
    assert main(["prepare", "--config", config]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    rows = manifest["rows"]
    assert rows["input"] == 103 and rows["rejected"] == 3 and rows["output"] == 100
    assert manifest["rejections"]["by_reason"] == {"rare_label": 3}
    # 60 good, 40 bad; the holdout takes round(0.1 n) of each class, and is counted here too.
    assert manifest["classes"] == ["bad", "good"] and manifest["class_counts"] == {"bad": 40, "good": 60}
    quarantine = pq.read_table(tmp_path / "out" / "quarantine").to_pylist()
    # Each row's record in the file's own format and its number there (the header is not a record).
    assert sorted((q["record"], q["raw"]) for q in quarantine) == [
        (101, "2000,1.0,odd one,great"), (102, "2001,2.0,odd two,great"), (103, "2002,3.0,odd three,great")]
    assert {q["source_file"] for q in quarantine} == {f"file:{data}"}
    assert all(q["reason"] == "rare_label" and "3 rows for cross-validation, fewer than 4" in q["message"]
               for q in quarantine)
    report = (tmp_path / "out" / "report.html").read_text()
    assert "bad (40), good (60)" in report and "bad (40), good (60)" in capsys.readouterr().out


def test_a_blank_or_whitespace_label_is_missing(spark, tmp_path, csv_config):
    data = tmp_path / "raw.csv"
    _reviews(data, 30, 30, ['5000,1.0,tabbed,"\t"', "5001,1.0,spaced,  ", "5002,1.0,nbsp,\u00a0", "5003,1.0,none,"])
    assert main(["prepare", "--config", csv_config(data, SCHEMA)]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rejections"]["by_reason"] == {"missing_label": 4} and manifest["classes"] == ["bad", "good"]


def test_everything_rejected_says_why_and_keeps_the_quarantine(spark, tmp_path, csv_config, capsys):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    _reviews(good, 30, 30)
    assert main(["prepare", "--config", csv_config(good, SCHEMA)]) == 0
    published = (tmp_path / "out" / "manifest.json").read_text()
    bad.write_text("id,score,text,label\n" + "".join(f"{i},many,text {i},good\n" for i in range(12)))
    assert main(["prepare", "--config", csv_config(bad, SCHEMA)]) == 3
    err = capsys.readouterr().err
    assert "no rows left after ingest+clean: 12 rows read, all rejected" in err
    assert "12 x unparsable_value (score), e.g. " in err and "bad.csv record 1: '0,many,text 0,good'" in err
    kept = [p for p in tmp_path.iterdir() if ".failed-" in p.name]
    assert len(kept) == 1 and str(kept[0] / "quarantine") in err
    assert len(pq.read_table(kept[0] / "quarantine")) == 12
    assert (tmp_path / "out" / "manifest.json").read_text() == published
    _no_run_left_behind(tmp_path)


def test_nothing_left_after_dedup_names_the_stage(spark, tmp_path, csv_config, capsys):
    data = tmp_path / "conflicts.csv"
    data.write_text("id,score,text,label\n" + "".join(f"{i},1.0,same,{'ab'[i % 2]}\n" for i in range(8)))
    config = csv_config(data, SCHEMA, dedup={"conflicts": "drop_all"},
                        columns={"numeric": ["score"], "text": ["text"]})
    assert main(["prepare", "--config", config]) == 3
    err = capsys.readouterr().err
    assert "no rows left after dedup: 8 rows read, 8 rejected, 0 duplicates" in err
    assert "8 x conflicting_label (label)" in err
    assert not (tmp_path / "out").exists()
    _no_run_left_behind(tmp_path)


def test_conflicting_rows_are_quarantined_as_csv_records_that_read_back_once_fixed(spark, tmp_path, csv_config):
    data = tmp_path / "raw.csv"
    # Two rows whose features (score, text) equal each other's but whose labels differ, one with a
    # text that needs quoting, one with a normalised number (1.50 reads as 1.5).
    _reviews(data, 60, 40, ['3000,1.50,"same words, twice",good', '3001,1.5,"same words, twice",bad'])
    config = csv_config(data, SCHEMA, dedup={"exact": True, "conflicts": "drop_all"})
    assert main(["prepare", "--config", config]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["rejections"]["by_reason"] == {"conflicting_label": 2}
    quarantine = pq.read_table(tmp_path / "out" / "quarantine").to_pylist()
    assert sorted((q["record"], q["raw"]) for q in quarantine) == [
        (101, '3000,1.5,"same words, twice",good'), (102, '3001,1.5,"same words, twice",bad')]
    # Fixed (both are good) and fed back under the file's header, they read as the rows they were.
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("id,score,text,label\n" + "".join(q["raw"].replace(",bad", ",good") + "\n" for q in quarantine))
    back = spark.read.csv(str(fixed), header=True, schema="id bigint, score double, text string, label string")
    assert sorted(tuple(r) for r in back.collect()) == [(3000, 1.5, "same words, twice", "good"),
                                                        (3001, 1.5, "same words, twice", "good")]
