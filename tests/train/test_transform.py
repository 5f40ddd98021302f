"""The trainer's appliers of transform.json: numpy (on the fly in make_loader) and the torch module
for serving agree with what Spark computes (fixture written by the ETL tests) to 1e-6."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from handmade import (BASE, K, ROWS, TRANSFORM, generated_rows, manifest_for, table_of, write_manifest, write_parquet_output,
                      write_standard_transform)
from sparkprep.errors import InputError
from sparkprep.train import Sampling, TransformModule, load_transform, make_loader
from sparkprep.transform import (ArrayParams, CategoricalParams, NumericParams, TransformParams,
                                 params_of, transform_document)

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "transform_awkward.json").read_text())
SETS = ["final", "0", "1", "2"]


def _params(name: str):
    return params_of(FIXTURE["transform"], None if name == "final" else int(name))


def _numpy_inputs() -> dict[str, np.ndarray]:
    raw = FIXTURE["inputs"]
    batch = {c: np.array([np.nan if v is None else v for v in raw[c]], dtype=np.float64) for c in ("a", "b", "c")}
    batch["cat"] = np.array(raw["cat"], dtype=object)
    batch["emb"] = np.array(raw["emb"], dtype=np.float64)
    return batch


@pytest.mark.parametrize("name", SETS)
def test_numpy_applier_equals_spark_and_leaves_nothing_nan(name):
    ours = _params(name).apply_numpy(_numpy_inputs())
    spark = FIXTURE["spark"][name]
    for column in ("a", "b", "c", "cat", "emb"):
        np.testing.assert_allclose(ours[column], np.array(spark[column], dtype=np.float64), rtol=0, atol=1e-6)
        assert np.isfinite(ours[column]).all(), column


@pytest.mark.parametrize("name", SETS)
def test_scripted_torch_module_equals_spark_and_numpy(name):
    module = torch.jit.script(TransformModule(_params(name)))
    batch = _numpy_inputs()
    numeric = {c: torch.from_numpy(batch[c]) for c in ("a", "b", "c")}
    # Serving has no null strings: a missing category arrives as "" and lands in the unknown bucket.
    categorical = {"cat": ["" if v is None else v for v in batch["cat"]]}
    out = module(numeric, categorical, {"emb": torch.from_numpy(batch["emb"])})
    spark = FIXTURE["spark"][name]
    for column in ("a", "b", "c", "cat", "emb"):
        assert out[column].dtype == torch.float64
        np.testing.assert_allclose(out[column].numpy(), np.array(spark[column]), rtol=0, atol=1e-6)
        assert torch.isfinite(out[column]).all(), column


def test_unknown_categories_at_serving_go_to_the_unknown_bucket():
    params = _params("final")
    module = torch.jit.script(TransformModule(params))
    vocabulary = params.categorical[0].vocabulary
    out = module({}, {"cat": ["never-seen", "", vocabulary[0], "A" if "A" not in vocabulary else "?"]}, {})["cat"]
    assert out.argmax(dim=1).tolist() == [0, 0, 1, 0]
    assert out.sum(dim=1).tolist() == [1.0] * 4


@pytest.fixture
def transformed_out(tmp_path: Path) -> Path:
    """ROWS with transform.json by hand: fold 0 standardises num_0 by (10, 2), fold 1 by (20, 4),
    final by fold 0's; num_1 by (0, 1)."""
    out = tmp_path / "out"
    write_parquet_output(out, table_of(ROWS))
    write_manifest(out, manifest_for("parquet"))
    mean = {0: {"num_0": 10.0, "num_1": 0.0}, 1: {"num_0": 20.0, "num_1": 0.0}}
    std = {0: {"num_0": 2.0, "num_1": 1.0}, 1: {"num_0": 4.0, "num_1": 1.0}}
    write_standard_transform(out, mean, std)
    return out


def _read(out: Path, fold: int, split: str, transform: str | None) -> dict[int, tuple[float, float]]:
    rows = {}
    with make_loader(str(out), fold, split, columns=["row_id", "num_0", "num_1"], batch_size=3,
                     sampling=Sampling(shuffle=False), transform=transform) as loader:
        for batch in loader:
            for r, a, b in zip(batch["row_id"].tolist(), batch["num_0"].tolist(), batch["num_1"].tolist()):
                rows[r - 2**60] = (a, b)
    return rows


@pytest.mark.parametrize("fold, split, transform, mean, std", [
    (0, "train", "fold", 10.0, 2.0), (0, "val", "fold", 10.0, 2.0),
    (1, "train", "fold", 20.0, 4.0), (1, "val", "fold", 20.0, 4.0),
    (1, "test", "final", 10.0, 2.0), (0, "final", "final", 10.0, 2.0)])
def test_loader_applies_the_folds_or_the_final_parameters(transformed_out, fold, split, transform, mean, std):
    raw = _read(transformed_out, fold, split, None)
    got = _read(transformed_out, fold, split, transform)
    assert got.keys() == raw.keys() and raw
    for row_id, (a, b) in raw.items():
        # num_0 is null on row_ids divisible by 5: filled with the mean, so 0 after standardising
        expected = 0.0 if math.isnan(a) else (a - mean) / std
        assert got[row_id] == (pytest.approx(expected, abs=1e-12), pytest.approx(b, abs=1e-12))


def test_loader_without_transform_json_says_what_to_do(parquet_out):
    with pytest.raises(InputError, match="no transform.json"):
        make_loader(str(parquet_out), 0, "train", transform="fold")
    with pytest.raises(InputError, match="unknown transform"):
        make_loader(str(parquet_out), 0, "train", transform="standard")


def test_load_transform_picks_the_fold(transformed_out):
    assert load_transform(str(transformed_out), 1).numeric[0].center == 20.0
    assert load_transform(str(transformed_out), None).fitted_on == "final"


def _awkward_params(name: str, shift: float) -> TransformParams:
    """num_0: log1p, clipped, filled; num_1: clipped to [-150, -3], centred on -100, scaled by 97 + shift;
    label: one-hot with class_0 unknown; emb: centred and scaled per position."""
    return TransformParams(name, numeric=(
        NumericParams("num_0", "robust", True, 1.5 + shift, 0.5, 5.0, 2.0 + shift, 0.7, 100),
        NumericParams("num_1", "minmax", False, 0.0, -150.0, -3.0, -100.0, 97.0 + shift, 100)),
        categorical=(CategoricalParams("label", "onehot", ("class_1",)),),
        arrays=(ArrayParams("emb", "standard", True, (50.0 + shift, 0.5), (30.0, 0.25)),))


@pytest.fixture(scope="module")
def awkward_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~400 rows with copies, k=3, 2-3 files per fold in row groups of 7; fold k's transform differs
    from the others' and from the final one."""
    out = tmp_path_factory.mktemp("awkward") / "out"
    write_parquet_output(out, table_of(generated_rows()), files={-1: 2, 0: 3, 1: 2, 2: 3}, row_group_size=7)
    write_manifest(out, manifest_for("parquet", k=K))
    folds = {k: _awkward_params(str(k), k + 1.0) for k in range(K)}
    (out / TRANSFORM).write_text(json.dumps(transform_document(_awkward_params("final", 0.0), folds)))
    return out


def _transformed_rows(out: Path, fold: int, split: str, transform: str, backend: str) -> list[tuple]:
    """(row_id - BASE, num_0, num_1, emb_0, emb_1, label one-hot 0, 1, label_index) of every row the
    loader yields, sorted: a multiset."""
    rows = []
    with make_loader(str(out), fold, split, columns=["row_id", "num_0", "num_1", "emb", "label"], batch_size=16,
                     sampling=Sampling(seed=5), transform=transform, backend=backend) as loader:
        for b in loader:
            rows += zip((b["row_id"] - BASE).tolist(), b["num_0"].tolist(), b["num_1"].tolist(),
                        *b["emb"].T.tolist(), *b["label"].T.tolist(), b["label_index"].tolist())
    return sorted(rows)


@pytest.mark.parametrize(("split", "fold", "transform", "shift"), [
    ("train", 0, "fold", 1.0), ("val", 2, "fold", 3.0), ("final", 0, "final", 0.0), ("test", 0, "final", 0.0)])
def test_both_backends_yield_the_same_transformed_rows(awkward_out, split, fold, transform, shift):
    arrow, petastorm = (_transformed_rows(awkward_out, fold, split, transform, b) for b in ("arrow", "petastorm"))
    assert arrow and len(arrow) == len(petastorm)
    assert [r[0] for r in arrow] == [r[0] for r in petastorm]
    np.testing.assert_allclose(np.array(petastorm)[:, 1:], np.array(arrow)[:, 1:], rtol=0, atol=1e-6)
    for rows in (arrow, petastorm):
        # num_1 = -row_id, by hand: clipped to [-150, -3], minus -100, over 97 + shift
        np.testing.assert_allclose([r[2] for r in rows], [(min(max(-r[0], -150), -3) + 100) / (97 + shift)
                                                          for r in rows], rtol=0, atol=1e-12)
        assert np.isfinite(np.array(rows)).all()  # num_0's nulls filled
        assert [(r[5], r[6]) for r in rows] == [(1.0, 0.0) if r[7] == 0 else (0.0, 1.0) for r in rows]
