"""The Petastorm backend of `make_loader`: Petastorm's batch reader decodes each rank's exact shard.

Petastorm shards by whole row groups (`cur_shard`/`shard_count`), so its shards are uneven and an
all-reduce hangs on the rank that finished first (Petastorm #508/#719). So we do not use its
sharding: a rank's rows come from the same row-level plan as the arrow backend
(sharding.plan_shard), over whole files because Petastorm reads whole files. A rank hands Petastorm
the files its range touches (about 1/W of them, plus at most two it shares with a neighbour) and
a TransformSpec keeps, in those shared files, only the rank's rows (and repeats padded ones).
Which rows those are is known by their key (`row_id`, `replica`), unique by the data contract
(counted copies are expanded first, so each has its own replica); Petastorm's row groups carry no
position.

A resume decodes the epoch again up to where the consumer was (Petastorm decides which row group
comes next, so a window cannot be entered on its own), and is exact only with the default "dummy"
pool, whose order is reproducible; the elastic order (one order over all row groups) is the arrow
backend's alone.

Memory per rank: the shuffle window as in the arrow backend; Petastorm's decoded row groups in
flight (one with the default "dummy" pool, up to its results queue of 50 with a thread or process
pool); and the keys of the shared files' rows that the rank skips or repeats (16 bytes a row, at
most two files).

Petastorm's results reader turns string columns into numpy unicode, a null into the string "None":
with transform= a null category lands in the unknown bucket as in the arrow backend, unless a
vocabulary holds the string "None" itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from petastorm import TransformSpec, make_batch_reader

from sparkprep.contract import COPIES, REPLICA, ROW_ID
from sparkprep.errors import InputError
from sparkprep.train.backends.base import SHUFFLE_BATCHES, BackendOptions, EpochRows, ReadPlan, ShardedLoader
from sparkprep.train.batching import Block, shuffled_windows, skip_rows
from sparkprep.train.copies import expanded, expansion
from sparkprep.train.files import RowFilter
from sparkprep.train.resume import LoaderState
from sparkprep.train.sharding import WINDOW_STREAM, Shard, epoch_rng, plan_shard, whole_files

_PETASTORM_STREAM = 2  # epoch_rng stream of Petastorm's row-group order (0: units, 1: window)


@dataclass(frozen=True)
class PetastormOptions(BackendOptions):
    """The Petastorm backend and its decoding pool; `make_loader(..., backend=PetastormOptions())`.

    The default pool, "dummy", is as fast as any here (bench/RESULTS.md) and the only one whose
    order is a pure function of (seed, epoch): thread and process pools deliver row groups in
    completion order, so with them the order varies from run to run (the rows of each rank do not),
    and a state saved mid-epoch cannot be resumed exactly (load_state_dict refuses it).

    Args:
        workers_count: the pool's workers.
        reader_pool_type: "dummy" (no threads), "thread" or "process".
    """

    workers_count: int = 1
    reader_pool_type: str = "dummy"

    def loader(self, plan: ReadPlan) -> PetastormLoader:
        """A PetastormLoader of the split with these options.

        Args:
            plan: what to read, and how ranks share it.
        """
        return PetastormLoader(plan, self)


class PetastormLoader(ShardedLoader):
    """One rank's exact shard read by Petastorm's `make_batch_reader`, one reader per epoch; see
    `ShardedLoader`.

    Args:
        plan: what to read, and how ranks share it; its row-group units are merged into whole
            files, which is what Petastorm opens.
        options: Petastorm's decoding pool.

    Raises:
        InputError: the sampling is elastic, an order this backend cannot follow.
    """

    _options: PetastormOptions

    def __init__(self, plan: ReadPlan, options: PetastormOptions) -> None:
        if plan.sampling.elastic:
            raise InputError("Sampling(elastic=True) needs backend='arrow': Petastorm picks the order of "
                             "the row groups of a rank's files, so there is no global order to share")
        super().__init__(replace(plan, units=tuple(whole_files(plan.units))), options)

    def _epoch_rows(self, epoch: int, position: int) -> EpochRows:
        sampling = self.plan.sampling
        shard = plan_shard(self.plan.units, sampling, epoch)
        skip = shard.rows if position >= self._total else position // sampling.world_size
        blocks = self._ahead(self._blocks(shard, epoch)) if skip < shard.rows else iter([])
        if sampling.shuffle:
            rng = epoch_rng(sampling.seed, epoch, WINDOW_STREAM, sampling.rank)
            blocks = shuffled_windows(blocks, SHUFFLE_BATCHES * self.plan.batch_size, rng)
        return EpochRows(shard.rows - skip, shard.dropped, shard.padded, skip_rows(blocks, skip))

    def _check_resumable(self, saved: LoaderState) -> None:
        if 0 < saved.position < self._total and self._options.reader_pool_type != "dummy":
            raise InputError(f"a state saved mid-epoch resumes exactly only with PetastormOptions("
                             f"reader_pool_type='dummy'): the {self._options.reader_pool_type!r} pool delivers "
                             f"row groups in completion order, so the rows already received are not known")

    def _blocks(self, shard: Shard, epoch: int) -> Iterator[Block]:
        files = sorted({piece.unit.file for piece in shard.pieces})
        repeats = self._repeats(shard)
        keys = [*([ROW_ID, REPLICA] if repeats is not None else []), *self.plan.selected_by]
        columns, sampling = self.plan.columns, self.plan.sampling
        read = list(dict.fromkeys([*columns, *keys]))
        transform = (TransformSpec(_RankRows(self.plan.keep, self.plan.expand, repeats),
                                   removed_fields=[c for c in read if c not in columns]) if keys else None)
        seed = int(epoch_rng(sampling.seed, epoch, _PETASTORM_STREAM, sampling.rank).integers(2**31))
        with make_batch_reader(
                [self.plan.sources[i].url for i in files],
                # schema_fields are regexes: escape the names, and anchor them so that Petastorm's
                # legacy prefix match agrees with its full match (else it warns for "num_1"/"num_10").
                schema_fields=[re.escape(c) + "$" for c in read],
                # Rows are mixed by our seeded window, not Petastorm's (its queue draws from torch's
                # global generator); Petastorm permutes the row groups, seeded per epoch and rank.
                shuffle_row_groups=sampling.shuffle, shuffle_rows=False, seed=seed, num_epochs=1,
                transform_spec=transform, workers_count=self._options.workers_count,
                reader_pool_type=self._options.reader_pool_type) as reader:
            for batch in reader:
                yield {name: getattr(batch, name) for name in columns}

    def _repeats(self, shard: Shard) -> pd.Series | None:
        """How often the rank yields each row of the files it shares (0: another rank's row; 2 or
        more: a padded row), keyed by (row_id, replica); None when it reads its files whole."""
        counts: dict[int, np.ndarray] = {}
        for piece in shard.pieces:
            counts.setdefault(piece.unit.file, np.zeros(piece.unit.rows, np.int64))[piece.start:piece.stop] += 1
        shared = {f: c for f, c in counts.items() if (c != 1).any()}
        if not shared:
            return None
        ids, replicas, times = [], [], []
        keep = self.plan.keep
        for file, count in shared.items():
            table = self.plan.sources[file].open().read(columns=list(dict.fromkeys([ROW_ID, REPLICA, *self.plan.selected_by])))
            if keep:
                table = table.filter(keep.mask(table))
            if self.plan.expand:
                table = expanded(table)
            differs = count != 1
            ids.append(table.column(ROW_ID).to_numpy()[differs])
            replicas.append(table.column(REPLICA).to_numpy()[differs])
            times.append(count[differs])
        index = pd.MultiIndex.from_arrays([np.concatenate(ids), np.concatenate(replicas)])
        return pd.Series(np.concatenate(times), index=index)


@dataclass(frozen=True)
class _RankRows:
    """Petastorm's TransformSpec function (runs in its workers on one row group at a time; a class,
    not a closure, so that a process pool can pickle it): the split's rows (`keep`: originals only
    for val/test, in_train only for an undersampled train/final), expanded into 1 + copies rows
    where `expand` (train/final of an output whose copies are counted), then each row as often as
    `repeats` says (1 when it has no entry).

    A filter here rather than a Petastorm predicate: with make_batch_reader the predicate path
    blanks non-matching rows with None before dropping them, which turns int64 columns into float64
    (row_id is a 64-bit hash; it would lose precision)."""

    keep: RowFilter | None
    expand: bool
    repeats: pd.Series | None

    def __call__(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.keep:
            frame = frame[frame[self.keep.column] == self.keep.value]
        if self.expand:
            index, replica = expansion(frame[COPIES].to_numpy())
            frame = frame.iloc[index]
            if REPLICA in frame.columns:
                frame = frame.assign(**{REPLICA: replica.astype(frame[REPLICA].dtype)})
        if self.repeats is None:
            return frame
        keys = pd.MultiIndex.from_arrays([frame[ROW_ID].to_numpy(), frame[REPLICA].to_numpy()])
        times = self.repeats.reindex(keys).fillna(1).to_numpy(np.int64)
        return frame.iloc[np.repeat(np.arange(len(frame)), times)]
