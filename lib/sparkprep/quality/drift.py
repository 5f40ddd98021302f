"""Distances between two distributions of one column (baseline vs current), for drift and skew.

Numeric columns are compared on their DDSketch buckets (same ALPHA on both sides, so the buckets
line up exactly); categorical columns on their value frequencies (values beyond both sides' top-k
are not seen). Every distance is always computed; thresholds decide what becomes an anomaly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sparkprep.quality.profile import ColumnStats, bucket_value

#: PSI smoothing for a bin that is empty on one side (the usual 1e-4 floor).
_PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class Distances:
    """All distances of one column; `moved_most` is the value/bucket with the largest |p - q|."""

    linf: float
    js: float
    psi: float
    wasserstein: float | None
    moved_most: str | None

    def to_dict(self) -> dict:
        return dict(vars(self))


def _frequencies(col: ColumnStats) -> dict[str, float]:
    counts = dict(col.buckets) if col.kind == "numeric" else {k: n for k, n in col.top}
    total = sum(counts.values())
    return {k: n / total for k, n in counts.items()} if total else {}


def linf(p: dict[str, float], q: dict[str, float]) -> tuple[float, str | None]:
    """max |p - q| and the key where it occurs; ties go to the larger relative change
    |p - q| / max(p, q) (the value that moved most for its size), then to the smaller key."""
    def score(k: str) -> tuple[float, float]:
        a, b = p.get(k, 0.0), q.get(k, 0.0)
        return round(abs(a - b), 12), abs(a - b) / max(a, b)

    keys = sorted(set(p) | set(q))  # max() keeps the first of equals: the smaller key
    best = max(keys, key=score, default=None)
    return (abs(p.get(best, 0.0) - q.get(best, 0.0)), best) if best is not None else (0.0, None)


def jensen_shannon(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen–Shannon divergence with log base 2 (0 = same, 1 = disjoint)."""
    total = 0.0
    for k in set(p) | set(q):
        a, b = p.get(k, 0.0), q.get(k, 0.0)
        m = (a + b) / 2
        total += (a * math.log2(a / m) if a else 0.0) + (b * math.log2(b / m) if b else 0.0)
    return max(total / 2, 0.0)


def psi(p: dict[str, float], q: dict[str, float]) -> float:
    """Population stability index sum (q - p) ln(q / p), empty bins floored at 1e-4."""
    total = 0.0
    for k in set(p) | set(q):
        a, b = max(p.get(k, 0.0), _PSI_FLOOR), max(q.get(k, 0.0), _PSI_FLOOR)
        total += (b - a) * math.log(b / a)
    return total


def wasserstein(p: dict[str, float], q: dict[str, float]) -> float:
    """1-D earth mover's distance between bucket distributions at their representative values."""
    keys = sorted(set(p) | set(q), key=bucket_value)
    distance, cdf_gap = 0.0, 0.0
    for left, right in zip(keys, keys[1:]):
        cdf_gap += p.get(left, 0.0) - q.get(left, 0.0)
        distance += abs(cdf_gap) * (bucket_value(right) - bucket_value(left))
    return distance


def distances(baseline: ColumnStats, current: ColumnStats) -> Distances:
    """All distances between two profiles of the same column."""
    p, q = _frequencies(baseline), _frequencies(current)
    worst, key = linf(p, q)
    numeric = baseline.kind == current.kind == "numeric"
    return Distances(linf=worst, js=jensen_shannon(p, q), psi=psi(p, q),
                     wasserstein=wasserstein(p, q) if numeric else None, moved_most=key)
