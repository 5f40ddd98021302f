"""Each split reads exactly the rows DESIGN.md assigns to it; expected rows are derived by hand."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sparkprep.errors import ContractError, InputError
from sparkprep.train import DatasetFiles, Sampling, load_manifest, make_loader
from sparkprep.train.files import ORIGINALS
from sparkprep.train.loader import BACKENDS
from handmade import manifest_for, write_manifest

# (row_id - BASE, replica) by fold, from conftest.ROWS.
HOLDOUT = [(1, 0), (2, 0), (3, 0), (3, 1)]
FOLD_0 = [(10, 0), (11, 0), (12, 0), (13, 0), (10, 1), (11, 1)]
FOLD_1 = [(20, 0), (21, 0), (22, 0), (23, 0), (20, 1), (20, 2)]


def originals(rows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [r for r in rows if r[1] == 0]


EXPECTED = {
    # train = fold not in {k, -1}, replicas included
    ("train", 0): FOLD_1,
    ("train", 1): FOLD_0,
    # val = fold == k and replica == 0
    ("val", 0): originals(FOLD_0),
    ("val", 1): originals(FOLD_1),
    # final = fold != -1, replicas included; test = fold == -1 and replica == 0
    ("final", 0): FOLD_0 + FOLD_1,
    ("test", 0): originals(HOLDOUT),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("split", "fold"), sorted(EXPECTED))
def test_each_split_reads_exactly_the_rows_the_contract_assigns(parquet_out: Path, read_rows, split: str,
                                                                fold: int, backend: str) -> None:
    assert read_rows(parquet_out, fold, split, backend=backend) == sorted(EXPECTED[split, fold])


@pytest.mark.parametrize("backend", BACKENDS)
def test_val_and_test_drop_replicas_while_train_keeps_them(parquet_out: Path, read_rows, backend: str) -> None:
    assert {rep for _, rep in read_rows(parquet_out, 0, "train", backend=backend)} == {0, 1, 2}
    assert {rep for _, rep in read_rows(parquet_out, 0, "val", backend=backend)} == {0}
    assert {rep for _, rep in read_rows(parquet_out, 0, "test", backend=backend)} == {0}


def test_only_the_directories_of_the_selected_folds_are_listed(parquet_out: Path) -> None:
    manifest = load_manifest(str(parquet_out))
    files = DatasetFiles.for_split(str(parquet_out), manifest, "val", fold=0)
    data = f"file://{parquet_out}/data"
    assert files.urls == (f"{data}/fold=0/part-00000.snappy.parquet", f"{data}/fold=0/part-00001.snappy.parquet")
    assert files.keep == ORIGINALS
    train = DatasetFiles.for_split(str(parquet_out), manifest, "train", fold=1)
    assert train.urls == files.urls and train.keep is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("split", "fold"), [("train", 2), ("val", 2), ("train", -1), ("val", -1)])
def test_a_fold_outside_0_to_k_minus_1_is_refused(parquet_out: Path, split: str, fold: int, backend: str) -> None:
    with pytest.raises(InputError, match=f"fold {fold} is out of range.*k=2"):
        make_loader(str(parquet_out), fold, split, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dataset_without_manifest_is_refused_as_incomplete(parquet_out: Path, backend: str) -> None:
    (parquet_out / "manifest.json").unlink()
    with pytest.raises(InputError, match=f"no manifest.json in file://{parquet_out}: the dataset is incomplete"):
        make_loader(str(parquet_out), 0, "train", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_ranks_than_rows_is_refused_clearly(parquet_out: Path, backend: str) -> None:
    with pytest.raises(InputError, match="3 row.*fewer than world_size=4"):
        make_loader(str(parquet_out), 0, "test", sampling=Sampling(rank=0, world_size=4), backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_columns_are_the_features_and_the_label_with_nulls_as_nan(parquet_out: Path, backend: str) -> None:
    with make_loader(str(parquet_out), 0, "val", batch_size=100, sampling=Sampling(shuffle=False),
                     backend=backend) as loader:
        (batch,) = list(loader)
    assert set(batch) == {"num_0", "num_1", "emb", "label_index"}
    order = (-batch["num_1"]).long().tolist()  # num_1 = -row_id
    assert sorted(order) == [10, 11, 12, 13]
    assert batch["emb"].shape == (4, 2)
    assert batch["emb"][:, 0].long().tolist() == order
    by_id = dict(zip(order, batch["num_0"].tolist()))
    assert by_id[10] != by_id[10] and by_id[11] == 11.0  # row 10 has a null num_0: NaN
    assert dict(zip(order, batch["label_index"].tolist())) == {10: 0, 11: 1, 12: 0, 13: 1}
    assert (batch["num_0"].dtype, batch["emb"].dtype, batch["label_index"].dtype) == (
        torch.float64, torch.float64, torch.int32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unknown_column_is_refused_by_name(parquet_out: Path, backend: str) -> None:
    with pytest.raises(InputError, match="unknown column.*nope"):
        make_loader(str(parquet_out), 0, "val", columns=["num_0", "nope"], backend=backend)


def test_a_split_without_files_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "data" / "fold=0").mkdir(parents=True)
    (out / "data" / "fold=1").mkdir(parents=True)
    write_manifest(out, manifest_for("parquet"))
    with pytest.raises(InputError, match="no Parquet files under"):
        make_loader(str(out), 0, "train")


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_trainer_never_imports_pyspark(parquet_out: Path, backend: str) -> None:
    code = ("import sys; from sparkprep.train import make_loader\n"
            f"with make_loader({str(parquet_out)!r}, 0, 'val', backend={backend!r}) as loader: "
            "rows = sum(len(b['label_index']) for b in loader)\n"
            "assert rows == 4, rows\n"
            "assert 'pyspark' not in sys.modules, 'pyspark was imported'\n")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_an_unknown_backend_is_refused(parquet_out: Path) -> None:
    with pytest.raises(InputError, match="unknown backend 'spark'"):
        make_loader(str(parquet_out), 0, "val", backend="spark")


def test_an_unknown_split_is_refused(parquet_out: Path) -> None:
    with pytest.raises(InputError, match="unknown split 'validation'"):
        make_loader(str(parquet_out), 0, "validation")


def test_a_fold_directory_the_manifest_does_not_know_breaks_the_contract(parquet_out: Path) -> None:
    (parquet_out / "data" / "fold=0").rename(parquet_out / "data" / "fold=5")
    with pytest.raises(ContractError, match=r"/data/fold=5/part-0000[01]\.snappy\.parquet is in fold 5, outside -1\.\.1"):
        make_loader(str(parquet_out), 1, "train")
