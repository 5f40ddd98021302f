"""A PyTorch loader over one split of a sparkprep output, through Petastorm, without Spark."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd
from petastorm import TransformSpec, make_batch_reader
from petastorm.errors import NoDataAvailableError
from petastorm.pytorch import BatchedDataLoader

from sparkprep.errors import InputError
from sparkprep.train.files import DatasetFiles
from sparkprep.train.manifest import load_manifest

log = logging.getLogger(__name__)

LABEL = "label_index"
SHUFFLE_BATCHES = 8  # rows held for mixing across row groups, in batches


def make_loader(out_dir: str, fold: int = 0, split: str = "train", *, batch_size: int = 256,
                columns: Sequence[str] | None = None, rank: int = 0, world_size: int = 1,
                shuffle: bool = True, seed: int | None = None,
                num_epochs: int | None = 1) -> BatchedDataLoader:
    """Batches of one split, as dicts of torch tensors: the selected columns plus `label_index`.

    Splits, for fold k (DESIGN.md): "train" = fold not in {k, -1}, replicas included; "val" =
    fold k, originals only; "final" = fold != -1; "test" = holdout, originals only. Only the files
    of the selected folds are opened. `columns=None` selects the numeric and array feature columns
    of the manifest; numeric nulls arrive as NaN, fixed-length array columns as 2-D tensors; dtypes
    are the stored ones (label_index is int32). `num_epochs=None` repeats forever.

    DDP: each rank passes its `rank` and `world_size` and the SAME `seed` (the seed also shuffles
    which row groups go to which rank). Ranks get disjoint row groups that together cover the
    split, but shards are uneven (whole row groups, and val/test filter replicas after sharding),
    so ranks may see different numbers of batches; a split with fewer row groups than ranks is
    refused. Row order is reproducible only up to Petastorm's worker threads, which deliver row
    groups in completion order; `seed` fixes the row-group and in-row-group shuffles, the
    cross-row-group shuffling buffer draws from torch's global generator (`torch.manual_seed`).

    Use it as a context manager so the reader's threads stop:

    >>> with make_loader("/data/prepared", fold=0, split="train", batch_size=512, seed=7) as loader:
    ...     for batch in loader:
    ...         x, y = batch["num_0"], batch["label_index"].long()
    """
    manifest = load_manifest(out_dir)
    files = DatasetFiles.for_split(out_dir, manifest, split, fold)
    if not 0 <= rank < world_size:
        raise InputError(f"rank {rank} is out of range for world_size {world_size}")
    wanted = _columns(manifest, columns)
    read = [*wanted, "replica"] if files.originals_only and "replica" not in wanted else wanted
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
            shuffle_row_groups=shuffle, shuffle_rows=shuffle, seed=seed, num_epochs=num_epochs,
            cur_shard=rank, shard_count=world_size, transform_spec=transform)
    except NoDataAvailableError as err:
        raise InputError(f"split {split!r} of fold {fold} in {out_dir} has fewer row groups than "
                         f"world_size={world_size}: use fewer ranks or write smaller row groups") from err
    log.info("loader %s fold %d rank %d/%d: %d files, columns %s",
             split, fold, rank, world_size, len(files.urls), wanted)
    # Petastorm shuffles row groups and rows within one; the buffer also mixes rows across row groups
    # in each batch, so a file whose rows are ordered by class still gives batches of mixed classes.
    buffer = SHUFFLE_BATCHES * batch_size if shuffle else 0
    return BatchedDataLoader(reader, batch_size=batch_size, shuffling_queue_capacity=buffer)


def feature_columns(manifest: dict[str, Any]) -> list[str]:
    """The numeric and array feature columns, in manifest order (what `columns=None` selects)."""
    return [*manifest["columns"]["numeric"], *manifest["columns"]["array"]]


def _columns(manifest: dict[str, Any], columns: Sequence[str] | None) -> list[str]:
    selected = list(feature_columns(manifest) if columns is None else columns)
    if LABEL not in selected:
        selected.append(LABEL)
    # Partition columns live in directory names, not in the files Petastorm opens.
    readable = {c["name"] for c in manifest["schema"]} - set(manifest["output"]["partition_by"])
    unknown = [c for c in selected if c not in readable]
    if unknown:
        raise InputError(f"unknown column(s) {', '.join(unknown)}: readable columns are "
                         f"{', '.join(sorted(readable))}")
    return selected


def _originals_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["replica"] == 0]
