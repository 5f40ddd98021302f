"""The native backend: one split read with pyarrow, row group by row group, into torch tensors.

Memory per rank is bounded by the shuffle window: with shuffle, at most 2 x (window_rows + the
rows of one row group) decoded rows of the selected columns (a window and its permuted copy);
without shuffle, one row group plus one batch.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from sparkprep.errors import ContractError, InputError
from sparkprep.train.batching import Block, rebatch, shuffled_windows
from sparkprep.train.location import OutputLocation
from sparkprep.train.sharding import Shard, ShardSpec, Unit, epoch_rng, plan_shard

log = logging.getLogger(__name__)
# Batches share the decoded Arrow buffers (zero-copy), which numpy marks read-only; they belong to
# this loader alone, so torch's warning about them says nothing to act on.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", module=__name__)

REPLICA = "replica"
_WINDOW_STREAM = 1  # epoch_rng stream of the in-memory shuffle (stream 0 permutes row groups)


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


def count_units(sources: Sequence[Source], originals_only: bool) -> list[Unit]:
    """The row groups of the files and the rows the split reads from each, from Parquet metadata.

    For val/test (originals only) the counts must be known before sharding so that ranks stay
    equal: a row group whose `replica` statistics say max == 0 counts all its rows without a read;
    any other reads its `replica` column alone (4 bytes a row) and counts the zeros.
    """
    units = []
    for index, source in enumerate(sources):
        file = source.open()
        for group in range(file.metadata.num_row_groups):
            rows = file.metadata.row_group(group).num_rows
            if originals_only and rows:
                rows = _originals_in(file, group, rows)
            units.append(Unit(file=index, row_group=group, rows=rows))
    return units


def _originals_in(file: pq.ParquetFile, group: int, rows: int) -> int:
    meta = file.metadata.row_group(group)
    for i in range(meta.num_columns):
        column = meta.column(i)
        if column.path_in_schema == REPLICA and column.is_stats_set and column.statistics.has_min_max:
            if column.statistics.max == 0 and column.statistics.null_count == 0:
                return rows
            if column.statistics.min > 0:
                return 0
    replica = file.read_row_group(group, columns=[REPLICA]).column(REPLICA)
    return int(pc.sum(pc.equal(replica, 0)).as_py() or 0)


def check_columns(source: Source, columns: Sequence[str]) -> None:
    """Refuse what cannot become a tensor (strings, nested lists) before the first epoch."""
    schema = source.open().schema_arrow
    for name in columns:
        kind = schema.field(name).type
        element = kind.value_type if _is_list(kind) else kind
        if not (pa.types.is_integer(element) or pa.types.is_floating(element) or pa.types.is_boolean(element)):
            raise InputError(f"column {name!r} of {source.url} is {kind}: the arrow backend yields tensors "
                             f"of numbers and fixed-length lists of numbers; leave it out of columns=")


class ArrowLoader(IterableDataset):
    """Batches (dicts of torch tensors) of one rank's shard, epoch after epoch; see `make_loader`.

    `len()` is the number of batches per rank per epoch, equal on every rank. `dropped`/`padded`
    count the rows of the split left out or repeated so that ranks are equal.
    Use with `torch.utils.data.DataLoader(loader, batch_size=None)` (it batches itself) and
    `num_workers` 0 or 1: more workers would each read the same shard.
    """

    def __init__(self, sources: Sequence[Source], units: Sequence[Unit], columns: Sequence[str], *,
                 batch_size: int, spec: ShardSpec, window_rows: int, originals_only: bool,
                 epoch: int = 0, num_epochs: int | None = 1,
                 transform: Callable[[Block], Block] | None = None) -> None:
        super().__init__()
        self._sources, self._units, self._columns = tuple(sources), tuple(units), tuple(columns)
        self._read = (*columns, REPLICA) if originals_only and REPLICA not in columns else self._columns
        self._originals_only, self._transform = originals_only, transform
        self.batch_size, self.spec, self.window_rows, self.num_epochs = batch_size, spec, window_rows, num_epochs
        self.set_epoch(epoch)
        log.info("arrow loader rank %d/%d: %d rows per rank, %d batches; %d row(s) dropped, %d padded",
                 spec.rank, spec.world_size, self._shard.rows, len(self), self.dropped, self.padded)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration yields (as DistributedSampler.set_epoch)."""
        self.epoch = epoch
        self._shard = plan_shard(self._units, self.spec, epoch)

    @property
    def dropped(self) -> int:
        return self._shard.dropped

    @property
    def padded(self) -> int:
        return self._shard.padded

    def __len__(self) -> int:
        return -(-self._shard.rows // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        if worker is not None and worker.num_workers > 1:
            raise InputError("the arrow loader batches and shards itself: use it in a DataLoader with "
                             "batch_size=None and num_workers 0 or 1")
        epoch = self.epoch
        while self.num_epochs is None or epoch < self.epoch + self.num_epochs:
            shard = self._shard if epoch == self.epoch else plan_shard(self._units, self.spec, epoch)
            for batch in self._batches(shard, epoch):
                yield {name: torch.from_numpy(array) for name, array in batch.items()}
            epoch += 1

    def __enter__(self) -> ArrowLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to stop (no threads, no pools): a context manager only to match the Petastorm backend."""

    def _batches(self, shard: Shard, epoch: int) -> Iterator[Block]:
        blocks = self._blocks(shard)
        if self.spec.shuffle:
            rng = epoch_rng(self.spec.seed, epoch, _WINDOW_STREAM, self.spec.rank)
            blocks = shuffled_windows(blocks, self.window_rows, rng)
        batches = rebatch(blocks, self.batch_size)
        # Per batch, after shuffling: the transform's output (one-hot rows) never fills the window.
        return map(self._transform, batches) if self._transform else batches

    def _blocks(self, shard: Shard) -> Iterator[Block]:
        opened: tuple[int, pq.ParquetFile] | None = None
        for piece in shard.pieces:
            unit = piece.unit
            if opened is None or opened[0] != unit.file:
                opened = (unit.file, self._sources[unit.file].open())
            table = opened[1].read_row_group(unit.row_group, columns=list(self._read))
            if self._originals_only:
                table = table.filter(pc.equal(table.column(REPLICA), 0))
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
