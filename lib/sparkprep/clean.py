"""Type coercion and row rules; every rejected row keeps a stable reason code and a message.

`mark_rejections` is pure: it adds `_sp_reason` / `_sp_message` (null for a good row) and coerces
the columns that the schema types. The pipeline splits on `_sp_reason` into output and quarantine,
so a row is never dropped without a reason.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from sparkprep.ingest import CORRUPT, SOURCE_FILE

REASON = "_sp_reason"
MESSAGE = "_sp_message"
RAW = "_sp_raw"

#: Stable reason codes, in the order they are checked (the first that applies is recorded).
MALFORMED = "malformed_record"
UNPARSABLE = "unparsable_value"
MISSING_LABEL = "missing_label"
UNKNOWN_LABEL = "unknown_label"
REASONS = (MALFORMED, UNPARSABLE, MISSING_LABEL, UNKNOWN_LABEL)

_ARRAY_SPLIT = r"\s*[;,]\s*"


def _coerce(raw: Column, target: str) -> tuple[Column, Column]:
    """(typed value, failed?) for a string column; empty text counts as null, not as a failure."""
    text = F.trim(raw)
    present = text.isNotNull() & (text != "")
    if target.startswith("array<"):
        element = target[len("array<"):-1]
        body = F.regexp_replace(text, r"^\[|\]$", "")
        parts = F.split(body, _ARRAY_SPLIT)
        typed = F.transform(parts, lambda p: p.try_cast(element))
        failed = present & F.exists(typed, lambda v: v.isNull())
    else:
        typed = text.try_cast(target)
        failed = present & typed.isNull()
    return F.when(present, typed), failed


def _canonical(value: Column, target: str) -> Column:
    # -0.0 and 0.0 are equal numbers but hash differently; one spelling keeps dedup exact.
    if target in ("double", "float"):
        return F.when(value == 0, F.lit(0.0).cast(target)).otherwise(value)
    return value


def mark_rejections(df: DataFrame, schema: dict[str, str] | None, label: str,
                    classes: list[str] | None = None) -> DataFrame:
    """Coerce string columns to `schema` types and mark rows to reject with reason and message."""
    failures: list[Column] = []
    typed: dict[str, Column] = {}
    string_input = {f.name for f in df.schema.fields if f.dataType.simpleString() == "string"}
    for name, target in (schema or {}).items():
        if name in string_input and target != "string":
            value, failed = _coerce(F.col(name), target)
            failures.append(F.when(failed, F.format_string(f"column {name}: '%s' is not a valid {target}",
                                                           F.substring(F.col(name), 1, 200))))
            typed[name] = _canonical(value, target)
        elif target in ("double", "float"):
            typed[name] = _canonical(F.col(name), target)
    corrupt = F.col(CORRUPT).isNotNull() if CORRUPT in df.columns else F.lit(False)
    unparsable = F.concat_ws("; ", *failures) if failures else F.lit("")
    missing = F.col(label).isNull() | (F.trim(F.col(label).cast("string")) == "")
    unknown = ~F.col(label).cast("string").isin(classes) if classes else F.lit(False)
    reason = (F.when(corrupt, F.lit(MALFORMED))
              .when(unparsable != "", F.lit(UNPARSABLE))
              .when(missing, F.lit(MISSING_LABEL))
              .when(unknown, F.lit(UNKNOWN_LABEL)))
    message = (F.when(corrupt, F.lit("malformed line: wrong number of fields, broken quoting or invalid JSON"))
               .when(unparsable != "", unparsable)
               .when(missing, F.lit(f"label column {label} is empty"))
               .when(unknown, F.format_string(f"label %s is not one of columns.classes {classes}", F.col(label))))
    # One withColumns: every expression sees the input as read, so RAW keeps the original text.
    inputs = [c for c in df.columns if not c.startswith("_sp_")]
    raw = F.to_json(F.struct(*[F.col(c) for c in inputs]))
    if CORRUPT in df.columns:
        raw = F.coalesce(F.col(CORRUPT), raw)
    return df.withColumns({**typed, REASON: reason, MESSAGE: message,
                           RAW: F.when(reason.isNotNull(), raw)})


def accepted(df: DataFrame) -> DataFrame:
    """Rows without a rejection, with the internal columns removed."""
    drop = [c for c in (REASON, MESSAGE, RAW, CORRUPT, SOURCE_FILE) if c in df.columns]
    return df.where(F.col(REASON).isNull()).drop(*drop)


def quarantine_rows(df: DataFrame) -> DataFrame:
    """Rejected rows in the quarantine schema: reason, message, source_file, raw (as read)."""
    return df.where(F.col(REASON).isNotNull()).select(
        F.col(REASON).alias("reason"), F.col(MESSAGE).alias("message"),
        F.col(SOURCE_FILE).alias("source_file"), F.col(RAW).alias("raw"))
