"""Fixtures: a hand-written Parquet output, and a reader of the rows a loader yields."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from handmade import BASE, ROWS, manifest_for, table_of, write_manifest, write_parquet_output, write_separable_output


def pytest_configure(config: pytest.Config) -> None:
    # Petastorm 0.12 drives pyarrow's deprecated legacy dataset API; the warnings are not ours.
    config.addinivalue_line("filterwarnings", "ignore::FutureWarning:petastorm")
    config.addinivalue_line("filterwarnings", "ignore:The given NumPy array is not writable:UserWarning")


@pytest.fixture
def parquet_out(tmp_path: Path) -> Path:
    """ROWS as a Parquet output (2 files in fold 0), plus the debris a reader must skip."""
    out = tmp_path / "out"
    write_parquet_output(out, table_of(ROWS), files={0: 2})
    # Spark's marker, checksum side files and an abandoned attempt: never data.
    junk = table_of([(0, 99, 0, 0)]).drop(["fold"])
    (out / "data" / "_SUCCESS").write_text("")
    pq.write_table(junk, out / "data" / "fold=0" / ".part-00000.snappy.parquet.crc")
    pq.write_table(junk, out / "data" / "fold=0" / "_part-00009.snappy.parquet")
    (out / "data" / "_temporary" / "fold=0").mkdir(parents=True)
    pq.write_table(junk, out / "data" / "_temporary" / "fold=0" / "part-00000.snappy.parquet")
    write_manifest(out, manifest_for("parquet"))
    return out


@pytest.fixture
def separable_out(tmp_path: Path) -> Path:
    """A learnable two-class output (handmade.separable_table): rows sorted by class in one-class row groups."""
    out = tmp_path / "out"
    write_separable_output(out)
    return out


@pytest.fixture
def read_rows() -> Callable[..., list[tuple[int, int]]]:
    """All (row_id - BASE, replica) pairs a loader yields, as a sorted list (a multiset)."""
    from sparkprep.train import make_loader

    def read(out: Path | str, fold: int = 0, split: str = "train", **kwargs: Any) -> list[tuple[int, int]]:
        pairs = []
        with make_loader(str(out), fold, split, columns=["row_id", "replica"], batch_size=4, **kwargs) as loader:
            for batch in loader:
                pairs += zip((batch["row_id"] - BASE).tolist(), batch["replica"].tolist())
        return sorted(pairs)

    return read
