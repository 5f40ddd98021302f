"""The verifier finds each kind of contract violation in a hand-made dataset, and passes a good one."""

import json
import math
import shutil

import numpy as np
import pytest

from sparkprep.cli import main
from sparkprep.transform import NumericParams, TransformParams, transform_document
from sparkprep.publish.verify import verify_output

# k = 2, classes a/b; holdout 0.25 → per class: a has 4 rows (1 holdout), b has 4 rows (1 holdout).
GOOD = [  # row_id, fold, replica, label_index
    (1, -1, 0, 0), (2, 0, 0, 0), (3, 1, 0, 0), (4, 0, 0, 0),
    (5, -1, 0, 1), (6, 0, 0, 1), (7, 1, 0, 1), (8, 1, 0, 1),
    (6, 0, 1, 1),  # a copy of row 6, in its original's fold: fold 0 holds 2 a + 1 b, 1 copy fills b up
    (3, 1, 1, 0),  # fold 1 holds 1 a + 2 b: one copy of row 3 (a) fills a up
]


TRANSFORM = "transform-handmade.json"
NORMALISE = {"numeric": {"method": "standard", "impute": "mean", "clip": None, "log1p": False},
             "numeric_columns": {"y": {"method": "robust", "impute": "median", "clip": None, "log1p": False}},
             "sketch_k": 200}


def _x(row_id, replica):
    """Feature x of a row; a copy carries a wild value, so a statistic that counted copies would move."""
    return float(row_id) * 1.5 if replica == 0 else 1e9


def _y(row_id, replica):
    return float(row_id) ** 2 if replica == 0 else -1e9


def _transform(rows, k=2):
    """The transform by hand with numpy: x standard (fill = mean), y robust (fill = median; KLL
    is exact on so few values and returns a data value, numpy's inverted_cdf)."""
    def params(name, fold):
        train = [r for r in rows if r[2] == 0 and r[1] not in (-1, fold)]
        x, y = np.array([_x(r[0], 0) for r in train]), np.array([_y(r[0], 0) for r in train])
        q25, q50, q75 = np.quantile(y, [0.25, 0.5, 0.75], method="inverted_cdf")
        return TransformParams(name, numeric=(
            NumericParams("x", "standard", False, x.mean(), -math.inf, math.inf, x.mean(), x.std(), len(x)),
            NumericParams("y", "robust", False, q50, -math.inf, math.inf, q50, q75 - q25, len(y))), rows=len(train))
    return transform_document(params("final", None), {f: params(str(f), f) for f in range(k)})


def _manifest(rows):
    originals = [r for r in rows if r[2] == 0]
    per = {str(f): {c: sum(1 for r in originals if r[1] == f and r[3] == i) for i, c in enumerate("ab")}
           for f in (-1, 0, 1)}
    return {"format_version": 1,
            "output": {"format": "parquet", "data_path": "data", "partition_by": ["fold"], "delta_version": None},
            "rows": {"input": len(originals) + 3, "rejected": 2, "duplicates": 1, "output": len(originals),
                     "replicas": len(rows) - len(originals)},
            "classes": ["a", "b"], "class_counts": {c: sum(per[f][c] for f in per) for c in "ab"},
            "split": {"k": 2, "holdout_fraction": 0.25, "seed": 1},
            "counts": {"per_fold_per_class": per}, "rebalance": {"method": "oversample", "target": 1.0},
            "config": {"normalise": NORMALISE}, "normalisation": {"transform": {"path": TRANSFORM}}}


def _write(spark, tmp_path, rows, manifest=None, transform=None):
    out = tmp_path / "out"
    df = spark.createDataFrame([(*r, _x(r[0], r[2]), _y(r[0], r[2])) for r in rows],
                               "row_id long, fold int, replica int, label_index int, x double, y double")
    df.write.partitionBy("fold").parquet(str(out / "data"))
    (out / "manifest.json").write_text(json.dumps(manifest or _manifest(rows)))
    (out / TRANSFORM).write_text(json.dumps(transform or _transform(rows)))
    return str(out)


def test_a_good_dataset_passes(spark, tmp_path):
    verdict = verify_output(spark, _write(spark, tmp_path, GOOD))
    assert verdict.ok, verdict.violations
    assert len(verdict.checks) == 18


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


def _tampered(change):
    document = _transform(GOOD)
    change(document)
    return document


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["folds"]["0"]["numeric"][0].update(center=d["folds"]["0"]["numeric"][0]["center"] + 0.5),
     "transform: mean, std, min, max recomputed from the data (rel 1e-6): fold 0 x center is 9.5, the data gives 9.0"),
    (lambda d: d["final"]["numeric"][0].update(scale=d["final"]["numeric"][0]["scale"] * (1 + 1e-5)),
     "transform: mean, std, min, max recomputed from the data (rel 1e-6): final x scale is"),
    (lambda d: d["folds"].pop("1"), "transform: parameters of folds 0..k-1 and final: no parameters for fold 1"),
    (lambda d: d["folds"]["1"]["numeric"][0].pop("center"),
     "transform: parameters of folds 0..k-1 and final: fold 1: malformed parameters (KeyError: 'center')"),
    (lambda d: d["final"].update(rows=7),
     "transform: fitted on the training originals (rows, present values): final: fitted on 7 rows, the data has 6"),
    (lambda d: d["folds"]["1"]["numeric"][1].update(center=36.0),  # the largest training y: rank 1, not 0.5
     "transform: quantiles within the KLL sketch's rank error: fold 1 y center (median) 36.0 has rank [0.6667, 1.0000]"),
])
def test_a_tampered_transform_fails_verification(spark, tmp_path, change, expected):
    verdict = verify_output(spark, _write(spark, tmp_path, GOOD, transform=_tampered(change)))
    assert any(v.startswith(expected) for v in verdict.violations), verdict.violations
    assert len(verdict.violations) == 1, verdict.violations


def test_a_missing_transform_file_fails_verification_through_the_cli(spark, tmp_path, capsys):
    out = _write(spark, tmp_path, GOOD)
    (tmp_path / "out" / TRANSFORM).unlink()
    assert main(["verify", out]) == 4
    assert f"FAIL  transform: the file the manifest names is present\n      {out}/{TRANSFORM} is missing" in \
        capsys.readouterr().out.replace("file://", "")


# GOOD's originals, undersampled with target 1: fold 0 holds a 2 (ids 2, 4) / b 1, so one a is
# skipped (4); fold 1 holds a 1 / b 2 (ids 7, 8), so one b is skipped (8). in_train last.
UNDER = [(*r, r[0] not in (4, 8)) for r in GOOD if r[2] == 0]


def _write_undersampled(spark, tmp_path, rows, manifest=None):
    """UNDER-like rows written with their in_train column, and a manifest that says undersample."""
    out = tmp_path / "out"
    df = spark.createDataFrame([(*r, _x(r[0], r[2]), _y(r[0], r[2])) for r in rows],
                               "row_id long, fold int, replica int, label_index int, in_train boolean, x double, y double")
    df.write.partitionBy("fold").parquet(str(out / "data"))
    if manifest is None:
        manifest = _manifest([r[:4] for r in rows])
        manifest["rebalance"] = {"method": "undersample", "target": 1.0}
        manifest["counts"]["undersampled_per_fold_per_class"] = {"0": {"a": 1, "b": 0}, "1": {"a": 0, "b": 1}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / TRANSFORM).write_text(json.dumps(_transform([r[:4] for r in rows])))
    return str(out)


def test_a_good_undersampled_dataset_passes(spark, tmp_path):
    verdict = verify_output(spark, _write_undersampled(spark, tmp_path, UNDER))
    assert verdict.ok, verdict.violations
    assert "undersampling as planned (training portions balanced to the target)" in verdict.checks


@pytest.mark.parametrize("change, expected", [
    (lambda r: r[:4] + (False,) if r[0] == 1 else r,
     "1 holdout rows with in_train false (class 0): the holdout is never resampled"),
    (lambda r: r[:4] + (True,) if r[0] == 8 else r,
     "fold 1: originals in training per class [1, 2], expected [1, 1] (originals [1, 2])"),
    (lambda r: r[:4] + (False,) if r[0] == 6 else r,
     "fold 0: originals in training per class [1, 0], expected [1, 1] (originals [2, 1])"),
])
def test_a_tampered_undersampling_fails_verification(spark, tmp_path, change, expected):
    violations = verify_output(spark, _write_undersampled(spark, tmp_path, [change(r) for r in UNDER])).violations
    assert any(v == f"undersampling as planned (training portions balanced to the target): {expected}"
               for v in violations), violations


def test_an_undersampled_copy_and_a_missing_column_are_found(spark, tmp_path):
    copy = verify_output(spark, _write_undersampled(spark, tmp_path / "copy", UNDER + [(6, 0, 1, 1, False)]))
    assert any("1 copies (replica > 0) with in_train false in fold 0 (class 1)" in v for v in copy.violations)
    manifest = _manifest(GOOD)
    manifest["rebalance"] = {"method": "undersample", "target": 1.0}
    missing = verify_output(spark, _write(spark, tmp_path / "missing", GOOD, manifest))
    assert any("the data has no in_train column, but the manifest says rebalance.method undersample" in v
               for v in missing.violations)


@pytest.fixture(scope="module")
def prepared(spark, tmp_path_factory):
    """One real output (demo config, oversampled), produced once; each case edits a copy."""
    base = ["--set", "spark.master=local[2]", "--set", "spark.shuffle_partitions=4"]
    root = tmp_path_factory.mktemp("prepared")
    assert main(["generate", *base, "--set", "generate.rows=1000", "--set", f"generate.path={root / 'raw'}"]) == 0
    assert main(["prepare", *base, "--set", f"input.paths=[{root / 'raw'}]", "--set", f"output.path={root / 'out'}"]) == 0
    return root / "out"


def _scaled(i, factor):
    return lambda values: [v * factor if j == i else v for j, v in enumerate(values)]


def _plus(key, n=1):
    return lambda d: {**d, key: d[key] + n}


# Each number of the manifest that the data determines, edited in turn: (dotted key, edit, what
# verify must say). The first three were caught before verify re-derived weights, priors,
# replica/undersampling/per-fold counts, normalisation statistics and the quarantine's counts.
EDITS = [
    ("rows.input", lambda n: n + 1, "FAIL  row accounting"),
    ("counts.per_fold_per_class.0", _plus("class_0"), "counts.per_fold_per_class"),
    ("counts.undersampled_per_fold_per_class.0", _plus("class_0"), "undersampled_per_fold_per_class"),
    ("class_weights.folds.0", lambda w: [1, 5, 1], "class_weights.folds.0"),
    ("class_weights.final", _scaled(1, 1.01), "class_weights.final"),
    ("class_priors.final", _scaled(0, 1.001), "class_priors.final"),  # balanced classes: reversing changes nothing
    ("class_priors.folds.2", _scaled(0, 0.999), "class_priors.folds.2"),
    ("counts.replicas_per_fold_per_class.1", _plus("class_1"), "counts.replicas_per_fold_per_class"),
    ("rows.replicas", lambda n: n + 1, "rows.replicas"),
    ("rows.by_fold", _plus("0"), "rows.by_fold"),
    ("rows.undersampled", lambda n: n + 2, "rows.undersampled"),
    ("normalisation.final.num_1", lambda m: {**m, "mean": m["mean"] + m["std"] / 1000}, "normalisation.final.num_1.mean"),
    ("normalisation.folds.3.num_2", lambda m: {**m, "std": m["std"] * 1.001}, "normalisation.folds.3.num_2.std"),
    ("normalisation.folds.0.num_0", _plus("count", -1), "normalisation.folds.0.num_0.count"),
    ("rejections.by_reason", lambda d: {**d, "missing_label": d.get("missing_label", 0) + 1}, "rejections.by_reason"),
    ("rejections.by_column", lambda cs: [{**cs[0], "rows": cs[0]["rows"] + 1}, *cs[1:]], "rejections.by_column"),
    ("quarantine.rows", lambda n: n - 1, "quarantine.rows"),
    ("class_counts", _plus("class_1"), "class_counts"),
]


def test_the_untouched_output_passes(prepared, capsys):
    assert main(["verify", str(prepared)]) == 0


@pytest.mark.parametrize("key, edit, named", EDITS, ids=[e[0] for e in EDITS])
def test_every_derivable_manifest_number_is_checked(spark, prepared, tmp_path, capsys, key, edit, named):
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    manifest = json.loads((out / "manifest.json").read_text())
    *parents, leaf = key.split(".")
    holder = manifest
    for part in parents:
        holder = holder[part]
    holder[leaf] = edit(holder[leaf])
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert main(["verify", str(out)]) == 4
    said = capsys.readouterr().out
    assert named in said, said


def _grouped(rows, deviation, reachable):
    """GOOD-like rows with the manifest of a group split that reports `deviation` and `reachable`."""
    manifest = _manifest(rows)
    manifest["split"].update({"method": "group-stratified-blocks", "group_placement": "greedy",
                              "group_within_one_reachable": reachable, "group_deviation_rows": deviation})
    return manifest


WITHIN_1 = "within 1 where the groups allow it (group_within_one_reachable)"
DEVIATION = "stratified as well as groups allow (deviation as reported)"
B_IN_FOLD_0 = [(r[0], 0, r[2], r[3]) if r[0] in (7, 8) else r for r in GOOD]  # b: 3 / 0 in folds 0 / 1
A_NOT_HELD = [r if r[0] != 1 else (1, 0, 0, 0) for r in GOOD]  # a: 0 held, 3 / 1 in folds 0 / 1


def test_a_good_group_split_passes(spark, tmp_path):
    # GOOD: a 2 / 1 and b 1 / 2 in folds 0 / 1 (ideal 1.5: deviation 0.5), 1 of 4 held out per class.
    verdict = verify_output(spark, _write(spark, tmp_path, GOOD, _grouped(GOOD, 0.5, True)))
    assert verdict.ok, verdict.violations
    assert WITHIN_1 in verdict.checks and DEVIATION in verdict.checks


@pytest.mark.parametrize("rows, deviation, reachable, expected", [
    (GOOD, 0.0, True, f"{DEVIATION}: class 'a': [2, 1] in folds 0..1 deviate by 0.5 rows, the manifest reports 0.0"),
    (GOOD, 1.5, True, f"{DEVIATION}: the data deviate by at most 0.5 rows, the manifest reports 1.5"),
    (B_IN_FOLD_0, 1.5, True, f"{WITHIN_1}: class 'b' has [3, 0] rows in folds 0..1"),
    (A_NOT_HELD, 1.0, True, f"{WITHIN_1}: class 'a': 0 holdout rows, planned 1"),
])
def test_a_tampered_group_split_fails_verification(spark, tmp_path, rows, deviation, reachable, expected):
    violations = verify_output(spark, _write(spark, tmp_path, rows, _grouped(rows, deviation, reachable))).violations
    assert expected in violations, violations


def test_a_group_split_the_groups_kept_from_within_1_passes_with_its_deviation(spark, tmp_path):
    violations = verify_output(spark, _write(spark, tmp_path, B_IN_FOLD_0, _grouped(B_IN_FOLD_0, 1.5, False))).violations
    assert not [v for v in violations if v.startswith((WITHIN_1, DEVIATION))], violations
