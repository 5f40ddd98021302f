"""`make_loader`: one split of a sparkprep output as batches of torch tensors, without Spark.

Splits, for fold k (DESIGN.md): "train" = fold not in {k, -1}, replicas included (expanded from
their count when the output counted them: rebalance.copies count), undersampled originals
(in_train false) left out, as for "final"; "val" = fold k, originals only; "final" =
fold != -1; "test" = holdout, originals only. Only the files of the selected folds are opened.

Every backend is DDP-exact (sharding.Sampling) and yields the same rows: "arrow" (default;
pyarrow, the units are row groups) and "petastorm" (Petastorm's batch reader decodes; the units
are whole files, so a rank opens about 1/W of the files). A backend is a module in backends/
whose options build its loader (backends.base.BackendOptions), registered in BACKENDS.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sparkprep.contract import FOLD, LABEL_INDEX
from sparkprep.errors import InputError
from sparkprep.train.backends.arrow import ArrowOptions
from sparkprep.train.backends.base import BackendOptions, ReadPlan, ShardedLoader, Source, check_columns, count_units
from sparkprep.train.backends.petastorm import PetastormOptions
from sparkprep.train.files import DatasetFiles
from sparkprep.train.location import OutputLocation
from sparkprep.train.manifest import load_manifest, load_transform
from sparkprep.train.sharding import Sampling
from sparkprep.transform import TransformParams

log = logging.getLogger(__name__)

#: A backend's name and its default options (`backend=` takes either).
BACKENDS: dict[str, BackendOptions] = {
    "arrow": ArrowOptions(),
    "petastorm": PetastormOptions(),
}
#: transform=: the parameters fitted for the fold (the contract's word for it), the final model's, or none.
TRANSFORMS = (FOLD, "final", None)


def make_loader(out_dir: str, fold: int = 0, split: str = "train", *, batch_size: int = 256,
                columns: Sequence[str] | None = None, transform: str | None = None,
                sampling: Sampling = Sampling(), backend: str | BackendOptions = "arrow") -> ShardedLoader:
    """Batches of one split, as dicts of torch tensors: the selected columns plus `label_index`.

    Numeric nulls arrive as NaN, fixed-length array columns as 2-D tensors; dtypes are the stored
    ones (label_index is int32). With a transform, numeric and array columns arrive as float64,
    missing values filled as configured, and categorical ones as int64 indices or float64 one-hot.

    >>> with make_loader("/data/prepared", fold=0, split="train", batch_size=512,
    ...                  sampling=Sampling(rank=rank, world_size=world, seed=7)) as loader:
    ...     for epoch in range(10):
    ...         loader.set_epoch(epoch)
    ...         for batch in loader:
    ...             x, y = batch["num_0"], batch[LABEL_INDEX].long()

    Args:
        out_dir: the output root (a local path or a URI: file://, s3://, s3a://, hdfs://).
        fold: k, the fold that "train" leaves out and "val" reads (0..k-1).
        split: "train", "val", "final" or "test" (the module's docstring says which rows).
        batch_size: rows per batch; the last batch of an epoch may be shorter.
        columns: the columns to yield; None selects the manifest's numeric and array feature
            columns (feature_columns), and the categorical ones too with a transform.
        transform: `fold` applies the fold's fitted transform (fitted on its training originals
            only) to train and val alike; `final` the final model's (all non-holdout originals),
            for the final and test splits; None yields the stored values.
        sampling: this rank's share of the split and its order (rank, world_size, seed, ...).
        backend: a name in BACKENDS, or a backend's options (`PetastormOptions(...)`).

    Returns:
        A ShardedLoader: an IterableDataset with `len()`, `set_epoch`, `dropped` and `padded`, and
        `state_dict()`/`load_state_dict()` to resume mid-epoch (the README's "Resuming").
    """
    options = _backend_options(backend)
    if transform not in TRANSFORMS:
        raise InputError(f"unknown transform {transform!r}: use {FOLD!r}, 'final' or None")
    manifest = load_manifest(out_dir)
    files = DatasetFiles.for_split(out_dir, manifest, split, fold)
    params = load_transform(out_dir, fold if transform == FOLD else None, manifest) if transform else None
    wanted = _columns(manifest, columns, with_categorical=params is not None)
    if sampling.seed is None:  # the manifest's seed, so that ranks agree without being told
        sampling = replace(sampling, seed=int(manifest.get("seed", 0)))
    log.info("%s loader %s fold %d rank %d/%d: %d files, columns %s",
             options, split, fold, sampling.rank, sampling.world_size, len(files.urls), wanted)
    location = OutputLocation.of(out_dir)
    sources = tuple(Source.of(location, url) for url in files.urls)
    check_columns(sources[0], _stored(wanted, params))
    return options.loader(ReadPlan(f"{location.url} {split} fold {fold}", manifest.get("run_id"), sources,
                                   tuple(count_units(sources, files.keep, files.expand)), tuple(wanted), files.keep,
                                   batch_size, sampling, params.apply_numpy if params else None, files.expand))


def feature_columns(manifest: dict[str, Any], with_categorical: bool = False) -> list[str]:
    """The feature columns in manifest order: what `make_loader(columns=None)` selects.

    Args:
        manifest: the output's manifest (load_manifest).
        with_categorical: include the categorical columns, which only a transform turns into numbers.

    Returns:
        The numeric columns, then the categorical ones if asked, then the array ones.
    """
    cols = manifest["columns"]
    return [*cols["numeric"], *(cols["categorical"] if with_categorical else []), *cols["array"]]


def _backend_options(backend: str | BackendOptions) -> BackendOptions:
    if isinstance(backend, BackendOptions):
        return backend
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    return BACKENDS[backend]


def _columns(manifest: dict[str, Any], columns: Sequence[str] | None, with_categorical: bool) -> list[str]:
    selected = list(feature_columns(manifest, with_categorical) if columns is None else columns)
    if LABEL_INDEX not in selected:
        selected.append(LABEL_INDEX)
    # Partition columns live in directory names, not in the files the readers open.
    readable = {c["name"] for c in manifest["schema"]} - set(manifest["output"]["partition_by"])
    unknown = [c for c in selected if c not in readable]
    if unknown:
        raise InputError(f"unknown column(s) {', '.join(unknown)}: readable columns are "
                         f"{', '.join(sorted(readable))}")
    return selected


def _stored(columns: list[str], params: TransformParams | None) -> list[str]:
    """The columns that reach the batches as stored: not the categorical ones a transform encodes."""
    encoded = {p.column for p in params.categorical} if params else set()
    return [c for c in columns if c not in encoded]
