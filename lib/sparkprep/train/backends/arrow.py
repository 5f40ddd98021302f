"""The native backend: one split read with pyarrow, row group by row group, into torch tensors.

Memory per rank is bounded by the shuffle window: with shuffle, at most 2 x (window_rows + the
rows of one row group) decoded rows of the selected columns (a window and its permuted copy);
without shuffle, one row group plus one batch.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkprep.errors import ContractError, InputError
from sparkprep.train.batching import Block
from sparkprep.train.files import RowFilter
from sparkprep.train.location import OutputLocation
from sparkprep.train.backends.base import ShardedLoader
from sparkprep.train.sharding import Shard, Unit

log = logging.getLogger(__name__)
# Batches share the decoded Arrow buffers (zero-copy), which numpy marks read-only; they belong to
# this loader alone, so torch's warning about them says nothing to act on.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", module=__name__)


@dataclass(frozen=True)
class Source:
    """A data file: the filesystem it is on, its path there, and its URL for messages."""

    fs: pafs.FileSystem
    path: str
    url: str

    @classmethod
    def of(cls, location: OutputLocation, url: str) -> Source:
        if url.startswith(location.url + "/"):
            return cls(location.fs, location.path_of(url[len(location.url) + 1:]), url)
        fs, path = pafs.FileSystem.from_uri(url)  # a Delta add action with an absolute URL
        return cls(fs, path, url)

    def open(self) -> pq.ParquetFile:
        return pq.ParquetFile(self.path, filesystem=self.fs)


def count_units(sources: Sequence[Source], keep: RowFilter | None) -> list[Unit]:
    """The row groups of the files and the rows the split reads from each, from Parquet metadata.

    With a filter (val/test: originals only; train/final of an undersampled run: in_train only)
    the counts must be known before sharding so that ranks stay equal: a row group whose
    statistics of the filter column say every row matches counts all its rows without a read, one
    whose statistics exclude the value counts none; any other reads that column alone (4 bytes a
    row for `replica`, 1 bit for `in_train`) and counts the matches.
    """
    units = []
    for index, source in enumerate(sources):
        file = source.open()
        for group in range(file.metadata.num_row_groups):
            rows = file.metadata.row_group(group).num_rows
            if keep and rows:
                rows = _kept_in(file, group, rows, keep)
            units.append(Unit(file=index, row_group=group, rows=rows))
    return units


def _kept_in(file: pq.ParquetFile, group: int, rows: int, keep: RowFilter) -> int:
    meta = file.metadata.row_group(group)
    for i in range(meta.num_columns):
        column = meta.column(i)
        if column.path_in_schema == keep.column and column.is_stats_set and column.statistics.has_min_max:
            stats = column.statistics
            if stats.min == stats.max == keep.value and stats.null_count == 0:
                return rows
            if not stats.min <= keep.value <= stats.max:
                return 0
    table = file.read_row_group(group, columns=[keep.column])
    return int(pc.sum(keep.mask(table)).as_py() or 0)


def check_columns(source: Source, columns: Sequence[str]) -> None:
    """Refuse what cannot become a tensor (strings, nested lists) before the first epoch."""
    schema = source.open().schema_arrow
    for name in columns:
        kind = schema.field(name).type
        element = kind.value_type if _is_list(kind) else kind
        if not (pa.types.is_integer(element) or pa.types.is_floating(element) or pa.types.is_boolean(element)):
            raise InputError(f"column {name!r} of {source.url} is {kind}: the loader yields tensors "
                             f"of numbers and fixed-length lists of numbers; leave it out of columns=")


class ArrowLoader(ShardedLoader):
    """The shard's pieces read with pyarrow, row group by row group; see `ShardedLoader`."""

    def __init__(self, sources: Sequence[Source], units: Sequence[Unit], columns: Sequence[str], *,
                 keep: RowFilter | None, **common: Any) -> None:
        self._sources, self._keep = tuple(sources), keep
        self._read = (*columns, keep.column) if keep and keep.column not in columns else tuple(columns)
        super().__init__(units, columns, **common)

    def _blocks(self, shard: Shard, epoch: int) -> Iterator[Block]:
        opened: tuple[int, pq.ParquetFile] | None = None
        for piece in shard.pieces:
            unit = piece.unit
            if opened is None or opened[0] != unit.file:
                opened = (unit.file, self._sources[unit.file].open())
            table = opened[1].read_row_group(unit.row_group, columns=list(self._read))
            if self._keep:
                table = table.filter(self._keep.mask(table))
            table = table.slice(piece.start, piece.stop - piece.start)
            yield {name: _to_numpy(table.column(name), name, self._sources[unit.file]) for name in self._columns}


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _to_numpy(column: pa.ChunkedArray, name: str, source: Source) -> np.ndarray:
    """Numbers keep their stored dtype (numeric nulls become NaN); a fixed-length list becomes 2-D."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not _is_list(array.type):
        return array.to_numpy(zero_copy_only=False)
    if array.null_count:
        raise ContractError(f"column {name!r} of {source.url} has null lists: array features must be "
                            f"fixed-length lists to become a 2-D tensor")
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
    else:
        lengths = np.diff(array.offsets.to_numpy())
        width = int(lengths[0]) if len(lengths) else 0
        if len(lengths) and (lengths != width).any():
            raise ContractError(f"column {name!r} of {source.url} has lists of lengths {lengths.min()} to "
                                f"{lengths.max()}: array features must have one fixed length")
    return array.flatten().to_numpy(zero_copy_only=False).reshape(len(array), width)
