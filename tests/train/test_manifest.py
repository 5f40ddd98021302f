import json
from pathlib import Path

import pytest

from sparkprep.errors import InputError
from sparkprep.train import load_manifest, make_loader


def test_a_dataset_without_manifest_is_refused_as_incomplete(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(InputError, match="no manifest.json in .*incomplete") as err:
        load_manifest(str(tmp_path))
    assert str(tmp_path) in str(err.value)


def test_an_unknown_format_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"format_version": 2}')
    with pytest.raises(InputError, match="format_version 2"):
        load_manifest(str(tmp_path))


def test_a_manifest_that_is_not_json_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"format_version": 1,')
    with pytest.raises(InputError, match=f"{tmp_path}/manifest.json is not valid JSON"):
        load_manifest(str(tmp_path))


def test_bare_relative_and_file_uri_paths_read_the_same_manifest(parquet_out: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(parquet_out.parent)
    by_path = load_manifest(str(parquet_out))
    assert by_path["split"]["k"] == 2
    assert load_manifest(f"file://{parquet_out}") == by_path
    assert load_manifest(parquet_out.name) == by_path


def test_a_blocked_runs_manifest_is_refused_naming_the_dataset_in_force(parquet_out: Path) -> None:
    # What prepare leaves under <out>/_blocked/<run_id>/ when validation stops it: never a dataset.
    blocked = parquet_out / "_blocked" / "20261129T040000Z-abcdef"
    blocked.mkdir(parents=True)
    (blocked / "manifest.json").write_text(json.dumps({
        "format_version": 1, "status": "blocked", "run_id": "20261129T040000Z-abcdef",
        "output": {"format": "parquet", "path": f"file://{parquet_out}", "published": False}}))
    with pytest.raises(InputError, match="run 20261129T040000Z-abcdef, which validation blocked") as err:
        make_loader(str(blocked), 0, "train")
    assert f"file://{parquet_out}" in str(err.value) and "report.html" in str(err.value)
    # The dataset beside it still reads.
    assert load_manifest(str(parquet_out))["split"]["k"] == 2
