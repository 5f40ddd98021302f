"""What both backends share: one rank's exact shard per epoch (sharding.plan_shard), shuffled in a
seeded window, re-batched to a fixed size, transformed, as torch tensors. A backend supplies only
how the shard's rows are decoded (`_blocks`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import IterableDataset, get_worker_info

from sparkprep.errors import InputError
from sparkprep.train.batching import Block, rebatch, shuffled_windows
from sparkprep.train.sharding import Shard, ShardSpec, Unit, epoch_rng, plan_shard

log = logging.getLogger(__name__)

_WINDOW_STREAM = 1  # epoch_rng stream of the in-memory shuffle (stream 0 permutes the units)


class ShardedLoader(IterableDataset):
    """Batches (dicts of torch tensors) of one rank's shard, epoch after epoch; see `make_loader`.

    `len()` is the number of batches per rank per epoch, equal on every rank. `dropped`/`padded`
    count the rows of the split left out or repeated so that ranks are equal.
    Use with `torch.utils.data.DataLoader(loader, batch_size=None)` (it batches itself) and
    `num_workers` 0 or 1: more workers would each read the same shard.
    """

    def __init__(self, units: Sequence[Unit], columns: Sequence[str], *, batch_size: int, spec: ShardSpec,
                 window_rows: int, epoch: int = 0, num_epochs: int | None = 1,
                 transform: Callable[[Block], Block] | None = None) -> None:
        super().__init__()
        self._units, self._columns, self._transform = tuple(units), tuple(columns), transform
        self.batch_size, self.spec, self.window_rows, self.num_epochs = batch_size, spec, window_rows, num_epochs
        self.set_epoch(epoch)
        log.info("%s rank %d/%d: %d rows per rank, %d batches; %d row(s) dropped, %d padded", type(self).__name__,
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
            raise InputError("the loader batches and shards itself: use it in a DataLoader with "
                             "batch_size=None and num_workers 0 or 1")
        epoch = self.epoch
        while self.num_epochs is None or epoch < self.epoch + self.num_epochs:
            shard = self._shard if epoch == self.epoch else plan_shard(self._units, self.spec, epoch)
            for batch in self._batches(shard, epoch):
                yield {name: torch.from_numpy(array) for name, array in batch.items()}
            epoch += 1

    def __enter__(self) -> ShardedLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to stop between epochs: a backend's reader lives only while an epoch is read."""

    def _batches(self, shard: Shard, epoch: int) -> Iterator[Block]:
        blocks = self._blocks(shard, epoch)
        if self.spec.shuffle:
            rng = epoch_rng(self.spec.seed, epoch, _WINDOW_STREAM, self.spec.rank)
            blocks = shuffled_windows(blocks, self.window_rows, rng)
        batches = rebatch(blocks, self.batch_size)
        # Per batch, after shuffling: the transform's output (one-hot rows) never fills the window.
        return map(self._transform, batches) if self._transform else batches

    def _blocks(self, shard: Shard, epoch: int) -> Iterator[Block]:
        """The shard's rows, exactly (with repeats where padded), as column blocks of `self._columns`."""
        raise NotImplementedError
