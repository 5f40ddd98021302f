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


def _coerce(raw: Column, target: str) -> Column:
    """The typed value of a string column; empty text is null."""
    text = F.trim(raw)
    if target.startswith("array<"):
        element = target[len("array<"):-1]
        parts = F.split(F.regexp_replace(text, r"^\[|\]$", ""), _ARRAY_SPLIT)
        typed = F.transform(parts, lambda p: p.try_cast(element))
    else:
        typed = text.try_cast(target)
    return F.when(text != "", typed)


def _failed(raw: Column, typed: Column, target: str) -> Column:
    """Text was there but did not parse (reads the typed column, so parsing runs once)."""
    present = raw.isNotNull() & (F.trim(raw) != "")
    if target.startswith("array<"):
        return present & (typed.isNull() | F.exists(typed, lambda v: v.isNull()))
    return present & typed.isNull()


def _canonical(value: Column, target: str) -> Column:
    # -0.0 and 0.0 are equal numbers but hash differently; one spelling keeps dedup exact.
    if target in ("double", "float"):
        return F.when(value == 0, F.lit(0.0).cast(target)).otherwise(value)
    return value


def mark_rejections(df: DataFrame, schema: dict[str, str] | None, label: str,
                    classes: list[str] | None = None) -> DataFrame:
    """Coerce string columns to `schema` types and mark rows to reject with reason and message.

    Three projections, each expression evaluated once per row: parse into temporary typed columns;
    derive reason, message and the raw record from them; swap the typed values in. (Written as one
    projection, Spark evaluated every parse three times: for the value, the reason and the message.)
    """
    string_input = {f.name for f in df.schema.fields if f.dataType.simpleString() == "string"}
    coerced = {n: t for n, t in (schema or {}).items() if n in string_input and t != "string"}
    parsed = df.withColumns({f"_sp_typed_{n}": _coerce(F.col(n), t) for n, t in coerced.items()})

    failures = [F.when(_failed(F.col(n), F.col(f"_sp_typed_{n}"), t),
                       F.format_string(f"column {n}: '%s' is not a valid {t}", F.substring(F.col(n), 1, 200)))
                for n, t in coerced.items()]
    corrupt = F.col(CORRUPT).isNotNull() if CORRUPT in df.columns else F.lit(False)
    unparsable = F.concat_ws("; ", *failures) if failures else F.lit("")
    missing = F.col(label).isNull() | (F.trim(F.col(label).cast("string")) == "")
    unknown = ~F.col(label).cast("string").isin(classes) if classes else F.lit(False)
    marked = parsed.withColumns({"_sp_corrupt_flag": corrupt, "_sp_unparsable": unparsable})
    corrupt, unparsable = F.col("_sp_corrupt_flag"), F.col("_sp_unparsable")
    reason = (F.when(corrupt, F.lit(MALFORMED))
              .when(unparsable != "", F.lit(UNPARSABLE))
              .when(missing, F.lit(MISSING_LABEL))
              .when(unknown, F.lit(UNKNOWN_LABEL)))
    message = (F.when(corrupt, F.lit("malformed line: wrong number of fields, broken quoting or invalid JSON"))
               .when(unparsable != "", unparsable)
               .when(missing, F.lit(f"label column {label} is empty"))
               .when(unknown, F.format_string(f"label %s is not one of columns.classes {classes}", F.col(label))))
    inputs = [c for c in df.columns if not c.startswith("_sp_")]
    raw = F.to_json(F.struct(*[F.col(c) for c in inputs]))  # the columns as read, before the swap
    if CORRUPT in df.columns:
        raw = F.coalesce(F.col(CORRUPT), raw)
    marked = marked.withColumn(REASON, reason)
    marked = marked.withColumns({MESSAGE: F.when(F.col(REASON).isNotNull(), message),
                                 RAW: F.when(F.col(REASON).isNotNull(), raw)})
    typed = {n: _canonical(F.col(f"_sp_typed_{n}"), t) for n, t in coerced.items()}
    typed |= {n: _canonical(F.col(n), t) for n, t in (schema or {}).items() if n not in coerced and t in ("double", "float")}
    temporary = [f"_sp_typed_{n}" for n in coerced] + ["_sp_corrupt_flag", "_sp_unparsable"]
    return marked.withColumns(typed).drop(*temporary)


def accepted(df: DataFrame) -> DataFrame:
    """Rows without a rejection, with the internal columns removed."""
    drop = [c for c in (REASON, MESSAGE, RAW, CORRUPT, SOURCE_FILE) if c in df.columns]
    return df.where(F.col(REASON).isNull()).drop(*drop)


def quarantine_rows(df: DataFrame) -> DataFrame:
    """Rejected rows in the quarantine schema: reason, message, source_file, raw (as read)."""
    return df.where(F.col(REASON).isNotNull()).select(
        F.col(REASON).alias("reason"), F.col(MESSAGE).alias("message"),
        F.col(SOURCE_FILE).alias("source_file"), F.col(RAW).alias("raw"))
