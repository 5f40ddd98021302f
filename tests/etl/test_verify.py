"""The verifier finds each kind of contract violation in a hand-made dataset, and passes a good one."""

import json

import pytest

from sparkprep.cli import main
from sparkprep.verify import verify_output

# k = 2, classes a/b; holdout 0.25 → per class: a has 4 rows (1 holdout), b has 4 rows (1 holdout).
GOOD = [  # row_id, fold, replica, label_index
    (1, -1, 0, 0), (2, 0, 0, 0), (3, 1, 0, 0), (4, 0, 0, 0),
    (5, -1, 0, 1), (6, 0, 0, 1), (7, 1, 0, 1), (8, 1, 0, 1),
    (6, 0, 1, 1),  # a copy of row 6, in its original's fold: fold 0 holds 2 a + 1 b, 1 copy fills b up
    (3, 1, 1, 0),  # fold 1 holds 1 a + 2 b: one copy of row 3 (a) fills a up
]


def _manifest(rows):
    originals = [r for r in rows if r[2] == 0]
    per = {str(f): {c: sum(1 for r in originals if r[1] == f and r[3] == i) for i, c in enumerate("ab")}
           for f in (-1, 0, 1)}
    return {"format_version": 1,
            "output": {"format": "parquet", "data_path": "data", "partition_by": ["fold"], "delta_version": None},
            "rows": {"input": len(originals) + 3, "rejected": 2, "duplicates": 1, "output": len(originals),
                     "replicas": len(rows) - len(originals)},
            "classes": ["a", "b"], "split": {"k": 2, "holdout_fraction": 0.25, "seed": 1},
            "counts": {"per_fold_per_class": per}, "rebalance": {"method": "oversample", "target": 1.0}}


def _write(spark, tmp_path, rows, manifest=None):
    out = tmp_path / "out"
    df = spark.createDataFrame(rows, "row_id long, fold int, replica int, label_index int")
    df.write.partitionBy("fold").parquet(str(out / "data"))
    (out / "manifest.json").write_text(json.dumps(manifest or _manifest(rows)))
    return str(out)


def test_a_good_dataset_passes(spark, tmp_path):
    verdict = verify_output(spark, _write(spark, tmp_path, GOOD))
    assert verdict.ok, verdict.violations
    assert len(verdict.checks) == 9


@pytest.mark.parametrize("rows, expected", [
    (GOOD + [(2, 1, 1, 0)], "one fold per row_id (copies in their original's fold): row_ids in more than one fold: 2"),
    (GOOD + [(99, 0, 1, 0)], "every copy has its original: copies without an original: 99"),
    (GOOD + [(6, 0, 2, 1)], "replicas as planned: fold 0: copies per class [0, 2], expected [0, 1] (originals [2, 1])"),
    (GOOD + [(1, -1, 1, 0)], "replicas as planned: 1 copies in the holdout (class 0)"),
    ([(r[0], 0, r[2], r[3]) if r[0] in (7, 8) else r for r in GOOD],
     "stratified: per-class fold counts within 1: class 'b' has [3, 0]"),
    ([r if r[0] != 1 else (1, 0, 0, 0) for r in GOOD], "holdout size per class: class 'a': 0 holdout rows, planned 1"),
])
def test_each_violation_is_found(spark, tmp_path, rows, expected):
    verdict = verify_output(spark, _write(spark, tmp_path, rows))
    assert any(v.startswith(expected) for v in verdict.violations), verdict.violations


def test_manifest_that_disagrees_with_the_data_is_found(spark, tmp_path):
    manifest = _manifest(GOOD)
    manifest["counts"]["per_fold_per_class"]["0"]["a"] += 1
    manifest["rows"]["input"] += 1
    manifest["rows"]["output"] += 1
    violations = verify_output(spark, _write(spark, tmp_path, GOOD, manifest)).violations
    assert any(v.startswith("manifest counts equal the data") for v in violations)
    assert any(v.startswith("output rows equal the data: data has 8 originals, manifest says 9") for v in violations)


def test_broken_accounting_is_found(spark, tmp_path):
    manifest = _manifest(GOOD)
    manifest["rows"]["duplicates"] = 0
    violations = verify_output(spark, _write(spark, tmp_path, GOOD, manifest)).violations
    assert violations == ["row accounting: input 11 != rejected 2 + duplicates 0 + output 8"]


def test_cli_exit_codes(spark, tmp_path, capsys):
    good = _write(spark, tmp_path / "good", GOOD)
    assert main(["verify", good]) == 0
    bad = _write(spark, tmp_path / "bad", GOOD + [(99, 0, 1, 0)])
    assert main(["verify", bad]) == 4
    out = capsys.readouterr()
    assert "FAIL  every copy has its original" in out.out and "2 violation(s)" in out.err  # the orphan is also an unplanned copy
    assert main(["verify", str(tmp_path / "nowhere")]) == 3
