"""Read `<out>/manifest.json`, the file that says a dataset is complete, and the transform file
it names (`transform-<run_id>.json`, beside it; docs/manifest.md)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow.fs as pafs

from sparkprep.contract import BLOCKED, MANIFEST, MANIFEST_FORMAT_VERSION
from sparkprep.errors import InputError
from sparkprep.train.location import OutputLocation
from sparkprep.transform import TransformParams, params_of

log = logging.getLogger(__name__)


def load_manifest(out_dir: str) -> dict[str, Any]:
    """The manifest of the sparkprep output at `out_dir` (a local path or a URI).

    Raises InputError when it is missing (the dataset is incomplete: the manifest is written
    last), is not JSON, has a format_version this reader does not know, or records a run that the
    quality gate blocked (such a run published no data).

    >>> manifest = load_manifest("/data/prepared")
    >>> manifest["split"]["k"], manifest["classes"]
    (5, ['class_0', 'class_1', 'class_2'])

    Args:
        out_dir: the output root, a local path or a URI.
    """
    return _load(OutputLocation.of(out_dir))


def _read_json(location: OutputLocation, name: str, missing: str) -> Any:
    """The JSON file `name` of the output; InputError `missing` when there is none."""
    info = location.fs.get_file_info(location.path_of(name))
    if info.type != pafs.FileType.File:
        raise InputError(f"no {name} in {location.url}: {missing}")
    with location.fs.open_input_stream(info.path) as stream:
        text = stream.read().decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{location.url_of(name)} is not valid JSON ({err}); rerun the ETL job") from err


def _load(location: OutputLocation) -> dict[str, Any]:
    uri = location.url_of(MANIFEST)
    manifest = _read_json(location, MANIFEST, "the dataset is incomplete or is not a sparkprep output "
                          "(the manifest is written last; rerun the ETL job)")
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != MANIFEST_FORMAT_VERSION:
        raise InputError(f"{uri} has format_version {version!r}; this reader knows only "
                         f"{MANIFEST_FORMAT_VERSION}: use the sparkprep version that wrote it")
    if manifest.get("status") == BLOCKED:
        raise InputError(f"{uri} records run {manifest.get('run_id')}, which validation blocked: it published "
                         f"no data (why: report.html beside it). Read the dataset at "
                         f"{manifest.get('output', {}).get('path')}, or fix the input and rerun the ETL job")
    log.debug("loaded %s (run %s)", uri, manifest.get("run_id"))
    return manifest


def load_transform(out_dir: str, fold: int | None, manifest: dict[str, Any] | None = None) -> TransformParams:
    """The fitted transform of fold `fold` (None: the final model) from the transform file that
    `manifest` (default: `<out>/manifest.json`) names. Pass the manifest the data was selected
    with: a Delta output's older manifest names its own run's parameters.

    >>> params = load_transform("/data/prepared", fold=0)
    >>> batch = params.apply_numpy(batch)

    Args:
        out_dir: the output root, a local path or a URI.
        fold: the fold whose parameters to read; None for the final model's.
        manifest: the manifest the data was selected with; None reads the current one.

    Raises:
        InputError: the manifest names no transform file, or it is missing or unreadable.
    """
    location = OutputLocation.of(out_dir)
    manifest = _load(location) if manifest is None else manifest
    name = ((manifest.get("normalisation") or {}).get("transform") or {}).get("path")
    if not name:
        raise InputError(f"the manifest of {location.url} names no transform file (normalisation.transform."
                         f"path): it was written by a sparkprep without fitted transforms; rerun the ETL job "
                         f"or use transform=None")
    name = location.inside(name, "normalisation.transform.path")
    document = _read_json(location, name, "the manifest names it but it is missing; rerun the ETL job "
                          "or use transform=None")
    return params_of(document, fold, location.url_of(name))
