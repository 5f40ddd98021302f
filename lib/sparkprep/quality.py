"""Data quality at the edges: profile an input, read/write stats.json and the schema, validate.

What `sparkprep profile|infer-schema|validate` and `prepare`'s validate step call; the
statistics live in `profile`, the rules in `schema_rules`, the checks in `validate`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkprep.clean import _coerce
from sparkprep.config import ColumnsConfig, InputConfig
from sparkprep.errors import InputError
from sparkprep.ingest import read_input
from sparkprep.profile import Profile, profile
from sparkprep.schema_rules import load_schema
from sparkprep.validate import Validation, validate

log = logging.getLogger(__name__)


def typed_input(spark: SparkSession, config: InputConfig) -> DataFrame:
    """The input with text columns coerced to their configured types (a value that does not parse
    becomes null, so it shows up in the null counts; `prepare` quarantines it later)."""
    df = read_input(spark, config)
    string_input = {f.name for f in df.schema.fields if f.dataType.simpleString() == "string"}
    coerced = {n: _coerce(F.col(n), t) for n, t in (config.schema_ or {}).items()
               if n in string_input and t != "string"}
    return df.withColumns(coerced)


def profile_frame(df: DataFrame, columns: ColumnsConfig | None) -> Profile:
    """Profile with the roles from the config (label, free-text columns) when there is one."""
    if columns is None:
        return profile(df)
    return profile(df, label=columns.label, text=tuple(columns.text))


def read_local(path: str, what: str) -> str:
    """A small local file the user named on the command line (stats.json, schema.yaml)."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}") from None


def load_stats(path: str) -> Profile:
    try:
        return Profile.from_dict(json.loads(read_local(path, "stats")))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a sparkprep stats.json: {exc}; create it with `sparkprep profile`") from None


def check(stats: Profile, schema_path: str, environment: str, baseline_path: str | None) -> Validation:
    """Validate profiled stats against a schema file (and a baseline stats.json), logging anomalies."""
    schema = load_schema(read_local(schema_path, "schema"), schema_path)
    baseline = load_stats(baseline_path) if baseline_path else None
    result = validate(stats, schema, environment, baseline)
    for anomaly in result.anomalies:
        (log.error if anomaly.severity == "error" else log.warning)("%s: %s", anomaly.type, anomaly.message)
    return result
