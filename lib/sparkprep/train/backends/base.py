"""What every backend shares: the split as make_loader resolved it (`ReadPlan`: its files, their
row groups counted from metadata, the columns), and one rank's exact shard per epoch, shuffled in
seeded windows, re-batched to a fixed size, transformed, as torch tensors made on a prefetch
thread, with the consumer's position as a state to save and resume from (`ShardedLoader`). A
backend supplies its options, which build its loader (`BackendOptions`), and the rank's rows of an
epoch from a position on (`ShardedLoader._epoch_rows`)."""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from sparkprep.contract import COPIES
from sparkprep.errors import ContractError, InputError
from sparkprep.train.batching import Block, rebatch, rows_of
from sparkprep.train.copies import expanded_rows
from sparkprep.train.files import RowFilter
from sparkprep.train.location import OutputLocation
from sparkprep.train.prefetch import prefetched
from sparkprep.train.resume import LoaderState
from sparkprep.train.sharding import Sampling, Unit

log = logging.getLogger(__name__)
# Batches share the decoded Arrow buffers (zero-copy), which numpy marks read-only; they belong to
# the loader alone, so torch's warning about them (raised here, by from_numpy) says nothing to act on.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", module=__name__)

SHUFFLE_BATCHES = 8  # rows held for mixing across row groups, in batches
T = TypeVar("T")


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
        """The file opened for reading: its metadata now, its row groups on demand. A local file
        is memory-mapped: pages decode from the page cache in place instead of a copy read into
        the process (13% less CPU per row group on the loader bench). A run replaces an output by
        renames and deletes, never by rewriting a file in place, so a mapped file cannot shrink
        under the reader (a SIGBUS, not an error, if it did)."""
        if isinstance(self.fs, pafs.LocalFileSystem):
            return pq.ParquetFile(self.path, memory_map=True)
        return pq.ParquetFile(self.path, filesystem=self.fs)


def count_units(sources: Sequence[Source], keep: RowFilter | None, expand: bool = False) -> list[Unit]:
    """The row groups of the files and the rows the split reads from each, from Parquet metadata.

    With a filter (val/test: originals only; train/final of an undersampled run: in_train only)
    the counts must be known before sharding so that ranks stay equal: a row group whose
    statistics of the filter column say every row matches counts all its rows without a read, one
    whose statistics exclude the value counts none; any other reads that column alone (4 bytes a
    row for `replica`, 1 bit for `in_train`) and counts the matches. Counted copies are counted the
    same way: a row group whose `copies` statistics are all 0 adds none, any other reads that column.

    Args:
        sources: the split's files.
        keep: the rows of the files the split reads; None for every row.
        expand: each row read is 1 + its `copies` rows (train/final of an output whose copies are
            counted: sparkprep.train.copies).

    Returns:
        One unit per row group, file by file.

    Raises:
        ContractError: `expand`, and a file has no `copies` column.
    """
    units = []
    for index, source in enumerate(sources):
        file = source.open()
        if expand and COPIES not in file.schema_arrow.names:
            raise ContractError(f"{source.url} has no {COPIES} column, but the manifest records rebalance.copies "
                                f"count: the data and its manifest disagree (`sparkprep verify` checks them)")
        for group in range(file.metadata.num_row_groups):
            rows = file.metadata.row_group(group).num_rows
            if (keep or expand) and rows:
                rows = _kept_in(file, group, rows, keep, expand)
            units.append(Unit(file=index, row_group=group, rows=rows))
    return units


def _kept_in(file: pq.ParquetFile, group: int, rows: int, keep: RowFilter | None, expand: bool) -> int:
    meta = file.metadata.row_group(group)
    stats = {c.path_in_schema: c.statistics for c in (meta.column(i) for i in range(meta.num_columns))
             if c.is_stats_set and c.statistics.has_min_max}
    if expand and not _all_equal(stats.get(COPIES), 0):
        table = file.read_row_group(group, columns=[COPIES, *([keep.column] if keep else [])])
        return expanded_rows(table.filter(keep.mask(table)) if keep else table)
    if keep is None:
        return rows
    found = stats.get(keep.column)
    if _all_equal(found, keep.value):
        return rows
    if found is not None and not found.min <= keep.value <= found.max:
        return 0
    table = file.read_row_group(group, columns=[keep.column])
    return int(pc.sum(keep.mask(table)).as_py() or 0)


def _all_equal(stats: pq.Statistics | None, value: Any) -> bool:
    """Whether a column's row-group statistics say that every value of it is `value`."""
    return stats is not None and stats.min == stats.max == value and stats.null_count == 0


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
        dataset: the output's URL, the split and the fold, as a loader state names them.
        run_id: the run that wrote the output (the manifest's run_id; None for a hand-made one).
        sources: the split's data files.
        units: their row groups, with the rows the split reads from each (count_units).
        columns: the columns of a batch.
        keep: the rows of the files the split reads; None for every row.
        batch_size: rows per batch (the last of an epoch may be shorter).
        sampling: the rank's share of the split and its order, the seed set.
        transform: what each batch goes through (a fitted transform's apply_numpy); None for
            the stored values.
        expand: each row read is 1 + its `copies` rows, and `units` count those (train/final of
            an output whose copies are counted: sparkprep.train.copies).
    """

    dataset: str
    run_id: str | None
    sources: tuple[Source, ...]
    units: tuple[Unit, ...]
    columns: tuple[str, ...]
    keep: RowFilter | None
    batch_size: int
    sampling: Sampling
    transform: Callable[[Block], Block] | None = None
    expand: bool = False

    @property
    def selected_by(self) -> list[str]:
        """The columns that say which rows of the files the split reads, and how often: read with
        `columns` (the batches leave them out unless asked for)."""
        return [*([self.keep.column] if self.keep else []), *([COPIES] if self.expand else [])]


@dataclass(frozen=True)
class BackendOptions(ABC):
    """A backend's options, which build its loader, and what every backend takes. A backend's
    module defines its options as a frozen dataclass on this one; `loader.BACKENDS` registers its
    defaults under the backend's name.

    Args:
        prefetch: decoded row groups (shuffle windows for the arrow backend, decoded on one
            thread and permuted on a second) made ahead of the consumer on a thread; 0 decodes
            on demand.
        pin_memory: put batches in page-locked memory (faster, asynchronous copies to a GPU);
            None pins when CUDA is available.
    """

    prefetch: int = 2
    pin_memory: bool | None = None

    @abstractmethod
    def loader(self, plan: ReadPlan) -> ShardedLoader:
        """This backend's loader of the split.

        Args:
            plan: what to read, and how ranks share it.
        """


@dataclass(frozen=True)
class EpochRows:
    """A rank's rows of one epoch from a position on: how many, what the split lost or repeated so
    that ranks are equal, and the rows themselves (lazily, in order).

    Args:
        rows: how many rows `blocks` holds, the same on every rank.
        dropped: rows of the split left out of the epoch (drop_last).
        padded: rows of the split repeated in the epoch (no drop_last).
        blocks: the rows, shuffled, as column blocks of `plan.columns`.
    """

    rows: int
    dropped: int
    padded: int
    blocks: Iterator[Block]


class ShardedLoader(IterableDataset):
    """Batches (dicts of torch tensors) of one rank's shard, epoch after epoch; see `make_loader`.

    `len()` is the number of batches per rank per epoch, equal on every rank. `dropped`/`padded`
    count the rows of the split left out or repeated so that ranks are equal.
    Use with `torch.utils.data.DataLoader(loader, batch_size=None)` (it batches itself) and
    `num_workers` 0 or 1: more workers would each read the same shard.

    `state_dict()`/`load_state_dict()` save and restore the consumer's position (torchdata's
    StatefulDataLoader protocol, and torch.distributed.checkpoint's Stateful): resuming yields
    exactly the batches the consumer had not received, in the same order. In a DataLoader with a
    worker process, use torchdata's StatefulDataLoader, which takes the state from the worker with
    each batch; a plain DataLoader's worker holds a copy of the loader whose state this one never sees.

    Args:
        plan: what to read, and how ranks share it; a backend that reads whole files passes
            file units (sharding.whole_files).
        options: the backend's options (prefetch, pinning).
    """

    def __init__(self, plan: ReadPlan, options: BackendOptions) -> None:
        super().__init__()
        self.plan = plan
        self._options = options
        self._total = sum(u.rows for u in plan.units)
        self._resume: LoaderState | None = None  # a loaded state the next iteration starts from
        self._cursor: LoaderState | None = None  # what the consumer has received, once it iterates
        self.set_epoch(plan.sampling.epoch)
        log.info("%s rank %d/%d: %d batches per rank; %d row(s) dropped, %d padded", type(self).__name__,
                 plan.sampling.rank, plan.sampling.world_size, len(self), self.dropped, self.padded)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration yields (as DistributedSampler.set_epoch). A
        state loaded for this same epoch still applies; for another epoch it is dropped.

        Args:
            epoch: the epoch; iterating yields it and the next `num_epochs - 1`.
        """
        self.epoch = epoch
        self._cursor = None
        if self._resume is not None and self._resume.epoch != epoch:
            log.info("set_epoch(%d) drops the loaded state of epoch %d", epoch, self._resume.epoch)
            self._resume = None
        self._batches = -(-self._epoch_rows(epoch, 0).rows // self.plan.batch_size)

    @property
    def dropped(self) -> int:
        """Rows of the split left out of the epoch so that ranks are equal (drop_last); after an
        elastic load_state_dict at another world size, of the rest of that epoch."""
        return self._coming().dropped

    @property
    def padded(self) -> int:
        """Rows of the split repeated in the epoch to fill the last ranks (no drop_last); after an
        elastic load_state_dict at another world size, in the rest of that epoch."""
        return self._coming().padded

    def __len__(self) -> int:
        return self._batches

    def state_dict(self) -> dict[str, Any]:
        """The consumer's position (a few hundred bytes of plain values, the same on every rank):
        the dataset and run, the order (seed, shuffle, drop_last, batch size, elastic), the world
        size, the epoch and the rows of it the ranks have received. Batches made ahead on the
        prefetch thread are not counted until the consumer has them.

        >>> torch.save(loader.state_dict(), "loader.pt")   # or inside a StatefulDataLoader / DCP
        """
        return (self._resume or self._cursor or self._start(self.epoch)).to_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a `state_dict()`: the next iteration yields the rest of its epoch (then the
        epochs after it, up to the iteration's last), exactly the batches not received before.

        Args:
            state: what `state_dict()` returned, on this rank or any other.

        Raises:
            InputError: the state is from another dataset, run, seed or order, or from another
                world size without `Sampling(elastic=True)`; the message names the field.
        """
        saved = LoaderState.from_dict(state)
        saved.check_resumable_by(self._start(saved.epoch))
        self._check_resumable(saved)
        self.epoch = saved.epoch
        self._resume, self._cursor = saved, None
        if saved.world_size != self.plan.sampling.world_size:
            log.info("elastic resume of epoch %d at row %d of %d: world_size %d -> %d, %d row(s) dropped, "
                     "%d padded", saved.epoch, saved.position, self._total, saved.world_size,
                     self.plan.sampling.world_size, self.dropped, self.padded)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        if worker is not None and worker.num_workers > 1:
            raise InputError("the loader batches and shards itself: use it in a DataLoader with "
                             "batch_size=None and num_workers 0 or 1")
        start = self._resume or self._start(self.epoch)
        self._resume, self._cursor = None, start
        world_size = self.plan.sampling.world_size
        epoch, position = start.epoch, start.position
        while start.last_epoch is None or epoch <= start.last_epoch:
            rows = self._epoch_rows(epoch, position)
            received = 0
            for batch in self._tensors(rows.blocks):
                received += rows_of(batch)
                # Counted as the consumer takes the batch (a generator resumes only when asked for
                # the next one, and what the prefetch thread made ahead is not counted); the end of
                # the rank's rows is the end of the epoch for all.
                done = self._total if received == rows.rows else position + received * world_size
                self._cursor = self._state(epoch, done, start.last_epoch)
                yield batch
            self._cursor = self._state(epoch, self._total, start.last_epoch)
            epoch, position = epoch + 1, 0

    def __enter__(self) -> ShardedLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to stop between epochs: a backend's reader lives only while an epoch is read."""

    def _coming(self) -> EpochRows:
        """The rows of the epoch the next iteration starts in, from where it starts."""
        start = self._resume or self._start(self.epoch)
        return self._epoch_rows(start.epoch, start.position)

    def _start(self, epoch: int) -> LoaderState:
        """The state of an iteration that has yet to start at `epoch`."""
        num_epochs = self.plan.sampling.num_epochs
        return self._state(epoch, 0, None if num_epochs is None else epoch + num_epochs - 1)

    def _state(self, epoch: int, position: int, last_epoch: int | None) -> LoaderState:
        sampling, plan = self.plan.sampling, self.plan
        return LoaderState(dataset=plan.dataset, run_id=plan.run_id, seed=sampling.seed, shuffle=sampling.shuffle,
                           drop_last=sampling.drop_last, batch_size=plan.batch_size, elastic=sampling.elastic,
                           world_size=sampling.world_size, epoch=epoch, position=position, last_epoch=last_epoch)

    def _tensors(self, blocks: Iterator[Block]) -> Iterator[dict[str, torch.Tensor]]:
        plan = self.plan
        pin = torch.cuda.is_available() if self._options.pin_memory is None else self._options.pin_memory
        for batch in rebatch(blocks, plan.batch_size):
            # Per batch, after shuffling: the transform's output (one-hot rows) never fills the window.
            if plan.transform:
                batch = plan.transform(batch)
            tensors = {name: torch.from_numpy(array) for name, array in batch.items()}
            yield {name: t.pin_memory() for name, t in tensors.items()} if pin else tensors

    def _ahead(self, items: Iterator[T], depth: int | None = None) -> Iterator[T]:
        """`items` made on a prefetch thread: a backend passes its decoding (whole row groups or
        windows, GIL-free for the most part), so that the thread hands over few, large items.

        Args:
            items: what the thread makes.
            depth: how many items it makes ahead at most; the options' prefetch when None, and
                never more (prefetch=0 makes everything on demand).
        """
        prefetch = self._options.prefetch
        return prefetched(items, prefetch if depth is None else min(depth, prefetch))

    def _check_resumable(self, saved: LoaderState) -> None:
        """What a backend cannot resume beyond what every backend checks; nothing here."""

    def _epoch_rows(self, epoch: int, position: int) -> EpochRows:
        """This rank's rows of an epoch, after the first `position` rows of it that the ranks
        together have received (LoaderState.position)."""
        raise NotImplementedError
