"""`make_loader`: one split of a sparkprep output as batches of torch tensors, without Spark."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sparkprep.errors import InputError
from sparkprep.train.backends.arrow import ArrowLoader, Source, check_columns, count_units
from sparkprep.train.files import DatasetFiles
from sparkprep.train.location import OutputLocation
from sparkprep.train.manifest import load_manifest, load_transform
from sparkprep.train.backends.petastorm import PetastormLoader, PetastormOptions
from sparkprep.train.sharding import ShardSpec, whole_files

log = logging.getLogger(__name__)

LABEL = "label_index"
SHUFFLE_BATCHES = 8  # rows held for mixing across row groups, in batches
BACKENDS = ("arrow", "petastorm")
TRANSFORMS = ("fold", "final", None)


def make_loader(out_dir: str, fold: int = 0, split: str = "train", *, batch_size: int = 256,
                columns: Sequence[str] | None = None, rank: int = 0, world_size: int = 1,
                shuffle: bool = True, seed: int | None = None, epoch: int = 0,
                num_epochs: int | None = 1, drop_last: bool = True, backend: str = "arrow",
                petastorm: PetastormOptions | None = None, transform: str | None = None) -> Any:
    """Batches of one split, as dicts of torch tensors: the selected columns plus `label_index`.

    Splits, for fold k (DESIGN.md): "train" = fold not in {k, -1}, replicas included, undersampled
    originals (in_train false) left out, as for "final"; "val" =
    fold k, originals only; "final" = fold != -1; "test" = holdout, originals only. Only the files
    of the selected folds are opened. `columns=None` selects the numeric and array feature columns
    of the manifest; numeric nulls arrive as NaN, fixed-length array columns as 2-D tensors; dtypes
    are the stored ones (label_index is int32). `num_epochs=None` repeats forever. `seed=None`
    takes the manifest's seed, so ranks agree without being told.

    Both backends are DDP-exact: every rank gets the same number of rows and batches per epoch
    (`len(loader)`), disjoint, together the split minus `loader.dropped` rows (drop_last=True) or
    plus `loader.padded` repeated ones (drop_last=False); dropped/padded are fewer than world_size.
    The order is a pure function of (seed, epoch): units permuted, rows mixed in a window of 8
    batches plus one row group; `loader.set_epoch(e)` picks the epoch.

    backend="arrow" (default): pyarrow, row group by row group; the units are row groups.
    backend="petastorm": Petastorm's batch reader decodes (options in `petastorm`); the units are
    whole files, so a rank opens about 1/W of the files (backends/petastorm.py).

    transform="fold": apply fold k's fitted transform (the transform file the manifest names:
    fitted on fold k's training originals only) on the fly, to train and val alike; "final": the final model's (all
    non-holdout originals), for split="final"/"test"; None: raw stored values. With a transform,
    `columns=None` also selects the categorical columns (int64 indices, or float64 one-hot rows);
    numeric and array columns arrive as float64, missing values filled as configured.

    >>> with make_loader("/data/prepared", fold=0, split="train", batch_size=512, seed=7,
    ...                  rank=rank, world_size=world) as loader:
    ...     for epoch in range(10):
    ...         loader.set_epoch(epoch)
    ...         for batch in loader:
    ...             x, y = batch["num_0"], batch["label_index"].long()
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if transform not in TRANSFORMS:
        raise InputError(f"unknown transform {transform!r}: use 'fold', 'final' or None")
    manifest = load_manifest(out_dir)
    files = DatasetFiles.for_split(out_dir, manifest, split, fold)
    if not 0 <= rank < world_size:
        raise InputError(f"rank {rank} is out of range for world_size {world_size}")
    params = load_transform(out_dir, fold if transform == "fold" else None, manifest) if transform else None
    wanted = _columns(manifest, columns, with_categorical=params is not None)
    seed = int(manifest.get("seed", 0)) if seed is None else seed
    window = SHUFFLE_BATCHES * batch_size if shuffle else 0
    log.info("%s loader %s fold %d rank %d/%d: %d files, columns %s",
             backend, split, fold, rank, world_size, len(files.urls), wanted)
    location = OutputLocation.of(out_dir)
    sources = [Source.of(location, url) for url in files.urls]
    check_columns(sources[0], [c for c in wanted if params is None or c not in
                               {p.column for p in params.categorical}])
    units = count_units(sources, files.keep)
    common = dict(batch_size=batch_size, window_rows=window, epoch=epoch, num_epochs=num_epochs,
                  spec=ShardSpec(rank=rank, world_size=world_size, seed=seed, shuffle=shuffle, drop_last=drop_last),
                  transform=params.apply_numpy if params else None, keep=files.keep)
    if backend == "petastorm":
        return PetastormLoader(sources, whole_files(units), wanted, options=petastorm or PetastormOptions(), **common)
    return ArrowLoader(sources, units, wanted, **common)


def feature_columns(manifest: dict[str, Any], with_categorical: bool = False) -> list[str]:
    """The numeric (then categorical, with a transform that encodes them) and array feature
    columns, in manifest order (what `columns=None` selects)."""
    cols = manifest["columns"]
    return [*cols["numeric"], *(cols["categorical"] if with_categorical else []), *cols["array"]]


def _columns(manifest: dict[str, Any], columns: Sequence[str] | None, with_categorical: bool) -> list[str]:
    selected = list(feature_columns(manifest, with_categorical) if columns is None else columns)
    if LABEL not in selected:
        selected.append(LABEL)
    # Partition columns live in directory names, not in the files the readers open.
    readable = {c["name"] for c in manifest["schema"]} - set(manifest["output"]["partition_by"])
    unknown = [c for c in selected if c not in readable]
    if unknown:
        raise InputError(f"unknown column(s) {', '.join(unknown)}: readable columns are "
                         f"{', '.join(sorted(readable))}")
    return selected
