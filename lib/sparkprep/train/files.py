"""Which Parquet files a split reads: partition pruning on `fold`, never read-then-drop.

Parquet output is listed by its hive directories (`data/fold=<n>/`); Delta output is the file
list of the snapshot the manifest pins (`output.delta_version`), so a file that a later version
removed is never read.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from sparkprep.contract import COPIES_COUNTED, FOLD, FOLD_DIR, HOLDOUT_FOLD, IN_TRAIN, REPLICA, SPLITS
from sparkprep.errors import ContractError, InputError
from sparkprep.train.location import OutputLocation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of the output and the fold its partition holds.

    Args:
        url: the file's URL.
        fold: the fold of its partition (-1: the holdout).
    """

    url: str
    fold: int


@dataclass(frozen=True)
class RowFilter:
    """The rows a split reads from its files: those whose `column` equals `value`.

    Args:
        column: the column the filter reads.
        value: the value a row read has in it.
    """

    column: str
    value: Any

    def mask(self, table: pa.Table) -> pa.ChunkedArray:
        """True where a row is read (a null reads as false, as Table.filter drops it).

        Args:
            table: rows of the split's files, with `column` among their columns.
        """
        return pc.equal(table.column(self.column), self.value)


#: val/test: originals only, no oversampled copies.
ORIGINALS = RowFilter(REPLICA, 0)
#: train/final of an undersampled run: no undersampled originals.
TRAINING = RowFilter(IN_TRAIN, True)


@dataclass(frozen=True)
class DatasetFiles:
    """The files one split reads, and which of their rows.

    >>> files = DatasetFiles.for_split("/data/prepared", load_manifest("/data/prepared"), "val", fold=2)
    >>> files.urls[0], files.keep
    ('file:///data/prepared/data/fold=2/part-00000-….parquet', RowFilter(column='replica', value=0))

    Args:
        urls: the files, sorted.
        keep: the rows of the files the split reads; None for every row.
        expand: each row read is 1 + its `copies` rows, replica 0..copies (train and final of an
            output whose copies are counted: rebalance.copies count; sparkprep.train.copies).
    """

    urls: tuple[str, ...]
    keep: RowFilter | None
    expand: bool = False

    @classmethod
    def for_split(cls, out_dir: str, manifest: dict[str, Any], split: str, fold: int = 0) -> DatasetFiles:
        """Select by the data contract (DESIGN.md), for fold k: train = fold not in {k, -1};
        val = fold == k and replica == 0; final = fold != -1; test = fold == -1 and replica == 0.
        When the run undersampled, train and final also need in_train (older outputs have no
        such column and no undersampling); when it counted its copies instead of writing them
        (rebalance.copies: count), train and final expand each row into 1 + copies rows.

        Args:
            out_dir: the output root (a local path or a URI).
            manifest: its manifest (load_manifest), which says k, the format and undersampling.
            split: "train", "val", "final" or "test".
            fold: k, for train and val (0..k-1).

        Raises:
            InputError: an unknown split, a fold out of range, or no files for the split.
            ContractError: a file lies in a fold the manifest does not know.
        """
        k = int(manifest["split"]["k"])
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
        if split in ("train", "val") and not 0 <= fold < k:
            raise InputError(f"fold {fold} is out of range for split {split!r}: this dataset has "
                             f"k={k} folds, so fold must be in 0..{k - 1}")
        keep = {
            "train": lambda f: f not in (fold, HOLDOUT_FOLD),
            "val": lambda f: f == fold,
            "final": lambda f: f != HOLDOUT_FOLD,
            "test": lambda f: f == HOLDOUT_FOLD,
        }[split]
        location = OutputLocation.of(out_dir)
        files = list_data_files(location, manifest)
        _check_folds(files, k)
        urls = tuple(sorted(f.url for f in files if keep(f.fold)))
        if not urls:
            raise InputError(f"no data files for split {split!r} (fold {fold}) under "
                             f"{location.url_of(_data_path(location, manifest))}: the dataset has no rows there")
        log.info("split %s fold %d: %d of %d files", split, fold, len(urls), len(files))
        rebalance = manifest.get("rebalance") or {}
        if split in ("val", "test"):
            return cls(urls=urls, keep=ORIGINALS)
        return cls(urls=urls, keep=TRAINING if rebalance.get("method") == "undersample" else None,
                   expand=rebalance.get("copies") == COPIES_COUNTED)


def list_data_files(location: OutputLocation, manifest: dict[str, Any]) -> list[DataFile]:
    """Every data file of the output the manifest describes, with its fold.

    Args:
        location: the output root.
        manifest: its manifest, which says the format (and the Delta version to read).
    """
    output = manifest["output"]
    if output["format"] == "parquet":
        return _parquet_files(location, _data_path(location, manifest))
    if output["format"] == "delta":
        return _delta_files(location, _data_path(location, manifest), output["delta_version"])
    raise InputError(f"unknown output.format {output['format']!r} in the manifest of {location.url}")


def _data_path(location: OutputLocation, manifest: dict[str, Any]) -> str:
    return location.inside(manifest["output"].get("data_path") or "data", "output.data_path")


def _parquet_files(location: OutputLocation, data: str) -> list[DataFile]:
    root = location.path_of(data)
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    files = []
    for info in location.fs.get_file_info(selector):
        relative = info.path[len(root) + 1:]
        parts = relative.split("/")
        # Spark's _SUCCESS, .crc side files and staging directories are not data.
        if info.type != pafs.FileType.File or any(p.startswith(("_", ".")) for p in parts):
            continue
        if not parts[-1].endswith(".parquet"):
            continue
        url = location.url_of(f"{data}/{relative}")
        files.append(DataFile(url=url, fold=_fold_of_directory(parts[0], url)))
    if not files:
        raise InputError(f"no Parquet files under {location.url_of(data)}: the dataset is empty or "
                         f"was moved after its manifest was written")
    return files


def _fold_of_directory(directory: str, url: str) -> int:
    value = directory[len(FOLD_DIR):] if directory.startswith(FOLD_DIR) else ""
    try:
        return int(value)
    except ValueError:
        raise ContractError(f"{url} is not under a {FOLD_DIR}<n>/ directory: the output is not "
                            f"partitioned by fold as the data contract requires") from None


def _delta_files(location: OutputLocation, data: str, version: int | None) -> list[DataFile]:
    # Imported here: only Delta outputs need delta-rs.
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    table_url = location.url_of(data)
    if version is None:
        raise InputError(f"the manifest of {location.url} has output.format delta but no "
                         f"output.delta_version: rerun the ETL job")
    try:
        actions = pa.table(DeltaTable(table_url, version=version).get_add_actions(flatten=True))
    except DeltaError as err:
        raise InputError(f"cannot load version {version} of the Delta table {table_url} that the "
                         f"manifest pins ({err}); its log may have been cleaned up: rerun the ETL job "
                         f"or restore that version") from err
    except OSError as err:  # delta-rs's transport errors (S3 unreachable, refused, denied)
        # delta-rs prints its error chain over many lines with terminal colours: one plain line here.
        chain = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(err)).split())
        raise InputError(f"cannot reach the Delta table {table_url}: {chain}; check the endpoint and "
                         f"credentials (AWS_ENDPOINT_URL, AWS_ALLOW_HTTP for plain http, "
                         f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)") from err
    files = [DataFile(url=p if "://" in p else f"{table_url}/{unquote(p)}", fold=int(f))
             for p, f in zip(actions.column("path").to_pylist(),
                             actions.column(f"partition.{FOLD}").to_pylist())]
    _check_present(location, files, table_url, version)
    return files


def _check_present(location: OutputLocation, files: list[DataFile], table_url: str, version: int) -> None:
    """VACUUM deletes an old snapshot's files but keeps its log: fail clearly, not mid-epoch."""
    prefix = location.url + "/"
    paths = [location.path_of(f.url[len(prefix):]) for f in files if f.url.startswith(prefix)]
    missing = [i.path for i in location.fs.get_file_info(paths) if i.type != pafs.FileType.File]
    if missing:
        raise InputError(f"version {version} of the Delta table {table_url} refers to {len(missing)} "
                         f"missing file(s), e.g. {missing[0]}: it was probably vacuumed; rerun the ETL job")


def _check_folds(files: list[DataFile], k: int) -> None:
    for f in files:
        if not HOLDOUT_FOLD <= f.fold < k:
            raise ContractError(f"{f.url} is in fold {f.fold}, outside {HOLDOUT_FOLD}..{k - 1} for "
                                f"k={k}: the data and its manifest disagree")
