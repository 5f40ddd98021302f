"""What every backend shares: the split as make_loader resolved it (`ReadPlan`: its files, their
row groups counted from metadata, the columns), and one rank's exact shard per epoch
(sharding.plan_shard), shuffled in a seeded window, re-batched to a fixed size, transformed, as
torch tensors (`ShardedLoader`). A backend supplies its options, which build its loader
(`BackendOptions`), and how the shard's rows are decoded (`ShardedLoader._blocks`)."""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from sparkprep.errors import InputError
from sparkprep.train.batching import Block, rebatch, shuffled_windows
from sparkprep.train.files import RowFilter
from sparkprep.train.location import OutputLocation
from sparkprep.train.sharding import Sampling, Shard, Unit, epoch_rng, plan_shard

log = logging.getLogger(__name__)
# Batches share the decoded Arrow buffers (zero-copy), which numpy marks read-only; they belong to
# the loader alone, so torch's warning about them (raised here, by from_numpy) says nothing to act on.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", module=__name__)

SHUFFLE_BATCHES = 8  # rows held for mixing across row groups, in batches
_WINDOW_STREAM = 1  # epoch_rng stream of the in-memory shuffle (stream 0 permutes the units)


@dataclass(frozen=True)
class Source:
    """A data file: the filesystem it is on, its path there, and its URL for messages.

    Args:
        fs: the filesystem the file is on.
        path: its path on `fs`.
        url: its URL, as messages and Petastorm name it.
    """

    fs: pafs.FileSystem
    path: str
    url: str

    @classmethod
    def of(cls, location: OutputLocation, url: str) -> Source:
        """The file at `url`, on the output's filesystem when it is under the output.

        Args:
            location: the output the file belongs to.
            url: the file's URL (a Delta add action may name one outside the output).
        """
        if url.startswith(location.url + "/"):
            return cls(location.fs, location.path_of(url[len(location.url) + 1:]), url)
        fs, path = pafs.FileSystem.from_uri(url)  # a Delta add action with an absolute URL
        return cls(fs, path, url)

    def open(self) -> pq.ParquetFile:
        """The file opened for reading: its metadata now, its row groups on demand."""
        return pq.ParquetFile(self.path, filesystem=self.fs)


def count_units(sources: Sequence[Source], keep: RowFilter | None) -> list[Unit]:
    """The row groups of the files and the rows the split reads from each, from Parquet metadata.

    With a filter (val/test: originals only; train/final of an undersampled run: in_train only)
    the counts must be known before sharding so that ranks stay equal: a row group whose
    statistics of the filter column say every row matches counts all its rows without a read, one
    whose statistics exclude the value counts none; any other reads that column alone (4 bytes a
    row for `replica`, 1 bit for `in_train`) and counts the matches.

    Args:
        sources: the split's files.
        keep: the rows of the files the split reads; None for every row.

    Returns:
        One unit per row group, file by file.
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
    """Refuse what cannot become a tensor (strings, nested lists) before the first epoch.

    Args:
        source: a file of the split, whose schema the others share.
        columns: the columns that reach the batches as stored (not those a transform encodes).

    Raises:
        InputError: a column is neither numbers nor a list of numbers.
    """
    schema = source.open().schema_arrow
    for name in columns:
        kind = schema.field(name).type
        element = kind.value_type if is_list(kind) else kind
        if not (pa.types.is_integer(element) or pa.types.is_floating(element) or pa.types.is_boolean(element)):
            raise InputError(f"column {name!r} of {source.url} is {kind}: the loader yields tensors "
                             f"of numbers and fixed-length lists of numbers; leave it out of columns=")


def is_list(kind: pa.DataType) -> bool:
    """Whether an Arrow type is a list of any of Arrow's three kinds (array features are stored so).

    Args:
        kind: the type of a column.
    """
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


@dataclass(frozen=True)
class ReadPlan:
    """What a backend reads, as make_loader resolved it, the same whichever backend reads it.

    Args:
        sources: the split's data files.
        units: their row groups, with the rows the split reads from each (count_units).
        columns: the columns of a batch.
        keep: the rows of the files the split reads; None for every row.
        batch_size: rows per batch (the last of an epoch may be shorter).
        sampling: the rank's share of the split and its order, the seed set.
        transform: what each batch goes through (a fitted transform's apply_numpy); None for
            the stored values.
    """

    sources: tuple[Source, ...]
    units: tuple[Unit, ...]
    columns: tuple[str, ...]
    keep: RowFilter | None
    batch_size: int
    sampling: Sampling
    transform: Callable[[Block], Block] | None = None


class BackendOptions(ABC):
    """A backend's options, which build its loader. A backend's module defines one as a frozen
    dataclass; `loader.BACKENDS` registers its defaults under the backend's name."""

    @abstractmethod
    def loader(self, plan: ReadPlan) -> ShardedLoader:
        """This backend's loader of the split.

        Args:
            plan: what to read, and how ranks share it.
        """


class ShardedLoader(IterableDataset):
    """Batches (dicts of torch tensors) of one rank's shard, epoch after epoch; see `make_loader`.

    `len()` is the number of batches per rank per epoch, equal on every rank. `dropped`/`padded`
    count the rows of the split left out or repeated so that ranks are equal.
    Use with `torch.utils.data.DataLoader(loader, batch_size=None)` (it batches itself) and
    `num_workers` 0 or 1: more workers would each read the same shard.

    Args:
        plan: what to read, and how ranks share it; a backend that reads whole files passes
            file units (sharding.whole_files).
    """

    def __init__(self, plan: ReadPlan) -> None:
        super().__init__()
        self.plan = plan
        self.set_epoch(plan.sampling.epoch)
        log.info("%s rank %d/%d: %d rows per rank, %d batches; %d row(s) dropped, %d padded", type(self).__name__,
                 plan.sampling.rank, plan.sampling.world_size, self._shard.rows, len(self), self.dropped, self.padded)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration yields (as DistributedSampler.set_epoch).

        Args:
            epoch: the epoch; iterating yields it and the next `num_epochs - 1`.
        """
        self.epoch = epoch
        self._shard = plan_shard(self.plan.units, self.plan.sampling, epoch)

    @property
    def dropped(self) -> int:
        """Rows of the split left out of every epoch so that ranks are equal (drop_last)."""
        return self._shard.dropped

    @property
    def padded(self) -> int:
        """Rows of the split repeated in every epoch to fill the last ranks (no drop_last)."""
        return self._shard.padded

    def __len__(self) -> int:
        return -(-self._shard.rows // self.plan.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        if worker is not None and worker.num_workers > 1:
            raise InputError("the loader batches and shards itself: use it in a DataLoader with "
                             "batch_size=None and num_workers 0 or 1")
        num_epochs = self.plan.sampling.num_epochs
        epoch = self.epoch
        while num_epochs is None or epoch < self.epoch + num_epochs:
            shard = self._shard if epoch == self.epoch else plan_shard(self.plan.units, self.plan.sampling, epoch)
            for batch in self._batches(shard, epoch):
                yield {name: torch.from_numpy(array) for name, array in batch.items()}
            epoch += 1

    def __enter__(self) -> ShardedLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to stop between epochs: a backend's reader lives only while an epoch is read."""

    def _batches(self, shard: Shard, epoch: int) -> Iterator[Block]:
        plan, sampling = self.plan, self.plan.sampling
        blocks = self._blocks(shard, epoch)
        if sampling.shuffle:
            rng = epoch_rng(sampling.seed, epoch, _WINDOW_STREAM, sampling.rank)
            blocks = shuffled_windows(blocks, SHUFFLE_BATCHES * plan.batch_size, rng)
        batches = rebatch(blocks, plan.batch_size)
        # Per batch, after shuffling: the transform's output (one-hot rows) never fills the window.
        return map(plan.transform, batches) if plan.transform else batches

    def _blocks(self, shard: Shard, epoch: int) -> Iterator[Block]:
        """The shard's rows, exactly (with repeats where padded), as column blocks of `plan.columns`."""
        raise NotImplementedError
