"""The Petastorm backend of `make_loader`: a Petastorm batch reader over the split's files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from petastorm import TransformSpec, make_batch_reader
from petastorm.errors import NoDataAvailableError
from petastorm.pytorch import BatchedDataLoader

from sparkprep.errors import InputError
from sparkprep.train.files import DatasetFiles


@dataclass(frozen=True)
class PetastormOptions:
    """Petastorm's own knobs (its defaults): decoding workers, and "thread", "process" or "dummy"."""

    workers_count: int = 10
    reader_pool_type: str = "thread"


def petastorm_loader(files: DatasetFiles, wanted: Sequence[str], *, batch_size: int, shuffle_rows: int,
                     rank: int, world_size: int, seed: int, num_epochs: int | None,
                     options: PetastormOptions) -> BatchedDataLoader:
    """Ranks get disjoint whole row groups (uneven shards: Petastorm cannot make them equal); rows
    are reproducible only up to Petastorm's worker threads, which deliver row groups in completion
    order, and its shuffling queue draws from torch's global generator."""
    read = [*wanted, "replica"] if files.originals_only and "replica" not in wanted else list(wanted)
    # The replica filter is a TransformSpec, not a petastorm predicate: with make_batch_reader the
    # predicate path blanks non-matching rows with None before dropping them, which turns int64
    # columns into float64 (row_id is a 64-bit hash; it would lose precision). The transform runs
    # in the reader's workers on whole row groups, so batches still come out at batch_size.
    transform = (TransformSpec(_originals_only, removed_fields=[c for c in read if c not in wanted])
                 if files.originals_only else None)
    try:
        reader = make_batch_reader(
            list(files.urls),
            # schema_fields are regexes: escape the names, and anchor them so that Petastorm's
            # legacy prefix match agrees with its full match (else it warns for "num_1"/"num_10").
            schema_fields=[re.escape(c) + "$" for c in read],
            shuffle_row_groups=shuffle_rows > 0, shuffle_rows=shuffle_rows > 0, seed=seed,
            num_epochs=num_epochs, cur_shard=rank, shard_count=world_size, transform_spec=transform,
            workers_count=options.workers_count, reader_pool_type=options.reader_pool_type)
    except NoDataAvailableError as err:
        raise InputError(f"the split has fewer row groups than world_size={world_size}: use fewer ranks, "
                         f"write smaller row groups or use backend='arrow'") from err
    # Petastorm shuffles row groups and rows within one; the buffer also mixes rows across row groups
    # in each batch, so a file whose rows are ordered by class still gives batches of mixed classes.
    return BatchedDataLoader(reader, batch_size=batch_size, shuffling_queue_capacity=shuffle_rows)


def _originals_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["replica"] == 0]
