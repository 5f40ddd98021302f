"""`validate`: a batch's Profile against the schema (and a baseline Profile for drift/skew).

Works on statistics only, so validating never scans the data again. Every anomaly has a type,
column, severity, human message and the measured value; `error` anomalies are blocking. Drift
(previous batch) and skew (training vs serving) are the same computation on two Profiles; all
distances are reported for every column the baseline shares, anomaly or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparkprep.quality.drift import METRICS, Distances, distances
from sparkprep.quality.profile import ColumnStats, Profile

#: Examples of unexpected categorical values kept in a message.
_EXAMPLES = 5


@dataclass(frozen=True)
class Anomaly:
    type: str
    column: str | None
    severity: str
    message: str
    value: Any

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Validation:
    """The anomalies of one batch and the drift distances per column (empty without baseline)."""

    environment: str
    anomalies: list[Anomaly]
    distances: dict[str, Distances] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "blocking": len(self.blocking),
                "anomalies": [a.to_dict() for a in self.anomalies],
                "distances": {c: d.to_dict() for c, d in self.distances.items()}}


def validate(stats: Profile, schema: dict[str, Any], environment: str = "TRAINING",
             baseline: Profile | None = None) -> Validation:
    """Check `stats` against `schema` in `environment` (TRAINING or SERVING).

    >>> result = validate(profile(df), load_schema(text, "schema.yaml"), baseline=previous)
    >>> [a.message for a in result.blocking]

    Args:
        stats: the batch's profile.
        schema: a loaded schema.
        environment: TRAINING or SERVING.
        baseline: a previous batch's profile, for drift.
    """
    found: list[Anomaly] = []
    if stats.rows < schema.get("min_rows", 0):
        found.append(Anomaly("too_few_rows", None, "error",
                             f"{stats.rows} rows, the schema wants at least {schema['min_rows']}", stats.rows))
    rules_by_column = schema["columns"]
    for name, rules in rules_by_column.items():
        col = stats.columns.get(name)
        if col is None:
            if environment in rules.get("environments", ["TRAINING", "SERVING"]):
                found.append(Anomaly("missing_column", name, "error",
                                     f"column {name!r} is missing; the schema requires it in {environment}", None))
            continue
        found += _column_anomalies(col, rules, stats.rows)
    found += [Anomaly("new_column", n, "warning", f"column {n!r} is not in the schema; add it or drop it", c.type)
              for n, c in stats.columns.items() if n not in rules_by_column]
    dist: dict[str, Distances] = {}
    if baseline is not None:
        for name, col in stats.columns.items():
            base = baseline.columns.get(name)
            if base is not None and base.kind == col.kind and col.kind in ("numeric", "categorical"):
                dist[name] = distances(base, col)
                found += _drift_anomalies(name, dist[name], rules_by_column.get(name, {}).get("drift"))
    return Validation(environment, found, dist)


def _column_anomalies(col: ColumnStats, rules: dict[str, Any], rows: int) -> list[Anomaly]:
    out, name = [], col.name

    def add(kind: str, rule: dict, message: str, value: Any) -> None:
        out.append(Anomaly(kind, name, rule.get("severity", "error"), f"{name}: {message}", value))

    if rules.get("type") and rules["type"] != col.type:
        add("wrong_type", {"severity": "error"}, f"type {col.type}, the schema says {rules['type']}", col.type)
    nulls = rules.get("nulls")
    if nulls and rows and col.nulls / rows > nulls.get("max_fraction", 0.0):
        add("nulls_above_allowed", nulls, f"{col.nulls / rows:.4%} nulls, allowed {nulls['max_fraction']:.4%}",
            col.nulls / rows)
    nan_inf = rules.get("nan_inf")
    if nan_inf and not nan_inf.get("allowed", False) and (col.nan or col.inf):
        add("nan_or_inf", nan_inf, f"{col.nan} NaN and {col.inf} infinite values", col.nan + col.inf)
    bounds = rules.get("range")
    if bounds and col.min is not None:
        low, high = bounds.get("min"), bounds.get("max")
        if (low is not None and col.min < low) or (high is not None and col.max > high):
            add("out_of_range", bounds, f"values in [{col.min}, {col.max}], allowed [{low}, {high}]", [col.min, col.max])
    domain = rules.get("domain")
    if domain and col.kind == "categorical" and col.count:
        allowed = {str(v) for v in domain["values"]}
        unexpected = [(k, n) for k, n in col.top if k not in allowed]
        if unexpected:
            fraction = sum(n for _, n in unexpected) / col.count
            examples = [k for k, _ in unexpected[:_EXAMPLES]]
            add("unexpected_values", domain, f"{len(unexpected)} value(s) outside the domain, e.g. {examples}, "
                f"{fraction:.4%} of non-null values", {"examples": examples, "fraction": fraction})
    length = rules.get("length")
    if length and col.length.get("min") is not None and (col.length["min"] < length["min"] or col.length["max"] > length["max"]):
        add("array_length_out_of_range", length, f"lengths in [{col.length['min']:g}, {col.length['max']:g}], "
            f"allowed [{length['min']}, {length['max']}]", [col.length["min"], col.length["max"]])
    distinct = rules.get("distinct")
    if distinct and col.distinct is not None:
        if col.distinct < distinct.get("min", 0):
            add("distinct_too_low", distinct, f"~{col.distinct} distinct values, expected at least {distinct['min']}", col.distinct)
        elif distinct.get("max") is not None and col.distinct > distinct["max"]:
            add("distinct_too_high", distinct, f"~{col.distinct} distinct values, expected at most {distinct['max']}", col.distinct)
    return out


def _drift_anomalies(name: str, d: Distances, thresholds: dict[str, Any] | None) -> list[Anomaly]:
    out = []
    for metric in METRICS:
        limit, value = (thresholds or {}).get(metric), getattr(d, metric)
        if limit is not None and value is not None and value > limit:
            moved = f"; {d.moved_most!r} moved most" if metric == "linf" else ""
            out.append(Anomaly(f"drift_{metric}", name, thresholds.get("severity", "warning"),
                               f"{name}: {metric} distance {value:.4g} to the baseline exceeds {limit}{moved}", value))
    return out
