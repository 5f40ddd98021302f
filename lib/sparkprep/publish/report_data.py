"""What report.html shows of the data, computed without Spark and written as report_data.json beside
the manifest, so that the report is a pure function of files (manifest.json, stats.json when the run
validated, report_data.json).

From the run's two samples (quality/sample.py), its final transform and near-dup's finding:
- columns: each feature column and the label as read (every sampled input row), after cleaning (the
  sampled rows cleaning accepted) and after the fitted transform (those rows through the final
  transform, with the trainer's numpy applier): one set of rows at three points.
- folds: each feature column's training vs validation distribution in every fold, from the output's
  sample (originals), with the drift distances of quality/drift.py between the two.
- near_duplicates: what stages/dedup/near.py found (clusters, their sizes, example pairs).

Histograms, as the report draws them:
- numeric (and the lengths of text and array columns): {"kind", "edges", "low", "high", "series":
  {name: {"counts", "below", "above", "missing", "low", "high"}}}. BINS equal bins (of whole numbers
  for lengths) span the bulk of the values: from the 0.5% to the 99.5% quantile, widened to the
  minimum or maximum unless that lies further out than the bulk is wide (an outlier); `below` and
  `above` count the values outside, `low` and `high` are the extremes (of all values, and of the
  series).
- categorical: {"kind", "labels", "series": {name: {"counts", "other", "missing"}}}: the TOP most
  frequent values, `other` counts the rest.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable

import numpy as np

from sparkprep.contract import FOLD, HOLDOUT_FOLD, INTERNAL_PREFIX
from sparkprep.quality.drift import between
from sparkprep.quality.sample import Roles, Sample
from sparkprep.transform import CategoricalParams, NumericParams, TransformParams

FORMAT_VERSION = 1
BINS = 20
TOP = 12
#: The value of the as-read sample that says whether cleaning rejected the row.
REJECTED = f"{INTERNAL_PREFIX}rejected"
#: The value of the output's sample that holds the row's fold.
SAMPLED_FOLD = f"{INTERNAL_PREFIX}{FOLD}"
#: The bin of categorical values that a transform's vocabulary leaves out.
UNKNOWN = "(unknown)"
_TAILS = ("below", "above")

def _numbers(values: list[Any] | np.ndarray) -> np.ndarray:
    """`values` as float64, NaN for None."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return values
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _finite(values: list[Any] | np.ndarray) -> np.ndarray:
    x = _numbers(values)
    return x[np.isfinite(x)]


def numeric_bins(values: list[Any], kind: str = "numeric") -> dict[str, Any]:
    """The bins of a numeric histogram of `values` (module docstring), without counts.

    Args:
        values: numbers (None, NaN and ±inf are left out).
        kind: what the numbers are: numeric, or the length of a text or array column.
    """
    x = _finite(values)
    if not x.size:
        return {"kind": kind, "edges": [], "low": None, "high": None}
    low, high = float(x.min()), float(x.max())
    a, b = (float(q) for q in np.quantile(x, [0.005, 0.995]))
    if b <= a:
        a, b = low, high
    reach = b - a
    a, b = (low if low >= a - reach else a), (high if high <= b + reach else b)
    if a == b:
        edges = [a, b]
    elif kind == "numeric":
        edges = [float(e) for e in np.linspace(a, b, BINS + 1)]
    else:  # lengths: whole-number bins, or some bins would hold one length more than others
        width = max(1, -(-int(b - a) // BINS))
        edges = [float(math.floor(a) + i * width) for i in range(-(-int(b - math.floor(a) + 1) // width) + 1)]
    return {"kind": kind, "edges": edges, "low": low, "high": high}


def numeric_counts(bins: dict[str, Any], values: list[Any] | np.ndarray) -> dict[str, Any]:
    """`values` counted in `bins`: per bin (the last one closed), below, above and missing.

    Args:
        bins: `numeric_bins`.
        values: numbers (None, NaN and ±inf count as missing).
    """
    x = _finite(values)
    extremes = {"missing": len(values) - x.size, "low": float(x.min()) if x.size else None,
                "high": float(x.max()) if x.size else None}
    edges = bins["edges"]
    if not edges:
        return {"counts": [], "below": 0, "above": 0, **extremes}
    a, b = edges[0], edges[-1]
    inside = x[(x >= a) & (x <= b)]
    counts = [int(inside.size)] if a == b else [int(n) for n in np.histogram(inside, bins=edges)[0]]
    return {"counts": counts, "below": int((x < a).sum()), "above": int((x > b).sum()), **extremes}


def categorical_bins(values: list[Any], top: int = TOP) -> dict[str, Any]:
    """The `top` most frequent values of `values` (ties by value) as a histogram's bins.

    Args:
        values: strings (None left out).
        top: how many values get a bar.
    """
    seen = Counter(v for v in values if v is not None)
    return {"kind": "categorical", "labels": sorted(seen, key=lambda v: (-seen[v], v))[:top]}


def _codes(bins: dict[str, Any], values: list[Any]) -> np.ndarray:
    """Each value's label index in `bins`; len(labels) for another value, len(labels) + 1 for None."""
    index = {v: i for i, v in enumerate(bins["labels"])}
    other, missing = len(index), len(index) + 1
    return np.fromiter((missing if v is None else index.get(v, other) for v in values), dtype=np.int64, count=len(values))


def _code_counts(bins: dict[str, Any], codes: np.ndarray) -> dict[str, Any]:
    n = len(bins["labels"])
    found = np.bincount(codes, minlength=n + 2)
    return {"counts": [int(c) for c in found[:n]], "other": int(found[n]), "missing": int(found[n + 1])}


def categorical_counts(bins: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """`values` counted per label of `bins`; `other` the rest, `missing` the nulls.

    Args:
        bins: `categorical_bins`.
        values: strings or None.
    """
    return _code_counts(bins, _codes(bins, values))


def _counter(bins: dict[str, Any], values: list[Any]) -> Callable[[np.ndarray], dict[str, Any]]:
    """Counts of `values` in `bins` for any subset of them (a boolean mask), the values prepared once."""
    if bins["kind"] == "categorical":
        codes = _codes(bins, values)
        return lambda mask: _code_counts(bins, codes[mask])
    x = _numbers(values)
    return lambda mask: numeric_counts(bins, x[mask])


def histogram(bins: dict[str, Any], series: dict[str, list[Any]]) -> dict[str, Any]:
    """`bins` with each of `series` counted in them.

    Args:
        bins: `numeric_bins` or `categorical_bins`.
        series: name -> values.
    """
    count = categorical_counts if bins["kind"] == "categorical" else numeric_counts
    return {**bins, "series": {name: count(bins, values) for name, values in series.items()}}


def _bins_of(kind: str, values: list[Any]) -> dict[str, Any]:
    return categorical_bins(values) if kind == "categorical" else numeric_bins(values, kind)


def bin_keys(bins: dict[str, Any]) -> list[str]:
    """Every bin's name, in order, as the distances key them: below, 0..B-1, above (numeric), or the
    labels then `(other)` (categorical).

    Args:
        bins: a histogram or its bins.
    """
    if bins["kind"] == "categorical":
        return [*bins["labels"], "(other)"]
    return ["below", *map(str, range(max(len(bins["edges"]) - 1, 0))), "above"]


def frequencies(bins: dict[str, Any], counted: dict[str, Any]) -> dict[str, float]:
    """The share of the present values in each bin (`bin_keys`).

    Args:
        bins: the histogram's bins.
        counted: one series' counts.
    """
    if bins["kind"] == "categorical":
        values = [*counted["counts"], counted["other"]]
    else:
        values = [counted["below"], *counted["counts"], counted["above"]]
    total = sum(values)
    return {k: n / total for k, n in zip(bin_keys(bins), values) if n} if total else {}


def _position(bins: dict[str, Any]) -> Callable[[str], float]:
    """Where each numeric bin lies, for wasserstein: its centre; the tails at the extremes."""
    edges = bins["edges"]

    def at(key: str) -> float:
        if key in _TAILS:
            return bins["low"] if key == "below" else bins["high"]
        i = int(key)
        return (edges[i] + edges[min(i + 1, len(edges) - 1)]) / 2
    return at


def bin_label(bins: dict[str, Any], key: str | None) -> str | None:
    """A person's name for a bin key: the value, the range, or the tail and its extreme.

    Args:
        bins: the histogram's bins.
        key: a `bin_keys` key.
    """
    if key is None or bins["kind"] == "categorical":
        return key
    if key in _TAILS:
        return f"below {bins['edges'][0]:.4g}" if key == "below" else f"above {bins['edges'][-1]:.4g}"
    i, edges = int(key), bins["edges"]
    return f"[{edges[i]:.4g}, {edges[min(i + 1, len(edges) - 1)]:.4g}]"


def distances(hist: dict[str, Any], baseline: str, current: str) -> dict[str, Any]:
    """quality/drift.py's distances between two series of one histogram (present values only), with
    the bin that moved most named.

    Args:
        hist: a histogram.
        baseline: the series compared against (training).
        current: the other series (validation).
    """
    numeric = hist["kind"] != "categorical"
    found = between(frequencies(hist, hist["series"][baseline]), frequencies(hist, hist["series"][current]),
                    numeric, _position(hist) if numeric else lambda key: 0.0).to_dict()
    return {**found, "moved_most": bin_label(hist, found["moved_most"])}


def _kinds(roles: Roles) -> dict[str, str]:
    return {**{c: "numeric" for c in roles.numeric}, **{c: "categorical" for c in roles.strings},
            **{c: "text length" for c in roles.text}, **{c: "array length" for c in roles.arrays}}


def _transformed(column: str, values: list[Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """The histogram of `values` through the column's fitted transform (None: it has none)."""
    p = params.get(column)
    if isinstance(p, NumericParams):
        x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        out = list(p.apply_numpy(x))
        return {**histogram(numeric_bins(out), {"transformed": out}), "filled": int((~np.isfinite(x)).sum())}
    if isinstance(p, CategoricalParams):
        index = CategoricalParams(p.column, "index", p.vocabulary).apply_numpy(np.array(values, dtype=object))
        named = [UNKNOWN if i == 0 else p.vocabulary[i - 1] for i in index]
        return {**histogram(categorical_bins(named), {"transformed": named}), "encoding": p.encoding}
    return None


def column_views(as_read: Sample, roles: Roles, final: TransformParams) -> dict[str, dict[str, Any]]:
    """Per column: as read and after cleaning on shared bins (those of the cleaned values, so what
    cleaning removed shows in the tails), and after the final transform.

    Args:
        as_read: the sample of the typed input rows, with REJECTED.
        roles: the sampled columns.
        final: the final transform (fitted on every training original).
    """
    rejected = as_read.columns.get(REJECTED, [])
    params = {p.column: p for p in (*final.numeric, *final.categorical)}
    views = {}
    for column, kind in _kinds(roles).items():
        values = as_read.columns[column]
        cleaned = [v for v, r in zip(values, rejected) if not r]
        bins = _bins_of(kind, cleaned or values)
        views[column] = {"kind": kind, "role": "label" if column == roles.label else "feature",
                         "read": histogram(bins, {"as read": values, "cleaned": cleaned}),
                         "transformed": _transformed(column, cleaned, params)}
    return views


def fold_views(output: Sample, roles: Roles, k: int) -> dict[str, dict[str, Any]]:
    """Per feature column and fold: training vs validation on the bins of every cross-validation
    original, and the distances between them.

    Args:
        output: the sample of the output's originals, with SAMPLED_FOLD.
        roles: the sampled columns (the label is left out: its balance per fold is the manifest's).
        k: the number of folds.
    """
    folds = np.array(output.columns.get(SAMPLED_FOLD, []), dtype=np.int64)
    cv = folds != HOLDOUT_FOLD
    views: dict[str, dict[str, Any]] = {}
    for column, kind in _kinds(roles).items():
        if column == roles.label:
            continue
        values = output.columns[column]
        bins = _bins_of(kind, [v for v, keep in zip(values, cv) if keep])
        count = _counter(bins, values)
        by_fold = {}
        for fold in range(k):
            hist = {**bins, "series": {"training": count(cv & (folds != fold)), "validation": count(folds == fold)}}
            by_fold[str(fold)] = {"series": hist["series"], "distances": distances(hist, "training", "validation")}
        views[column] = {**bins, "folds": by_fold}
    return views


def build_report_data(*, as_read: Sample, output: Sample, roles: Roles, final: TransformParams, k: int,
                      near_duplicates: dict[str, Any] | None) -> dict[str, Any]:
    """The content of report_data.json (module docstring).

    Args:
        as_read: the sample of the typed input rows, with REJECTED.
        output: the sample of the output's originals, with SAMPLED_FOLD.
        roles: the sampled columns.
        final: the final transform.
        k: the number of folds.
        near_duplicates: near-dup's finding (stages/dedup/near.py), None without dedup.near.
    """
    return {"format_version": FORMAT_VERSION,
            "samples": {"as_read": as_read.rows, "output": output.rows},
            "columns": column_views(as_read, roles, final),
            "folds": fold_views(output, roles, k),
            "near_duplicates": near_duplicates}
