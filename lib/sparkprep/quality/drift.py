"""Distances between two distributions of one column (baseline vs current), for drift and skew.

Numeric columns are compared on their DDSketch buckets (same ALPHA on both sides, so the buckets
line up exactly); categorical columns on their value frequencies (values beyond both sides' top-k
are not seen). Every distance is always computed; thresholds decide what becomes an anomaly.
`between` computes the same distances for any two frequency distributions over shared bins (the
report's training vs validation histograms of each fold), given where each bin lies.

METRICS is the one list of distances: validation, the thresholds an inferred schema starts with
(schema_rules), the CLI and the report read it. Adding a metric: a module with its function and
its line in METRICS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparkprep.quality.profile import ColumnStats, bucket_value

#: PSI smoothing for a bin that is empty on one side (the usual 1e-4 floor).
_PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class Distances:
    """Every METRICS distance of one column, by name (None where the metric does not apply to the
    column's kind), read as attributes (`d.psi`); `moved_most` is the value/bucket with the
    largest |p - q|.

    Args:
        values: the distance per metric name, in METRICS order.
        moved_most: the value or bucket that moved most (linf's).
    """

    values: dict[str, float | None]
    moved_most: str | None

    def __getattr__(self, name: str) -> float | None:
        values = self.__dict__.get("values") or {}
        if name in values:
            return values[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """The distances and `moved_most`, as stats.json and the report record them."""
        return {**self.values, "moved_most": self.moved_most}


def _frequencies(col: ColumnStats) -> dict[str, float]:
    counts = dict(col.buckets) if col.kind == "numeric" else {k: n for k, n in col.top}
    total = sum(counts.values())
    return {k: n / total for k, n in counts.items()} if total else {}


def linf(p: dict[str, float], q: dict[str, float]) -> tuple[float, str | None]:
    """max |p - q| and the key where it occurs; ties go to the larger relative change
    |p - q| / max(p, q) (the value that moved most for its size), then to the smaller key.

    Args:
        p: the baseline's frequencies.
        q: the batch's.
    """
    def score(k: str) -> tuple[float, float]:
        a, b = p.get(k, 0.0), q.get(k, 0.0)
        return round(abs(a - b), 12), abs(a - b) / max(a, b)

    keys = sorted(set(p) | set(q))  # max() keeps the first of equals: the smaller key
    best = max(keys, key=score, default=None)
    return (abs(p.get(best, 0.0) - q.get(best, 0.0)), best) if best is not None else (0.0, None)


def jensen_shannon(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen–Shannon divergence with log base 2 (0 = same, 1 = disjoint).

    Args:
        p: the baseline's frequencies.
        q: the batch's.
    """
    total = 0.0
    for k in set(p) | set(q):
        a, b = p.get(k, 0.0), q.get(k, 0.0)
        m = (a + b) / 2
        total += (a * math.log2(a / m) if a else 0.0) + (b * math.log2(b / m) if b else 0.0)
    return max(total / 2, 0.0)


def psi(p: dict[str, float], q: dict[str, float]) -> float:
    """Population stability index sum (q - p) ln(q / p), empty bins floored at 1e-4.

    Args:
        p: the baseline's frequencies.
        q: the batch's.
    """
    total = 0.0
    for k in set(p) | set(q):
        a, b = max(p.get(k, 0.0), _PSI_FLOOR), max(q.get(k, 0.0), _PSI_FLOOR)
        total += (b - a) * math.log(b / a)
    return total


def wasserstein(p: dict[str, float], q: dict[str, float], at: Callable[[str], float] = bucket_value) -> float:
    """1-D earth mover's distance between bucket distributions at their representative values.

    Args:
        p: the baseline's bucket frequencies.
        q: the batch's.
        at: where a bucket lies (default: a DDSketch bucket key's representative value).
    """
    keys = sorted(set(p) | set(q), key=at)
    distance, cdf_gap = 0.0, 0.0
    for left, right in zip(keys, keys[1:]):
        cdf_gap += p.get(left, 0.0) - q.get(left, 0.0)
        distance += abs(cdf_gap) * (at(right) - at(left))
    return distance


@dataclass(frozen=True)
class Metric:
    """A distance between two frequency distributions (value or bucket -> fraction).

    Args:
        distance: the distance of (baseline, current, where each bucket lies).
        threshold: the drift threshold an inferred schema starts with (None: not checked).
        numeric_only: the metric needs ordered buckets, so categorical columns have none.
    """

    distance: Callable[[dict[str, float], dict[str, float], Callable[[str], float]], float]
    threshold: float | None
    numeric_only: bool = False


#: The drift distances, in the order they are reported.
METRICS: dict[str, Metric] = {
    "linf": Metric(lambda p, q, at: linf(p, q)[0], 0.1),
    "js": Metric(lambda p, q, at: jensen_shannon(p, q), 0.1),
    "psi": Metric(lambda p, q, at: psi(p, q), 0.25),
    "wasserstein": Metric(wasserstein, None, numeric_only=True),
}


def distances(baseline: ColumnStats, current: ColumnStats) -> Distances:
    """All METRICS distances between two profiles of the same column.

    Args:
        baseline: the column in the baseline profile.
        current: the column in the profile being checked.
    """
    return between(_frequencies(baseline), _frequencies(current), baseline.kind == current.kind == "numeric")


def between(p: dict[str, float], q: dict[str, float], numeric: bool,
            at: Callable[[str], float] = bucket_value) -> Distances:
    """All METRICS distances between two frequency distributions over the same bins.

    >>> between({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1}, numeric=False).psi

    Args:
        p: the baseline's frequencies (bin -> fraction).
        q: the current ones.
        numeric: the bins are ordered values (else wasserstein is None).
        at: where a bin lies, for wasserstein (default: a DDSketch bucket key's value).
    """
    values = {name: None if m.numeric_only and not numeric else m.distance(p, q, at) for name, m in METRICS.items()}
    return Distances(values, moved_most=linf(p, q)[1])
