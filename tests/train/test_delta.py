"""Delta output: readers read the snapshot the manifest pins, never a file another version added or removed."""

from pathlib import Path

import pytest
from deltalake import DeltaTable, write_deltalake

from handmade import ROWS, manifest_for, table_of, write_manifest
from sparkprep.errors import InputError
from sparkprep.train import DatasetFiles, load_manifest, make_loader
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
