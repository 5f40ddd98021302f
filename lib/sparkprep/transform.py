"""Fitted feature transforms: the numbers (`TransformParams`) and the numpy applier.

Importable without pyspark or torch: the ETL side fits the numbers (sparkprep.stages.normalise.fit, which also
applies them in Spark), the trainer applies them on the fly with numpy (`apply_numpy`), and
`sparkprep.train.serving.TransformModule` is the same transform as a torch module for serving.
The three appliers compute the same float64 expressions in the same order:

    numeric:      v = fill if x is null/NaN/±inf else (sign(x)·log1p(|x|) if log1p else x)
                  v = min(max(v, lower), upper)                      (no bound: ±inf)
                  out = (v - center) / scale                         float64
    categorical:  index = 1 + position of the value in `vocabulary`, 0 = unknown bucket (null,
                  unseen, or cut by min_count/max_size); one-hot: float64 rows of width 1 + len(vocabulary)
    array:        v = center[i] where the element is NaN/±inf; out = (v - center[i]) / scale[i]

`transform-<run_id>.json` (beside manifest.json, which names it) holds the parameters of every fold
and of the final model: {"format_version": 1, "fitted_on": "...", "final": {...}, "folds": {"0": {...}, ...}}.
One file per run, so a Delta output's older manifest still names its own run's parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkprep.errors import ContractError, InputError

TRANSFORM_FORMAT_VERSION = 1
UNKNOWN = 0  # index of the unknown bucket of every categorical column
FITTED_ON = ("originals of the training rows: fold not in {k, -1} and replica == 0 for fold k; "
             "fold != -1 and replica == 0 for final")


def _bound(value: float | None, default: float) -> float:
    return default if value is None else value


def _json_bound(value: float) -> float | None:
    return None if math.isinf(value) else value


@dataclass(frozen=True)
class NumericParams:
    """One numeric column; `lower`/`upper` are ±inf when it is not clipped (null in JSON)."""

    column: str
    method: str
    log1p: bool
    fill: float
    lower: float
    upper: float
    center: float
    scale: float
    count: int  # present training values the statistics came from

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "method": self.method, "log1p": self.log1p, "fill": self.fill,
                "lower": _json_bound(self.lower), "upper": _json_bound(self.upper),
                "center": self.center, "scale": self.scale, "count": self.count}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericParams:
        """The parameters as a transform file writes them.

        Args:
            d: one column's entry.
        """
        return cls(d["column"], d["method"], bool(d["log1p"]), float(d["fill"]),
                   _bound(d["lower"], -math.inf), _bound(d["upper"], math.inf),
                   float(d["center"]), float(d["scale"]), int(d["count"]))

    def apply_numpy(self, x: np.ndarray) -> np.ndarray:
        """The transformed values: filled, clipped, centred and scaled.

        Args:
            x: the column's values.
        """
        x = np.asarray(x, dtype=np.float64)
        present = np.isfinite(x)
        with np.errstate(invalid="ignore"):
            v = np.sign(x) * np.log1p(np.abs(x)) if self.log1p else x
        v = np.where(present, v, self.fill)
        return (np.minimum(np.maximum(v, self.lower), self.upper) - self.center) / self.scale


@dataclass(frozen=True)
class CategoricalParams:
    """One string column: its vocabulary in index order (index 0 is the unknown bucket)."""

    column: str
    encoding: str  # "index" (int64) or "onehot" (float64, width 1 + len(vocabulary))
    vocabulary: tuple[str, ...]

    @property
    def width(self) -> int:
        return 1 + len(self.vocabulary)

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "encoding": self.encoding, "unknown_index": UNKNOWN,
                "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalParams:
        """The parameters as a transform file writes them.

        Args:
            d: one column's entry.
        """
        return cls(d["column"], d["encoding"], tuple(d["vocabulary"]))

    def apply_numpy(self, values: np.ndarray) -> np.ndarray:
        """Each value's index in the vocabulary (UNKNOWN where it has none), one-hot where the encoding says.

        Args:
            values: the column's values.
        """
        lookup = {v: i + 1 for i, v in enumerate(self.vocabulary)}
        index = np.fromiter((lookup.get(v, UNKNOWN) if isinstance(v, str) else UNKNOWN for v in values),
                            dtype=np.int64, count=len(values))
        if self.encoding == "index":
            return index
        return np.eye(self.width, dtype=np.float64)[index]


@dataclass(frozen=True)
class ArrayParams:
    """One fixed-length array column: center and scale per position (equal entries when global)."""

    column: str
    method: str
    per_element: bool
    center: tuple[float, ...]
    scale: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "method": self.method, "per_element": self.per_element,
                "center": list(self.center), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArrayParams:
        """The parameters as a transform file writes them.

        Args:
            d: one column's entry.
        """
        return cls(d["column"], d["method"], bool(d["per_element"]),
                   tuple(float(v) for v in d["center"]), tuple(float(v) for v in d["scale"]))

    def apply_numpy(self, x: np.ndarray) -> np.ndarray:
        """Each element filled, centred and scaled by its position's parameters.

        Args:
            x: the arrays, one row each (2-D).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.center):
            raise ContractError(f"array column {self.column!r} has shape {x.shape}; the transform was "
                                f"fitted on arrays of length {len(self.center)}")
        center, scale = np.asarray(self.center), np.asarray(self.scale)
        return (np.where(np.isfinite(x), x, center) - center) / scale


@dataclass(frozen=True)
class TransformParams:
    """Every fitted column transform of one training set (fold k, or "final")."""

    fitted_on: str
    numeric: tuple[NumericParams, ...] = ()
    categorical: tuple[CategoricalParams, ...] = ()
    arrays: tuple[ArrayParams, ...] = ()
    rows: int | None = None  # training originals the parameters were fitted on (None: not recorded)

    @property
    def columns(self) -> list[str]:
        return [p.column for p in (*self.numeric, *self.categorical, *self.arrays)]

    def to_dict(self) -> dict[str, Any]:
        return {"fitted_on": self.fitted_on, "numeric": [p.to_dict() for p in self.numeric],
                "categorical": [p.to_dict() for p in self.categorical],
                "arrays": [p.to_dict() for p in self.arrays], "rows": self.rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TransformParams:
        """The parameters of one training set as a transform file writes them.

        Args:
            d: the set's entry.
        """
        return cls(d["fitted_on"], tuple(NumericParams.from_dict(p) for p in d["numeric"]),
                   tuple(CategoricalParams.from_dict(p) for p in d["categorical"]),
                   tuple(ArrayParams.from_dict(p) for p in d["arrays"]), d.get("rows"))

    def apply_numpy(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A new batch: the transformed columns replaced, every other column as it was.

        >>> params.apply_numpy({"num_0": np.array([1.0, np.nan]), "cat_0": np.array(["a", None], object)})

        Args:
            batch: column name -> values.
        """
        out = dict(batch)
        for p in (*self.numeric, *self.categorical, *self.arrays):
            if p.column in batch:
                out[p.column] = p.apply_numpy(batch[p.column])
        return out


def transform_document(final: TransformParams, folds: dict[int, TransformParams]) -> dict[str, Any]:
    """The content of a transform file.

    Args:
        final: the final model's parameters.
        folds: each fold's.
    """
    return {"format_version": TRANSFORM_FORMAT_VERSION, "fitted_on": FITTED_ON, "final": final.to_dict(),
            "folds": {str(f): p.to_dict() for f, p in sorted(folds.items())}}


def params_of(document: dict[str, Any], fold: int | None, source: str = "transform file") -> TransformParams:
    """The parameters of fold `fold` (None: final) from a transform file's document.

    Args:
        document: a transform file's parsed content.
        fold: the fold (None: the final model).
        source: the file, named in errors.
    """
    version = document.get("format_version")
    if version != TRANSFORM_FORMAT_VERSION:
        raise InputError(f"{source} has format_version {version!r}; this reader knows only "
                         f"{TRANSFORM_FORMAT_VERSION}: use the sparkprep version that wrote it")
    if fold is None:
        return TransformParams.from_dict(document["final"])
    if str(fold) not in document["folds"]:
        raise InputError(f"{source} has no parameters for fold {fold}: folds are {', '.join(document['folds'])}")
    return TransformParams.from_dict(document["folds"][str(fold)])
