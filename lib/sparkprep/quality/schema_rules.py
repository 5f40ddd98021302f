"""The data schema users keep next to their data: inferred from a Profile, edited by hand (YAML).

One entry per column with the rules `validate` checks, each with its own severity (`error`
blocks a run, `warning` is reported). `environments` lists where a column must be present:
the label is inferred as TRAINING only, so a SERVING batch may lack it. Example:

    version: 1
    min_rows: 1
    columns:
      num_0:
        type: double
        environments: [TRAINING, SERVING]
        nulls: {max_fraction: 0.01, severity: error}
        nan_inf: {allowed: false, severity: error}
        range: {min: -4.2, max: 5.1, severity: warning}
        drift: {linf: 0.1, js: 0.1, psi: 0.25, wasserstein: null, severity: warning}
      cat_0:
        type: string
        domain: {values: [A, B, C], severity: error}
"""

from __future__ import annotations

from typing import Any

import yaml

from sparkprep.errors import ConfigError
from sparkprep.quality.drift import METRICS
from sparkprep.quality.profile import Profile

SCHEMA_FORMAT_VERSION = 1
ENVIRONMENTS = ("TRAINING", "SERVING")
SEVERITIES = ("error", "warning")
_RULES = ("nulls", "nan_inf", "range", "domain", "distinct", "length", "drift")
#: A categorical column with more distinct values than this gets no domain rule.
DOMAIN_CAP = 100
#: Default drift thresholds (the usual PSI 0.25 "significant shift"; L-inf/JS 0.1).
DRIFT_DEFAULTS = {**{name: metric.threshold for name, metric in METRICS.items()}, "severity": "warning"}


def infer_schema(stats: Profile, domain_cap: int = DOMAIN_CAP) -> dict[str, Any]:
    """Rules that the profiled batch satisfies, as a starting point for hand editing.

    Args:
        stats: the batch's profile.
        domain_cap: the most distinct values a categorical domain rule lists.
    """
    columns = {}
    for name, col in stats.columns.items():
        rules: dict[str, Any] = {"type": col.type, "kind": col.kind,
                                 "environments": ["TRAINING"] if col.is_label else list(ENVIRONMENTS),
                                 "nulls": {"max_fraction": col.nulls / stats.rows if stats.rows else 0.0,
                                           "severity": "error"}}
        if col.kind == "numeric":
            rules["nan_inf"] = {"allowed": bool(col.nan or col.inf), "severity": "error"}
            rules["range"] = {"min": col.min, "max": col.max, "severity": "warning"}
        if col.kind == "categorical" and col.distinct is not None and col.distinct <= domain_cap:
            rules["domain"] = {"values": sorted(k for k, _ in col.top), "severity": "error"}
        if col.kind in ("numeric", "text") and col.distinct:
            rules["distinct"] = {"min": col.distinct // 2, "max": col.distinct * 2, "severity": "warning"}
        if col.kind == "array" and col.length.get("min") is not None:
            rules["length"] = {"min": int(col.length["min"]), "max": int(col.length["max"]), "severity": "error"}
        if col.kind in ("numeric", "categorical"):
            rules["drift"] = dict(DRIFT_DEFAULTS)
        columns[name] = rules
    return {"version": SCHEMA_FORMAT_VERSION, "min_rows": 1, "columns": columns}


def dump_schema(schema: dict[str, Any]) -> str:
    """The schema as YAML, for hand editing.

    Args:
        schema: a schema (`infer_schema`).
    """
    return yaml.safe_dump(schema, sort_keys=False, default_flow_style=None, width=100)


def load_schema(text: str, source: str) -> dict[str, Any]:
    """Parse and check the top level of a schema file (a bad file is a usage error: exit 2).

    Args:
        text: the file's YAML.
        source: its name, in errors.
    """
    try:
        schema = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(schema, dict) or schema.get("version") != SCHEMA_FORMAT_VERSION \
            or not isinstance(schema.get("columns"), dict):
        raise ConfigError(f"{source}: not a sparkprep schema (version {SCHEMA_FORMAT_VERSION} with "
                          f"'columns'); create one with `sparkprep infer-schema`")
    for name, rules in schema["columns"].items():
        _check_rules(name, rules or {}, source)
    return schema


def _check_rules(name: str, rules: dict[str, Any], source: str) -> None:
    where = f"{source}: columns.{name}"
    if not isinstance(rules, dict):
        raise ConfigError(f"{where}: expected a mapping of rules")
    unknown = sorted(set(rules) - set(_RULES) - {"type", "kind", "environments"})
    if unknown:
        raise ConfigError(f"{where}: unknown rule(s) {unknown}; known: {sorted(_RULES)}")
    for key in set(rules) & set(_RULES):
        if not isinstance(rules[key], dict) or rules[key].get("severity", "error") not in SEVERITIES:
            raise ConfigError(f"{where}.{key}: expected a mapping with severity one of {list(SEVERITIES)}")
    bad = [e for e in rules.get("environments", ENVIRONMENTS) if e not in ENVIRONMENTS]
    if bad:
        raise ConfigError(f"{where}.environments: unknown {bad}; use {list(ENVIRONMENTS)}")
