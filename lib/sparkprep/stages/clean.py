"""Type coercion and row rules; every rejected row keeps a stable reason code and a message.

`mark_rejections` is pure: it adds `_sp_reason` / `_sp_column` / `_sp_message` (null for a good
row) and coerces the columns that the schema types. The pipeline splits on `_sp_reason` into output
and quarantine, so a row is never dropped without a reason.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from sparkprep.contract import (
    CORRUPT, INTERNAL_PREFIX, INVALID_ENCODING, INVALID_UTF8, LAYOUT, LINE, MALFORMED, MESSAGE, MISSING_LABEL,
    MISSING_VALUE, OUT_OF_RANGE, POSITION, RAW, REASON, REASON_COLUMN, SOURCE_FILE, UNEXPECTED_CATEGORY,
    UNKNOWN_LABEL, UNPARSABLE, WHOLE_RECORD)
from sparkprep.config import ColumnRule, Config
from sparkprep.errors import ConfigError
from sparkprep.io.fs import read_local
from sparkprep.quality.schema_rules import load_schema

_CHECK = "_sp_check"
#: A file's first position (`tally`), from which `quarantine_rows` numbers its records.
_FIRST = "_sp_first"


def _elements(text: Column) -> Column:
    """The element texts of an array written as `[1; 2]`, `1,2` or `1;2`."""
    # One bracket off each end, then a split on one plain character: no regular expression.
    unbracketed = F.when(F.startswith(text, F.lit("[")), F.substr(text, F.lit(2))).otherwise(text)
    unbracketed = F.when(F.endswith(unbracketed, F.lit("]")),
                         F.substr(unbracketed, F.lit(1), F.length(unbracketed) - 1)).otherwise(unbracketed)
    return F.split(F.translate(unbracketed, ";", ","), ",")


def coerce(raw: Column, target: str) -> Column:
    """The typed value of a string column; empty text is null.

    Args:
        raw: a string column.
        target: the Spark SQL type to parse it as (array<...> too).
    """
    text = F.trim(raw)
    if target.startswith("array<"):
        # A cast of the whole array (the cast trims the spaces around each element), not a
        # lambda per element: Spark does not compile higher-order functions.
        typed = _elements(text).try_cast(target)
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


@dataclass(frozen=True)
class _Check:
    code: str
    column: str | None
    failed: Column
    message: Column


#: The largest finite magnitude of each floating type: a text beyond it casts to infinity.
_LARGEST = {"double": 1.7976931348623157e308, "float": 3.4028234663852886e38}
#: What Spark reads as an infinity when it is written as one (its own literals and Java's
#: "Infinity"), case-insensitive, spaces around allowed; any other text that casts to ±inf overflowed.
_INFINITY_LITERAL = r"^\s*[+-]?inf(inity)?\s*$"


def _floating(target: str) -> str | None:
    """double or float for a floating column or array of them, else None."""
    element = target[len("array<"):-1] if target.startswith("array<") else target
    return element if element in _LARGEST else None


def _non_finite(value: Column, target: str, nan: bool) -> Column:
    """Whether the value (or an element of the array) is ±inf, or NaN with `nan`. array_contains
    is compiled, where a lambda per element would not be (NaN equals NaN in Spark SQL)."""
    specials = [math.inf, -math.inf, *([math.nan] if nan else [])]
    if target.startswith("array<"):
        found = [F.array_contains(value, F.lit(x).cast(_floating(target))) for x in specials]
    else:
        found = [value == F.lit(x).cast(target) for x in specials]
    return F.coalesce(reduce(operator.or_, found), F.lit(False))


def _overflowed(raw: Column, typed: Column, target: str) -> Column:
    """The text cast to ±inf, and it does not spell an infinity: the number is too large for its type."""
    def spelled(text: Column) -> Column:
        return F.lower(text).rlike(_INFINITY_LITERAL)
    if target.startswith("array<"):
        # The lambda runs only for the rare array that holds an infinity at all.
        overflow = F.exists(F.zip_with(_elements(F.trim(raw)), typed,
                                       lambda t, v: (F.abs(v) == F.lit(math.inf)) & ~spelled(t)), lambda hit: hit)
        return _non_finite(typed, target, nan=False) & F.coalesce(overflow, F.lit(False))
    return _non_finite(typed, target, nan=False) & ~spelled(raw)


def _non_finite_checks(types: dict[str, str], coerced: set[str], typed: Callable[[str], Column],
                       rules: dict[str, ColumnRule], default: str) -> list[_Check]:
    """out_of_range for a text that overflowed its floating type (always), and for NaN/±inf
    values where the column's non_finite policy (its rule's, else `default`) is reject."""
    checks = []
    for name, target in types.items():
        if _floating(target) is None:
            continue
        value = F.substring(F.col(name).cast("string"), 1, 200)
        if name in coerced:
            checks.append(_Check(OUT_OF_RANGE, name, _overflowed(F.col(name), typed(name), target), F.format_string(
                f"column {name}: '%s' is beyond the range of {_floating(target)} (±{_LARGEST[_floating(target)]:.7g}) "
                f"and would become infinity; correct the value, or read the column as string", value)))
        rule = rules.get(name)
        if ((rule.non_finite if rule else None) or default) == "reject":
            checks.append(_Check(OUT_OF_RANGE, name, _non_finite(typed(name), target, nan=True), F.format_string(
                f"column {name}: '%s' is not a finite number, and non_finite is reject; to keep NaN and "
                f"infinities, set clean.non_finite or clean.rules.{name}.non_finite to keep", value)))
    return checks


#: Unicode normalisation and full case folding, which Spark SQL lacks, from the ICU4J that Spark
#: itself ships (for its collations): called in the JVM, so no row crosses to Python.
_ICU = {"nfc": ("com.ibm.icu.text.Normalizer", "compose", False),          # compat=false: NFC
        "casefold": ("com.ibm.icu.lang.UCharacter", "foldCase", True)}     # default mapping


def _unicode(value: Column, form: str) -> Column:
    # ASCII text (as many characters as UTF-8 bytes) is already NFC and its case fold is its
    # lower case, so reflection runs only for the rest. A null stays null: reflect would make
    # the string "null" of it.
    cls, method, flag = _ICU[form]
    plain = value if form == "nfc" else F.lower(value)
    return F.when(value.isNull() | (F.length(value) == F.octet_length(value)), plain).otherwise(
        F.call_function("reflect", F.lit(cls), F.lit(method), value, F.lit(flag)))


def _normalised(value: Column, steps: list[str]) -> Column:
    for step in steps:
        value = {"trim": F.trim, "lower": F.lower}.get(step, lambda v: _unicode(v, step))(value)
    return value


def _rule_checks(name: str, value: Column, rule: ColumnRule) -> list[_Check]:
    checks = []
    if rule.nulls == "reject":
        checks.append(_Check(MISSING_VALUE, name, value.isNull(), F.lit(f"column {name} is null or empty")))
    if rule.min is not None or rule.max is not None:
        low = value < F.lit(rule.min) if rule.min is not None else F.lit(False)
        high = value > F.lit(rule.max) if rule.max is not None else F.lit(False)
        bounds = f"[{'' if rule.min is None else rule.min}, {'' if rule.max is None else rule.max}]"
        checks.append(_Check(OUT_OF_RANGE, name, F.coalesce(low | high, F.lit(False)),
                             F.format_string(f"column {name}: %s is outside {bounds}", value.cast("string"))))
    if rule.allowed is not None:
        outside = ~value.cast("string").isin(rule.allowed)
        checks.append(_Check(UNEXPECTED_CATEGORY, name, F.coalesce(outside, F.lit(False)),
                             F.format_string(f"column {name}: '%s' is not one of {rule.allowed}",
                                             F.substring(value.cast("string"), 1, 200))))
    return checks


def rules_from_schema(schema: dict[str, Any]) -> dict[str, ColumnRule]:
    """Cleaning rules from a validation schema (schema_rules format): a rule with severity
    `error` rejects rows: `range` -> min/max, `domain` -> allowed, `nulls.max_fraction: 0` ->
    nulls: reject. Warning-severity rules only describe the batch; they reject nothing.

    Args:
        schema: a loaded schema (schema_rules.load_schema).
    """
    rules = {}
    for name, spec in (schema.get("columns") or {}).items():
        def blocking(rule: str) -> dict[str, Any] | None:
            value = (spec or {}).get(rule)
            return value if isinstance(value, dict) and value.get("severity", "error") == "error" else None
        fields: dict[str, Any] = {}
        if (rng := blocking("range")) is not None:
            fields |= {"min": rng.get("min"), "max": rng.get("max")}
        if (domain := blocking("domain")) is not None:
            fields["allowed"] = [str(v) for v in domain.get("values", [])]
        if (nulls := blocking("nulls")) is not None and nulls.get("max_fraction") == 0:
            fields["nulls"] = "reject"
        if fields:
            rules[name] = ColumnRule(**fields)
    return rules


def mark_rejections(df: DataFrame, schema: dict[str, str] | None, label: str,
                    classes: list[str] | None = None, rules: dict[str, ColumnRule] | None = None,
                    non_finite: str = "keep", raw_record: Column | None = None) -> DataFrame:
    """Coerce string columns to `schema` types, normalise strings, apply `rules`, and mark rows to
    reject with reason, column and message (the first failing check, in `REASONS` order), and the
    record as read: `raw_record` (read.raw_record: CSV's text), else the columns as JSON.
    A text too large for its floating type is out_of_range, never infinity; NaN and ±inf values
    are out_of_range too where `non_finite` (or the column rule's) is reject.

    Three projections, each expression evaluated once per row: parse and normalise into temporary
    typed columns; find the first failing check (an index) and derive reason, column, message and
    the raw record from it; swap the typed values in. (Written as one projection, Spark evaluated
    every parse three times: for the value, the reason and the message.)

    Args:
        df: the input as read.
        schema: input.schema: the type each string column is coerced to.
        label: the label column.
        classes: columns.classes: any other label is unknown_label.
        rules: clean's rules per column.
        non_finite: clean.non_finite: keep or reject NaN and ±inf.
        raw_record: the record as read, where the reader keeps it (CSV).
    """
    rules = rules or {}
    unknown = sorted(set(rules) - set(df.columns))
    if unknown:
        raise ConfigError(f"clean.rules name columns that are not in the input: {unknown}")
    string_input = {f.name for f in df.schema.fields if f.dataType.simpleString() == "string"}
    coerced = {n: t for n, t in (schema or {}).items() if n in string_input and t != "string"}
    typed_cols = {n: coerce(F.col(n), t) for n, t in coerced.items()}
    typed_cols |= {n: _normalised(typed_cols.get(n, F.col(n)), r.normalise) for n, r in rules.items() if r.normalise}
    parsed = df.withColumns({f"_sp_typed_{n}": c for n, c in typed_cols.items()})

    def typed(name: str) -> Column:
        return F.col(f"_sp_typed_{name}") if name in typed_cols else F.col(name)

    types = {f.name: f.dataType.simpleString() for f in df.schema.fields} | coerced
    checks = [*_read_checks(df), *_value_checks(coerced, typed, label, classes),
              *_non_finite_checks(types, set(coerced), typed, rules, non_finite),
              *[c for n, r in rules.items() for c in _rule_checks(n, typed(n), r)]]
    marked = _first_failing(parsed, checks, _raw(df, raw_record))
    swapped = {n: _canonical(typed(n), (schema or {}).get(n, "string")) for n in typed_cols}
    swapped |= {n: _canonical(F.col(n), t) for n, t in (schema or {}).items()
                if n not in typed_cols and t in ("double", "float")}
    return marked.withColumns(swapped).drop(*[f"_sp_typed_{n}" for n in typed_cols], _CHECK, LAYOUT, LINE)


def _read_checks(df: DataFrame) -> list[_Check]:
    """What the reader found: malformed records, bytes that are not UTF-8."""
    checks = []
    if INVALID_UTF8 in df.columns:  # before MALFORMED: such a line is malformed too, for a parser
        checks.append(_Check(INVALID_ENCODING, None, F.array_contains(F.col(INVALID_UTF8), WHOLE_RECORD),
                             F.lit("the record's bytes are not valid UTF-8; raw keeps them as 0x and hex")))
    if CORRUPT in df.columns:
        checks.append(_Check(MALFORMED, None, F.col(CORRUPT).isNotNull(),
                             F.lit("malformed line: wrong number of fields, broken quoting or invalid JSON")))
    if INVALID_UTF8 in df.columns:
        checks += [_Check(INVALID_ENCODING, n, F.array_contains(F.col(INVALID_UTF8), n),
                          F.format_string(f"column {n}: bytes that are not valid UTF-8, kept as 0x and hex: %s",
                                          F.substring(F.col(n), 1, 200)))
                   for n in df.columns if not n.startswith(INTERNAL_PREFIX)]
    return checks


def _value_checks(coerced: dict[str, str], typed: Callable[[str], Column], label: str,
                  classes: list[str] | None) -> list[_Check]:
    """Values that do not parse as their type, and a missing or unknown label."""
    checks = [_Check(UNPARSABLE, n, _failed(F.col(n), typed(n), t),
                     F.format_string(f"column {n}: '%s' is not a valid {t}", F.substring(F.col(n), 1, 200)))
              for n, t in coerced.items()]
    # (?U): Unicode white space too (a no-break space is as empty a label as a blank).
    checks.append(_Check(MISSING_LABEL, label, F.col(label).isNull() | F.col(label).cast("string").rlike(r"(?U)^\s*$"),
                         F.lit(f"label column {label} is empty")))
    if classes:
        checks.append(_Check(UNKNOWN_LABEL, label, ~F.col(label).cast("string").isin(classes),
                             F.format_string(f"label %s is not one of columns.classes {classes}", F.col(label))))
    return checks


def _raw(df: DataFrame, raw_record: Column | None) -> Column:
    """The record as read: CSV's text or a JSON line (read.raw_record), else the columns as read,
    before the swap, as JSON."""
    inputs = [c for c in df.columns if not c.startswith(INTERNAL_PREFIX)]
    raw = raw_record if raw_record is not None else F.to_json(F.struct(*[F.col(c) for c in inputs]))
    return F.coalesce(F.col(CORRUPT), raw) if CORRUPT in df.columns else raw


def _first_failing(parsed: DataFrame, checks: list[_Check], raw: Column) -> DataFrame:
    """`parsed` with the index of its first failing check, and the reason, column, message and raw
    record that index selects."""
    first = F.lit(None).cast("int")
    for i, check in reversed(list(enumerate(checks))):
        first = F.when(check.failed, F.lit(i)).otherwise(first)
    marked = parsed.withColumn(_CHECK, first)
    index = F.col(_CHECK)
    message = F.lit(None).cast("string")
    for i, check in enumerate(checks):
        message = F.when(index == i, check.message).otherwise(message)
    # F.get, not element_at: on Spark 4.2, element_at(literal array, NULL) returns the last
    # element instead of NULL (the optimiser rewrites it), which would reject every good row.
    return marked.withColumns({
        REASON: F.get(F.array(*[F.lit(c.code) for c in checks]), index),
        REASON_COLUMN: F.get(F.array(*[F.lit(c.column) for c in checks]), index),
        MESSAGE: message,
        RAW: F.when(index.isNotNull(), raw),
    })


def accepted(df: DataFrame, keep_source: bool = False) -> DataFrame:
    """Rows without a rejection, with the internal columns removed (but the source file and
    position with `keep_source`, for rows that a later stage may still quarantine).

    Args:
        df: `mark_rejections` rows.
        keep_source: keep `_sp_source_file` and `_sp_position`.
    """
    drop = [c for c in (REASON, REASON_COLUMN, MESSAGE, RAW, CORRUPT, INVALID_UTF8,
                        *([] if keep_source else [SOURCE_FILE, POSITION]))
            if c in df.columns]
    return df.where(F.col(REASON).isNull()).drop(*drop)


def quarantine_rows(df: DataFrame, first_positions: DataFrame | None = None) -> DataFrame:
    """Rejected rows in the quarantine schema: reason, column, message, source_file, raw (as read)
    and record (`numbered`).

    Args:
        df: `mark_rejections` rows.
        first_positions: `tally`'s first position per source file, if any.
    """
    return numbered(quarantine_columns(df), first_positions)


def quarantine_columns(df: DataFrame) -> DataFrame:
    """The rejected rows of `df` (a reason set) as the quarantine's columns, `_sp_position` kept
    where there is one for `numbered` (a later stage's rejections are numbered with cleaning's).

    Args:
        df: rows with a reason, column, message, source file and raw record (RAW).
    """
    return df.where(F.col(REASON).isNotNull()).select(
        F.col(REASON).alias("reason"), F.col(REASON_COLUMN).alias("column"), F.col(MESSAGE).alias("message"),
        F.col(SOURCE_FILE).alias("source_file"), F.col(RAW).alias("raw"),
        *([F.col(POSITION)] if POSITION in df.columns else []))


def numbered(rejected: DataFrame, first_positions: DataFrame | None) -> DataFrame:
    """Quarantine rows with `record`, the row's number among its file's records (1 = the first
    after a header) where `first_positions` (source file -> its first `_sp_position`) gives it, in
    place of their `_sp_position`.

    Args:
        rejected: quarantine rows (source_file), with `_sp_position` where the reader numbers rows.
        first_positions: `tally`'s first position per source file, if any.
    """
    if first_positions is None or POSITION not in rejected.columns:
        return rejected.drop(POSITION).withColumn("record", F.lit(None).cast("long"))
    joined = rejected.join(F.broadcast(first_positions), rejected["source_file"] == first_positions[SOURCE_FILE], "left")
    return joined.select(*[rejected[c] for c in rejected.columns if c != POSITION],
                         (rejected[POSITION] - first_positions[_FIRST] + 1).alias("record"))


def rules(config: Config) -> dict[str, ColumnRule]:
    """Rules derived from the schema file (if any), overridden column by column by `clean.rules`.

    Args:
        config: the run's config (its clean section).
    """
    source = config.clean.rules_from_schema
    derived = rules_from_schema(load_schema(read_local(source, "schema"), source)) if source else {}
    return {**derived, **config.clean.rules}


@dataclass(frozen=True)
class Tally:
    """What cleaning rejected, counted on the marked rows in one aggregation.

    Args:
        by_file: one row per (reason, column, source file): its rows `n` and first position `p`.
        by_reason: rows per reason (None: accepted).
        first_positions: source file -> its first position, for `quarantine_rows`.
        by_column: rejected rows per (reason, column), as the quarantine will count them.
    """

    by_file: list[Row]
    by_reason: dict[str | None, int]
    first_positions: DataFrame
    by_column: dict[tuple[str, str | None], int]

    @property
    def rows(self) -> int:
        """Rows read."""
        return sum(self.by_reason.values())


def tally(marked: DataFrame) -> Tally:
    """Per reason, column and file: the counts, and each file's first position (quarantine_rows'
    record numbers), in the one aggregation.

    Args:
        marked: `mark_rejections` rows.
    """
    by_file = marked.groupBy(REASON, REASON_COLUMN, SOURCE_FILE).agg(
        F.count(F.lit(1)).alias("n"), F.min(POSITION).alias("p")).collect()
    by_reason: dict[str | None, int] = {}
    by_column: dict[tuple[str, str | None], int] = {}
    starts: dict[str, int] = {}
    for r in by_file:
        by_reason[r[REASON]] = by_reason.get(r[REASON], 0) + r["n"]
        if r[REASON] is not None:
            key = (r[REASON], r[REASON_COLUMN])
            by_column[key] = by_column.get(key, 0) + r["n"]
        if r["p"] is not None:
            starts[r[SOURCE_FILE]] = min(r["p"], starts.get(r[SOURCE_FILE], r["p"]))
    first_positions = marked.sparkSession.createDataFrame(list(starts.items()), f"{SOURCE_FILE} string, {_FIRST} long")
    return Tally(by_file, by_reason, first_positions, by_column)
