"""Data quality at the edges: profile an input, read/write stats.json and the schema, validate.

What `sparkprep profile|infer-schema|validate` and `prepare`'s validate step call; the
statistics live in `profile`, the rules in `schema_rules`, the checks in `validate`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkprep.stages.clean import coerce
from sparkprep.config import ColumnsConfig, Config, InputConfig
from sparkprep.errors import InputError, SparkprepError
from sparkprep.io.fs import read_local
from sparkprep.io.read import read_input
from sparkprep.quality.profile import Profile, histogram, profile
from sparkprep.quality.schema_rules import load_schema
from sparkprep.quality.validate import Validation, validate

log = logging.getLogger(__name__)


def typed_input(spark: SparkSession, config: InputConfig) -> DataFrame:
    """The input with text columns coerced to their configured types (a value that does not parse
    becomes null, so it shows up in the null counts; `prepare` quarantines it later).

    Args:
        spark: the session.
        config: the input section.
    """
    df = read_input(spark, config)
    string_input = {f.name for f in df.schema.fields if f.dataType.simpleString() == "string"}
    coerced = {n: coerce(F.col(n), t) for n, t in (config.schema_ or {}).items()
               if n in string_input and t != "string"}
    return df.withColumns(coerced)


def profile_frame(df: DataFrame, columns: ColumnsConfig | None) -> Profile:
    """Profile with the roles from the config (label, free-text columns) when there is one.

    Args:
        df: the rows to profile.
        columns: the columns section, if any.
    """
    if columns is None:
        return profile(df)
    return profile(df, label=columns.label, text=tuple(columns.text))


def load_stats(path: str) -> Profile:
    """A stats.json written by `sparkprep profile`, read back.

    Args:
        path: its local path.
    """
    try:
        return Profile.from_dict(json.loads(read_local(path, "stats")))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a sparkprep stats.json: {exc}; create it with `sparkprep profile`") from None


def check(stats: Profile, schema_path: str, environment: str, baseline_path: str | None) -> Validation:
    """Validate profiled stats against a schema file (and a baseline stats.json), logging anomalies.

    Args:
        stats: the batch's profile.
        schema_path: the schema file.
        environment: TRAINING or SERVING.
        baseline_path: a previous batch's stats.json, for drift.
    """
    schema = load_schema(read_local(schema_path, "schema"), schema_path)
    baseline = load_stats(baseline_path) if baseline_path else None
    result = validate(stats, schema, environment, baseline)
    for anomaly in result.anomalies:
        (log.error if anomaly.severity == "error" else log.warning)("%s: %s", anomaly.type, anomaly.message)
    return result




@dataclass(frozen=True)
class Checked:
    """What prepare's validate step found: the batch's stats, the baseline's, the verdict."""

    stats: Profile
    baseline: Profile | None
    validation: Validation

    def for_report(self) -> dict[str, Any]:
        """Plain data for report.html: stats, the verdict, and baseline-vs-current histograms on
        common bins for every numeric column the baseline shares."""
        overlays = {}
        for name in self.validation.distances:
            now, then = self.stats.columns[name], self.baseline.columns[name] if self.baseline else None
            if then is not None and now.kind == "numeric" and now.min is not None and then.min is not None:
                lo, hi = min(now.min, then.min), max(now.max, then.max)
                overlays[name] = {"edges": histogram(now.buckets, lo, hi)["edges"],
                                  "series": {"baseline": histogram(then.buckets, lo, hi)["counts"],
                                             "current": histogram(now.buckets, lo, hi)["counts"]}}
        return {"stats": self.stats.to_dict(), "validation": self.validation.to_dict(), "overlays": overlays}

    def summary(self) -> dict[str, Any]:
        """Per column what a person checks first (the full statistics are in stats.json)."""
        rows = self.stats.rows
        return {"rows": rows, "columns": {
            n: {"type": c.type, "kind": c.kind, "count": c.count, "nulls": c.nulls,
                "null_fraction": c.nulls / rows if rows else 0.0, "nan": c.nan, "inf": c.inf,
                "min": c.min, "max": c.max, "mean": c.mean, "std": c.std, "distinct": c.distinct}
            for n, c in self.stats.columns.items()}}


class Blocked(SparkprepError):
    """The quality gate stopped `prepare`; what it found travels with the error, so the run can
    record why (a blocked manifest and a report) without publishing anything."""

    def __init__(self, message: str, checked: Checked) -> None:
        super().__init__(message)
        self.checked = checked


def gate(df: DataFrame, config: Config) -> Checked | None:
    """Profile + validate `df` when a `validation:` section is configured; a blocking anomaly
    stops the run (stop_on: error) before anything is written, by raising `Blocked`.

    Args:
        df: the typed rows (rejected ones included).
        config: the run's config.
    """
    cfg = config.validation
    if cfg is None:
        return None
    stats = profile_frame(df, config.columns)
    result = check(stats, cfg.schema_path, cfg.environment, cfg.baseline)
    checked = Checked(stats, load_stats(cfg.baseline) if cfg.baseline else None, result)
    if result.blocking and cfg.stop_on == "error":
        raise Blocked(f"validation against {cfg.schema_path} found {len(result.blocking)} blocking "
                      "anomalies; nothing was published:\n  " + "\n  ".join(a.message for a in result.blocking)
                      + "\nfix the input, or edit the schema (severity: warning) or set validation.stop_on: never",
                      checked)
    return checked


def stats_text(checked: Checked) -> str:
    """The stats.json a validated run writes beside its manifest.

    Args:
        checked: the gate's verdict.
    """
    return json.dumps(checked.stats.to_dict(), indent=1)
