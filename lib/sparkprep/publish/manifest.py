"""manifest.json: what a finished dataset holds (format documented in docs/manifest.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sparkprep.contract import (
    BLOCKED, HOLDOUT_FOLD, MANIFEST_FORMAT_VERSION, PUBLISHED, RESERVED_COLUMNS, STATS, transform_file)
from sparkprep import __version__
from sparkprep.config import Config
from sparkprep.errors import ContractError
from sparkprep.stages.normalise.fit import FoldGroups
from sparkprep.stages.split import training_folds
from sparkprep.transform import TRANSFORM_FORMAT_VERSION


@dataclass(frozen=True)
class RowCounts:
    """Row accounting; `output` counts originals read back from the written data."""

    input: int
    rejected: int
    duplicates: int
    output: int
    replicas: int = 0
    by_fold: dict[str, int] = field(default_factory=dict)
    #: Originals that training portions skip (`in_train` false); still in `output` and validation.
    undersampled: int = 0

    def check(self) -> None:
        """The law of DESIGN.md: every input row is output, a duplicate, or quarantined."""
        if self.input != self.rejected + self.duplicates + self.output:
            raise ContractError(
                f"row accounting broken: input {self.input} != rejected {self.rejected} + "
                f"duplicates {self.duplicates} + output {self.output}; nothing was published")


def class_weights(counts: list[int]) -> list[float]:
    """scikit-learn's 'balanced' weights n / (C * n_c); 0 for a class with no rows.

    Args:
        counts: rows per class, in label_index order.
    """
    n, c = sum(counts), len(counts)
    return [n / (c * n_c) if n_c else 0.0 for n_c in counts]


def class_priors(counts: list[int]) -> list[float]:
    """Each class's share of the rows; 0 for all when there are none.

    Args:
        counts: rows per class, in label_index order.
    """
    n = sum(counts)
    return [n_c / n if n else 0.0 for n_c in counts]


def _per_training_set(groups: FoldGroups, k: int, classes: list[str], numeric: list[str], run_id: str) -> dict[str, Any]:
    sets = {"final": training_folds(k, None), **{str(f): training_folds(k, f) for f in range(k)}}
    # Weights and priors describe what a trainer reads: originals and their copies, minus
    # undersampled originals. Normalisation below stays fitted on every training original.
    counts = {name: groups.class_counts(folds, len(classes), as_read=True) for name, folds in sets.items()}
    stats = {name: {c: m.to_dict() for c, m in groups.merged(folds, numeric).items()}
             for name, folds in sets.items()}
    folds_only = [str(f) for f in range(k)]
    return {
        "class_weights": {"final": class_weights(counts["final"]),
                          "folds": {f: class_weights(counts[f]) for f in folds_only}},
        "class_priors": {"final": class_priors(counts["final"]),
                         "folds": {f: class_priors(counts[f]) for f in folds_only}},
        "normalisation": {
            "method": "standard",
            "fitted_on": "originals of the training rows: fold not in {k, -1} and replica == 0",
            # The transform to apply (every method, per fold and final) lives beside the manifest,
            # one file per run: an older Delta manifest keeps naming its own run's parameters.
            "transform": {"path": transform_file(run_id), "format_version": TRANSFORM_FORMAT_VERSION,
                          "materialised": None},  # set by prepare with normalise.materialise
            "final": stats["final"],
            "folds": {f: stats[f] for f in folds_only},
        },
    }


def _per_cv_fold(counts: dict[tuple[int, int], int], k: int, classes: list[str]) -> dict[str, dict[str, int]]:
    """fold -> class -> count for folds 0..k-1, from counts keyed by (fold, label_index)."""
    return {str(f): {c: counts.get((f, i), 0) for i, c in enumerate(classes)} for f in range(k)}


def _identity(config: Config, status: str, run_id: str, created_at: str, inputs: list[dict[str, Any]],
              output: dict[str, Any]) -> dict[str, Any]:
    """What every manifest starts with: format, status, the run, its config, inputs and output."""
    return {"format_version": MANIFEST_FORMAT_VERSION, "package_version": __version__, "status": status,
            "created_at": created_at, "run_id": run_id, "seed": config.split.seed,
            "config_sha256": config.sha256(), "config": config.model_dump(mode="json", by_alias=True),
            "inputs": inputs, "output": output}


def build_manifest(*, config: Config, run_id: str, created_at: str, classes: list[str],
                   groups: FoldGroups, rows: RowCounts, rejections: dict[str, int],
                   rejections_by_column: dict[tuple[str, str | None], int], duplicates: dict[str, int],
                   conflicting_rows: int, split_method: dict[str, Any], inputs: list[dict[str, Any]],
                   output: dict[str, Any], schema: list[dict[str, str]], quarantine: dict[str, Any],
                   warnings: list[str], timings: dict[str, float]) -> dict[str, Any]:
    """Assemble the manifest; raises ContractError when the row accounting does not hold.

    Args:
        config: the run's config.
        run_id: the run's id.
        created_at: when it started (ISO 8601).
        classes: the classes in label_index order.
        groups: the counts and statistics measured on the written data.
        rows: the row accounting.
        rejections: rejected rows per reason.
        rejections_by_column: rejected rows per (reason, column).
        duplicates: input rows absorbed per dedup rule, in the rules' order.
        conflicting_rows: rows in a feature group with more than one label.
        split_method: the split plan's method and what it reports.
        inputs: the input paths, formats and versions.
        output: the output's format, path and version.
        schema: the written columns and types.
        quarantine: the quarantine's path, rows and version.
        warnings: the split's warnings.
        timings: seconds per stage.
    """
    rows.check()
    k = config.split.k
    per_fold_class = {str(f): dict(zip(classes, groups.class_counts([f], len(classes))))
                      for f in [HOLDOUT_FOLD, *range(k)]}
    return {
        **_identity(config, PUBLISHED, run_id, created_at, inputs, output),
        "columns": _columns(config, schema),
        "schema": schema,
        "classes": classes,
        "class_counts": {c: sum(per_fold_class[f][c] for f in per_fold_class) for c in classes},
        "split": {**{key: getattr(config.split, key) for key in _SPLIT_KEYS}, **split_method},
        "rows": asdict(rows),
        "counts": {"per_fold_per_class": per_fold_class,
                   "replicas_per_fold_per_class": _per_cv_fold(groups.copies, k, classes),
                   "undersampled_per_fold_per_class": _per_cv_fold(groups.undersampled, k, classes)},
        "rebalance": config.rebalance.model_dump(mode="json"),
        **_per_training_set(groups, k, classes, config.columns.numeric, run_id),  # type: ignore[union-attr]
        "rejections": _rejections(rejections, rejections_by_column),
        "duplicates": {"by_kind": duplicates, "label_conflicts": {"rows": conflicting_rows, "policy": config.dedup.conflicts}},
        "quarantine": quarantine,
        "warnings": warnings,
        "timings_s": timings,
    }


#: The split's settings the manifest records, in this order.
_SPLIT_KEYS = ("k", "holdout_fraction", "seed", "holdout_column", "holdout_values", "holdout_from", "group_column")


def _rejections(by_reason: dict[str, int], by_column: dict[tuple[str, str | None], int]) -> dict[str, Any]:
    return {"by_reason": by_reason,
            "by_column": [{"reason": r, "column": c, "rows": n} for (r, c), n in sorted(by_column.items(), key=str)]}


def _columns(config: Config, schema: list[dict[str, str]]) -> dict[str, Any]:
    """The columns by role; `other`: data columns with no role."""
    cols = config.columns
    assert cols is not None
    data_columns = {c["name"] for c in schema} - set(RESERVED_COLUMNS)
    roles = set(cols.numeric) | set(cols.categorical) | set(cols.array) | set(cols.text) | {cols.label}
    return {"label": cols.label, "numeric": cols.numeric, "categorical": cols.categorical,
            "array": cols.array, "text": cols.text,
            "other": sorted(data_columns - roles), "reserved": list(RESERVED_COLUMNS)}


def build_blocked_manifest(*, config: Config, run_id: str, created_at: str, inputs: list[dict[str, Any]],
                           output: dict[str, Any], message: str, previous_run_id: str | None,
                           stats: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    """The record of a run the quality gate stopped: why (message, stats summary; the anomalies are
    added by record_validation), with what (config, inputs), and which dataset stays in force.

    Args:
        config: the run's config.
        run_id: the run's id.
        created_at: when it started.
        inputs: the input paths, formats and versions.
        output: the output's format and path (not published).
        message: why the gate stopped the run.
        previous_run_id: the run whose dataset stays in force, if any.
        stats: the profile's summary.
        timings: seconds per stage.
    """
    return {
        **_identity(config, BLOCKED, run_id, created_at, inputs, output),
        "blocked": {"by": "validation", "message": message, "previous_run_id": previous_run_id},
        "stats_summary": stats,
        "timings_s": timings,
    }


def record_validation(manifest: dict[str, Any], validation: dict[str, Any]) -> None:
    """The quality gate's verdict (`validation`), with the stats.json it was made from.

    Args:
        manifest: the run's manifest, changed in place.
        validation: the verdict (`Validation.to_dict()`).
    """
    manifest["validation"] = {**validation, "stats": STATS}


def record_verification(manifest: dict[str, Any], checks: list[str]) -> None:
    """The checks the dataset passed before publishing (`verified`).

    Args:
        manifest: the run's manifest, changed in place.
        checks: the names of the checks run (publish.verify).
    """
    manifest["verified"] = checks


def record_materialised(manifest: dict[str, Any], path: str, version: int | None) -> None:
    """The Spark-transformed copy of the data (normalise.materialise), with the final transform.

    Args:
        manifest: the run's manifest, changed in place.
        path: the copy's directory, relative to the output.
        version: its Delta version (None for Parquet).
    """
    manifest["normalisation"]["transform"]["materialised"] = {"path": path, "with": "final", "delta_version": version}


def transform_path(manifest: dict[str, Any]) -> str:
    """Where the run's transform document goes, relative to the output.

    Args:
        manifest: the run's manifest.
    """
    return manifest["normalisation"]["transform"]["path"]
