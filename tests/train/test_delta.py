"""Delta output: readers read the snapshot the manifest pins, never a file another version added or removed."""

from pathlib import Path

import pytest
from deltalake import DeltaTable, write_deltalake
from pyarrow.fs import LocalFileSystem

from handmade import (ROWS, manifest_for, table_of, transform_reference, write_manifest,
                      write_standard_transform)
from sparkprep.errors import InputError
from sparkprep.train import DatasetFiles, Sampling, load_manifest, load_transform, make_loader
from sparkprep.train.files import _delta_files
from sparkprep.train.location import OutputLocation
from sparkprep.train.loader import BACKENDS

V1_ROWS = [(f, r + 100, rep, y) for f, r, rep, y in ROWS if r % 2 == 0]


@pytest.fixture
def delta_out(tmp_path: Path) -> Path:
    """Version 0 holds ROWS; version 1 overwrites them with V1_ROWS (version 0's files stay on disk)."""
    out = tmp_path / "out"
    write_deltalake(str(out / "data"), table_of(ROWS), partition_by=["fold"])
    write_deltalake(str(out / "data"), table_of(V1_ROWS), partition_by=["fold"], mode="overwrite")
    return out


def pin(out: Path, version: int) -> None:
    write_manifest(out, manifest_for("delta", delta_version=version))


def expected(rows: list[tuple[int, int, int, int]], split: str, fold: int) -> list[tuple[int, int]]:
    keep = {"train": lambda f, rep: f not in (fold, -1), "val": lambda f, rep: f == fold and rep == 0,
            "test": lambda f, rep: f == -1 and rep == 0}[split]
    return sorted((r, rep) for f, r, rep, _ in rows if keep(f, rep))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("version", "rows"), [(0, ROWS), (1, V1_ROWS)])
@pytest.mark.parametrize(("split", "fold"), [("train", 0), ("train", 1), ("val", 0), ("val", 1), ("test", 0)])
def test_a_pinned_version_reads_exactly_that_snapshots_rows(delta_out: Path, read_rows, version: int,
                                                            rows: list, split: str, fold: int, backend: str) -> None:
    # Both versions' files are on disk: listing the directory would mix them.
    assert len(list((delta_out / "data").glob("fold=0/*.parquet"))) == 2
    pin(delta_out, version)
    assert read_rows(delta_out, fold, split, backend=backend) == expected(rows, split, fold)


def test_a_file_removed_by_the_pinned_version_is_never_read(delta_out: Path) -> None:
    def files_read() -> set[str]:
        manifest = load_manifest(str(delta_out))
        return {u for split in ("final", "test") for u in DatasetFiles.for_split(str(delta_out), manifest, split).urls}

    version_0 = {f"file://{p}" for p in DeltaTable(str(delta_out / "data"), version=0).file_uris()}
    pin(delta_out, 0)
    assert files_read() == version_0  # same spelling of URLs, so the check below can fail
    pin(delta_out, 1)
    assert files_read() and not files_read() & version_0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_vacuumed_version_is_refused_clearly(delta_out: Path, read_rows, backend: str) -> None:
    DeltaTable(str(delta_out / "data")).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    pin(delta_out, 1)
    assert read_rows(delta_out, 0, "train", backend=backend) == expected(V1_ROWS, "train", 0)
    pin(delta_out, 0)
    with pytest.raises(InputError, match="version 0 of the Delta table .* missing file.*vacuumed"):
        make_loader(str(delta_out), 0, "train", backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_version_the_log_does_not_have_is_refused_clearly(delta_out: Path, backend: str) -> None:
    pin(delta_out, 7)
    with pytest.raises(InputError, match="cannot load version 7 of the Delta table"):
        make_loader(str(delta_out), 0, "train", backend=backend)


def test_an_unreachable_object_store_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 9 (discard) on loopback refuses connections: delta-rs gives up after its retries (~5 s).
    for key, value in {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}.items():
        monkeypatch.setenv(key, value)
    location = OutputLocation(fs=LocalFileSystem(), path="/nowhere", url="s3://bucket/out")
    with pytest.raises(InputError, match="cannot reach the Delta table s3://bucket/out/data: .*AWS_ENDPOINT_URL"):
        _delta_files(location, "data", 0)


def test_a_pinned_version_reads_its_own_runs_transform(delta_out: Path) -> None:
    """Each run's parameters live in the file its manifest names: pinning the old version (its
    manifest) gives the old parameters even after a rerun wrote new ones beside them."""
    for version, mean in ((0, 10.0), (1, 20.0)):
        write_standard_transform(delta_out, {f: {"num_0": mean + f, "num_1": 0.0} for f in (0, 1)},
                                 {f: {"num_0": 2.0, "num_1": 1.0} for f in (0, 1)}, name=f"transform-run{version}.json")
    for version, mean in ((0, 10.0), (1, 20.0), (0, 10.0)):
        write_manifest(delta_out, manifest_for("delta", delta_version=version, normalisation={
            "method": "standard", "final": {}, "folds": {}, "transform": transform_reference(f"transform-run{version}.json")}))
        assert load_transform(str(delta_out), 1).numeric[0].center == mean + 1
        rows = {r: raw for r, raw in zip(*_num_0(delta_out, None))}
        got = dict(zip(*_num_0(delta_out, "fold")))
        assert got.keys() == rows.keys() and rows
        assert all(got[r] == pytest.approx(0.0 if raw != raw else (raw - mean - 1) / 2.0) for r, raw in rows.items())


def _num_0(out: Path, transform: str | None) -> tuple[list[int], list[float]]:
    ids, values = [], []
    with make_loader(str(out), 1, "val", columns=["row_id", "num_0"], batch_size=4,
                     sampling=Sampling(shuffle=False), transform=transform) as loader:
        for batch in loader:
            ids += batch["row_id"].tolist()
            values += batch["num_0"].tolist()
    return ids, values
