"""Read the input with an explicit (or inferred) schema, capturing what cannot be parsed.

Text formats (CSV, JSON) are read with every configured column as a string plus Spark's corrupt
record column: a malformed line is kept whole, and type coercion happens in `clean`, where a bad
value is rejected naming its column. Nothing is dropped here.

FORMATS says how each input format is read (`Format`); adding one is its line there (and its hooks,
where Spark's reader needs more than its options, in a module of their own), plus its name in
config's `InputConfig.format` (the strict config lists what it accepts; it cannot import io/).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import reduce
from urllib.parse import unquote, urlparse

from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException
from pyspark.errors.exceptions.captured import CapturedException
from pyspark.sql import Column, DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, MapType, StringType, StructField, StructType

from sparkprep.contract import (
    CORRUPT, DUP_CLUSTER, INTERNAL_PREFIX, INVALID_UTF8, LAYOUT, LINE, POSITION, RESERVED_COLUMNS, SOURCE_FILE, WHOLE_RECORD)
from sparkprep.config import ColumnsConfig, InputConfig
from sparkprep.errors import ConfigError, InputError
from sparkprep.io.csv_files import (has_header, likely_cause, parser_limit, read_headers, reader_options,
                                     reads_utf8, record_text, strips_line_end_cr, whole_files)
from sparkprep.io.fs import HadoopFS

log = logging.getLogger(__name__)

_BYTES = "ISO-8859-1"  # one character per byte: reading with it loses nothing
_ASCII_ROW = "_sp_ascii_row"
_DELTA_LOG = "_delta_log"


def _configured_options(config: InputConfig) -> dict[str, str]:
    return config.options


def _as_configured(reader: DataFrameReader, spark: SparkSession, config: InputConfig, options: dict[str, str],
                   version: int | None) -> DataFrameReader:
    return reader


def _as_loaded(df: DataFrame, options: dict[str, str]) -> DataFrame:
    return df


def _unpositioned(options: dict[str, str]) -> bool:
    return False


@dataclass(frozen=True)
class Format:
    """How one input format is read: Spark's reader of that name, and what it needs around it.

    Args:
        text: read as strings (PERMISSIVE), a malformed record kept whole in `_sp_corrupt`.
        infer: reader options for a text format read without input.schema.
        options: the reader options from the input section.
        configure: reader settings beyond the options (an encoding, a pinned Delta version).
        finish: what the loaded rows need before the stages see them.
        positioned: whether each record's position in its file can be known (`_sp_position`).
        read: the whole read, for a format that needs more than one load (default: one `_load`).
    """

    text: bool = False
    infer: dict[str, str] = field(default_factory=dict)
    options: Callable[[InputConfig], dict[str, str]] = _configured_options
    configure: Callable[[DataFrameReader, SparkSession, InputConfig, dict[str, str], int | None],
                        DataFrameReader] = _as_configured
    finish: Callable[[DataFrame, dict[str, str]], DataFrame] = _as_loaded
    positioned: Callable[[dict[str, str]], bool] = _unpositioned
    read: Callable[[SparkSession, InputConfig, dict[str, str], int | None], DataFrame] | None = None


def read_input(spark: SparkSession, config: InputConfig, version: int | None = None) -> DataFrame:
    """The raw input with `_sp_source_file` (and `_sp_corrupt` for text formats).

    CSV is read as RFC 4180 (io/csv_files.py) and, with a header, each file's columns by name.
    A Delta input is read at `version` (default: the latest, pinned once at this call).

    Args:
        spark: the session.
        config: the input section.
        version: the Delta version to read (Delta only).
    """
    _check_schema_types(config)
    _refuse_delta_tables(spark, config)
    fmt = FORMATS[config.format]
    options = fmt.options(config)
    return fmt.read(spark, config, options, version) if fmt.read else _load(spark, config, options, version)


def _check_schema_types(config: InputConfig) -> None:
    """Each input.schema type as Spark SQL reads it: a misspelt one is a ConfigError naming its key,
    before anything is read (Spark's parser would raise it later, from clean's casts). Two words
    read as a struct of one field ("big int"); only a type spelled struct<...> is taken as one."""
    for name, kind in (config.schema_ or {}).items():
        try:
            parsed = DataType.fromDDL(kind)
        except CapturedException:  # its parser's message is about the last of the grammars it tried
            parsed = None
        if parsed is None or (isinstance(parsed, StructType) and not kind.strip().lower().startswith("struct")):
            raise ConfigError(f"input.schema.{name}: {kind!r} is not a Spark SQL type; "
                              f"e.g. string, bigint, double, timestamp, array<double>")


def _refuse_delta_tables(spark: SparkSession, config: InputConfig) -> None:
    """An input path that is a Delta table (it holds `_delta_log/`) read as another format would give
    the rows of every Parquet file in it: the files of replaced and deleted versions too."""
    if config.format == "delta":
        return
    for uri in config.paths:
        if HadoopFS(spark, uri).exists(f"{uri.rstrip('/')}/{_DELTA_LOG}"):
            raise InputError(f"input path {uri} is a Delta table (it holds {_DELTA_LOG}/): read as {config.format}, "
                             f"its files of earlier versions would be read too, rows replaced or deleted since "
                             f"among them; set input.format: delta")


def _read_csv(spark: SparkSession, config: InputConfig, options: dict[str, str], version: int | None) -> DataFrame:
    """CSV: with input.schema and a header, each file's columns by name; else one header for all."""
    if config.schema_:
        return _read_csv_by_header(spark, config, options) if has_header(options) else _load(spark, config, options, None)
    _one_header(spark, config, options)
    return _load(spark, config, options, None)


def csv_options(config: InputConfig) -> dict[str, str]:
    """The options a CSV input is read with: RFC 4180 defaults under the user's (io/csv_files.py);
    without a schema, a header by default (the inferred columns need names).

    Args:
        config: the input section.
    """
    if config.schema_:
        return reader_options(config.options, typed_by_schema=True)
    return {"header": "true", **reader_options(config.options, typed_by_schema=False)}


def _skipping(spark: SparkSession, config: InputConfig) -> DataFrameReader:
    """Spark's reader, told to skip unreadable files where the input section says so."""
    if config.on_unreadable_file == "quarantine":
        return spark.read.option("ignoreCorruptFiles", "true")  # listed by `unread_files` afterwards
    return spark.read


def _loaded(read: Callable[[], DataFrame], config: InputConfig) -> DataFrame:
    """`read()`, its failures as an InputError naming the input."""
    try:
        return read()
    except AnalysisException as exc:
        raise InputError(_explain_read_failure(config, exc)) from None
    except (CapturedException, Py4JJavaError) as exc:
        raise InputError(f"cannot read {config.paths} as {config.format}: {spark_error_summary(exc)}") from None


def _reader(spark: SparkSession, config: InputConfig, options: dict[str, str], fmt: Format) -> DataFrameReader:
    reader = _skipping(spark, config).format(config.format).options(**options)
    if fmt.text:
        reader = reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
    return reader


def _load(spark: SparkSession, config: InputConfig, options: dict[str, str], version: int | None,
          columns: list[str] | None = None, paths: list[str] | None = None) -> DataFrame:
    """One read of `paths` (default: the input's), with `_sp_source_file` (and `_sp_corrupt` for
    text formats); text formats with `columns` (file order) as strings, else the configured schema's."""
    fmt = FORMATS[config.format]
    reader = fmt.configure(_reader(spark, config, options, fmt), spark, config, options, version)
    if fmt.text:
        names = columns or list(config.schema_ or {})
        if names:
            reader = reader.schema(StructType([*(StructField(n, StringType()) for n in names),
                                               StructField(CORRUPT, StringType())]))
        else:
            reader = reader.options(**fmt.infer)
    df = _loaded(lambda: reader.load(paths or config.paths), config)
    if fmt.text and CORRUPT not in df.columns:
        df = df.withColumn(CORRUPT, F.lit(None).cast("string"))
    df = fmt.finish(df, options)
    return df.withColumns({SOURCE_FILE: F.col("_metadata.file_path"),
                           POSITION: F.monotonically_increasing_id() if fmt.positioned(options) else F.lit(None).cast("long")})


def _csv_encoding(reader: DataFrameReader, spark: SparkSession, config: InputConfig, options: dict[str, str],
                  version: int | None) -> DataFrameReader:
    """UTF-8 is read as ISO-8859-1 (its bytes) and checked afterwards (`_decoded`)."""
    return reader.option("encoding", _BYTES) if reads_utf8(options) else reader


def _csv_finish(df: DataFrame, options: dict[str, str]) -> DataFrame:
    """A CR before the line end stripped where the dialect asks, UTF-8 checked, and each row's
    file layout (its columns in file order) kept for its raw record."""
    if strips_line_end_cr(options):
        last = [c for c in df.columns if c != CORRUPT][-1]
        value = F.col(last)
        df = df.withColumn(last, F.when(F.endswith(value, F.lit("\r")), F.substr(value, F.lit(1), F.length(value) - 1))
                           .otherwise(value))
    if reads_utf8(options):
        df = _decoded(df)
    return df.withColumn(LAYOUT, F.array(*[F.lit(c) for c in df.columns if not c.startswith(INTERNAL_PREFIX)]))


def _delta_version(reader: DataFrameReader, spark: SparkSession, config: InputConfig, options: dict[str, str],
                   version: int | None) -> DataFrameReader:
    if len(config.paths) != 1:
        raise InputError(f"input.paths: a Delta input is one table, got {len(config.paths)} paths")
    # Pin the version once, so every pass of the run reads the same snapshot.
    return reader.option("versionAsOf", input_version(spark, config) if version is None else version)


def _decoded(df: DataFrame) -> DataFrame:
    """Text read as ISO-8859-1 (its bytes, one character each) back to UTF-8, checked: a value
    whose bytes are not valid UTF-8 becomes `0x` and its bytes in hex, and `_sp_invalid_utf8`
    names its column (clean rejects the row as invalid_encoding). A row whose text is all ASCII
    (as many characters as bytes: nearly every row of most inputs) is left as it is after one
    test of its values together; only the other rows' values are looked at one by one."""
    texts = [f.name for f in df.schema.fields if isinstance(f.dataType, StringType)
             and (f.name == CORRUPT or not f.name.startswith(INTERNAL_PREFIX))]
    if not texts:
        return df.withColumn(INVALID_UTF8, F.array().cast("array<string>"))
    whole = F.concat_ws("", *[F.col(n) for n in texts])
    ascii_row = F.length(whole) == F.octet_length(whole)
    checked = df.withColumn(_ASCII_ROW, ascii_row)
    # Each value's own test stays inside the branch for rows that are not all ASCII: an expression
    # in a CASE's first condition is evaluated for every row (and hoisted by Spark's common
    # subexpression elimination wherever it appears again).
    ascii_rows = F.col(_ASCII_ROW)
    values, invalid = {}, []
    for name in texts:
        raw = F.encode(F.col(name), _BYTES)
        ascii_only = F.length(F.col(name)) == F.octet_length(F.col(name))
        valid = ascii_only | F.call_function("is_valid_utf8", raw.cast("string"))
        values[name] = F.when(ascii_rows, F.col(name)).otherwise(
            F.when(ascii_only, F.col(name)).when(valid, raw.cast("string")).otherwise(F.concat(F.lit("0x"), F.hex(raw))))
        if name != CORRUPT:
            invalid.append(F.when(~valid, F.lit(name)))
    none = F.array().cast("array<string>")
    found = F.when(ascii_rows, none).otherwise(F.array_compact(F.array(*invalid))) if invalid else none
    return checked.withColumns({**values, INVALID_UTF8: found}).drop(_ASCII_ROW)


def raw_record(df: DataFrame, config: InputConfig) -> Column | None:
    """A row's record as read (what a rejected row keeps as raw; clean evaluates it for rejected
    rows only): CSV's text, in its file's column order and the reader's dialect; a JSON line as it
    was. None for other formats, whose rejected rows keep their columns as JSON.

    Args:
        df: the input as read.
        config: the input section.
    """
    if LINE in df.columns:
        return F.col(LINE)
    if LAYOUT not in df.columns:
        return None
    return record_text(F.col(LAYOUT), {c: F.col(c) for c in df.columns if not c.startswith(INTERNAL_PREFIX)},
                       csv_options(config))


def file_layouts(spark: SparkSession, config: InputConfig | None) -> dict[str, list[str]]:
    """Each CSV input file's header (its columns in order, the layout `rendered_record` renders a
    record of it in), read from the files' first bytes; empty for other formats and header-less files.

    Args:
        spark: the session.
        config: the input section.
    """
    if config is None or config.format != "csv" or not has_header(options := csv_options(config)):
        return {}
    headers = read_headers(spark, _input_files(spark, config, options), options)[0]
    # Keyed as `_metadata.file_path` spells a file: URI-encoded (Hadoop's Path.toUri), and an
    # empty authority left out (file:/x, as a file status names it, not file:///x).
    encoded = spark._jvm.org.apache.hadoop.fs.Path  # type: ignore[union-attr]
    return {re.sub(r"^([A-Za-z][\w+.-]*):///", r"\1:/", encoded(uri).toUri().toString()): header
            for uri, header in headers.items()}


def rendered_record(df: DataFrame, config: InputConfig | None, layouts: dict[str, list[str]]) -> Column:
    """A row's record rendered from its values in the input's own format, for a row that passed
    cleaning and that a later stage quarantines (a conflicting or rare label). The scratch copy
    keeps typed values, not the text as read (the text of every row would double the copy), so
    this is the record as clean reads it back, not byte for byte the line: a CSV line in the
    reader's dialect and the input's column order (arrays as `a;b`, a null as an empty field), else
    the row as a JSON object (a JSON line). The row's file and record number locate the original.

    Args:
        df: rows with the input's columns (and internal or output columns, left out) and `_sp_source_file`.
        config: the input section (None: a JSON object).
        layouts: `file_layouts` (a file missing from it: the rows' column order).
    """
    columns = [f for f in df.schema.fields if not f.name.startswith(INTERNAL_PREFIX)
               and f.name not in (*RESERVED_COLUMNS, DUP_CLUSTER)]
    if config is None or config.format != "csv":
        return F.to_json(F.struct(*[F.col(f.name) for f in columns]))

    def text(f: StructField) -> Column:
        if isinstance(f.dataType, ArrayType):
            return F.array_join(F.col(f.name).cast("array<string>"), ";")
        if isinstance(f.dataType, (MapType, StructType)):
            return F.to_json(F.col(f.name))
        return F.col(f.name).cast("string")
    order = F.array(*[F.lit(f.name) for f in columns])
    if layouts:
        by_file = F.create_map(*[x for uri, header in layouts.items() for x in (F.lit(uri), F.array(*map(F.lit, header)))])
        order = F.coalesce(by_file[F.col(SOURCE_FILE)], order)
    return record_text(order, {f.name: text(f) for f in columns}, csv_options(config))


def _read_json(spark: SparkSession, config: InputConfig, options: dict[str, str], version: int | None) -> DataFrame:
    """JSON Lines, read as lines of text and parsed by Spark's own JSON parser (`from_json`, with
    the reader's options): a rejected record keeps its line exactly as read (`_sp_line`), and a line
    whose bytes are not UTF-8 is kept as 0x and hex and named (invalid_encoding) rather than parsed
    with replacement characters. As Spark's JSON reader reads it, a line that is an array of objects
    holds one record per object (each keeps the whole line as its raw). A multi-line document, or a
    file in another encoding, has no line to keep: Spark's JSON reader reads those as before."""
    if whole_files(options) or not reads_utf8(options):
        return _load(spark, config, options, version)
    schema = _json_schema(spark, config, options)
    reader = _skipping(spark, config).options(**{k: v for k, v in options.items() if k.lower() == "linesep"})
    lines = _loaded(lambda: reader.text(config.paths), config)
    valid = F.call_function("is_valid_utf8", F.col("value"))
    parsed = F.from_json("value", schema, {**options, "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    # Only a line that starts with [ is parsed as an array: an object is parsed once, as above.
    bracketed = F.startswith(F.ltrim("value"), F.lit("["))
    objects = ArrayType(StructType([f for f in schema.fields if f.name != CORRUPT]))
    array = F.from_json(F.when(bracketed & valid, F.col("value")), objects, {**options, "mode": "PERMISSIVE"})
    records = F.when(array.isNotNull() & ~F.exists(array, lambda r: r.isNull()),
                     F.transform(array, lambda r: r.withField(CORRUPT, F.lit(None).cast("string")))
                     ).otherwise(F.array(parsed))
    # Spark's JSON reader skips blank lines (and an empty array); so does this.
    df = lines.where(F.trim(F.col("value")) != "").select(
        F.explode(records).alias("_sp_parsed"), F.col("value").alias(LINE), valid.alias("_sp_valid"),
        F.col("_metadata.file_path").alias(SOURCE_FILE))
    return df.select("_sp_parsed.*", LINE, SOURCE_FILE, "_sp_valid").withColumns({
        CORRUPT: F.when(F.col("_sp_valid"), F.col(CORRUPT)).otherwise(F.concat(F.lit("0x"), F.hex(F.col(LINE)))),
        INVALID_UTF8: F.when(F.col("_sp_valid"), F.array().cast("array<string>")).otherwise(F.array(F.lit(WHOLE_RECORD))),
        POSITION: F.lit(None).cast("long"),
    }).drop("_sp_valid")


def _json_schema(spark: SparkSession, config: InputConfig, options: dict[str, str]) -> StructType:
    """input.schema's columns as strings (clean types them), else the types Spark infers from the
    files (one pass, as its reader would make); with the corrupt-record column last."""
    if config.schema_:
        fields = [StructField(n, StringType()) for n in config.schema_]
    else:
        inferred = _load(spark, config, options, None).schema
        fields = [f for f in inferred.fields if not f.name.startswith(INTERNAL_PREFIX)]
    return StructType([*fields, StructField(CORRUPT, StringType())])


def _input_files(spark: SparkSession, config: InputConfig, options: dict[str, str]) -> list[str]:
    """The input's files as Spark lists them (hidden files skipped, globs expanded); nothing read."""
    return sorted(_load(spark, config, options, None, columns=["_sp_probe"]).inputFiles())


def _read_csv_by_header(spark: SparkSession, config: InputConfig, options: dict[str, str]) -> DataFrame:
    """Files grouped by their header, each group read in its own column order and selected by
    name: the schema's order never matters. A schema column missing from a header, or a header
    column that the schema lacks (unless `input.extra_columns: ignore`), stops the run before any
    row is read."""
    assert config.schema_
    files = _input_files(spark, config, options)
    headers, unreadable = read_headers(spark, files, options)
    if unreadable and config.on_unreadable_file == "fail":
        uri, why = next(iter(unreadable.items()))
        raise InputError(f"cannot read input file {uri}: {why}; set input.on_unreadable_file: quarantine "
                         f"to skip files that cannot be read ({len(unreadable)} such file(s))")
    groups: dict[tuple[str, ...], list[str]] = {}
    for uri in files:
        groups.setdefault(tuple(headers.get(uri, [])), []).append(uri)
    wanted = list(config.schema_)
    parts = []
    for header, uris in sorted(groups.items(), key=lambda kv: kv[1][0]):
        if header:  # else empty or skipped unreadable files: nothing to match; Spark reads (or skips) them
            try:
                _check_header(list(header), wanted, uris, config.extra_columns)
            except InputError as exc:
                cause = likely_cause(spark, uris[0], options)
                raise InputError(f"{exc}{f'{chr(10)}Likely cause: {cause}' if cause else ''}") from None
        read = _load(spark, config, options, None, columns=list(header) or None, paths=uris)
        parts.append(read.select(*wanted, *[c for c in read.columns if c.startswith(INTERNAL_PREFIX)]))
    if len(groups) > 1:
        log.info("CSV files in %d column orders, matched by name to input.schema", len(groups))
    return reduce(DataFrame.unionByName, parts)


def _one_header(spark: SparkSession, config: InputConfig, options: dict[str, str]) -> None:
    """Without input.schema, Spark takes the first file's header for all files and reads the rest
    by position: refuse files whose headers differ, rather than read their columns swapped."""
    if not has_header(options):
        return
    headers, _ = read_headers(spark, _input_files(spark, config, options), options)
    distinct = {tuple(h): uri for uri, h in sorted(headers.items()) if h}
    if len(distinct) > 1:
        (first, a), (second, b) = list(distinct.items())[:2]
        raise InputError(f"the input's CSV files have different headers ({len(distinct)} kinds), and without "
                         f"input.schema they would be read by position:\n  {a}: {', '.join(first)}\n"
                         f"  {b}: {', '.join(second)}\nSet input.schema (column: type): columns are then matched by name.")


def _check_header(header: list[str], wanted: list[str], uris: list[str], extra_columns: str) -> None:
    where = uris[0] + (f" (and {len(uris) - 1} more file(s) with this header)" if len(uris) > 1 else "")
    repeated = sorted({n for n in header if header.count(n) > 1})
    if repeated:
        raise InputError(f"{where}: the header names column(s) {repeated} more than once: {', '.join(header)}")
    missing = [n for n in wanted if n not in header]
    if missing:
        raise InputError(
            f"{where}: input.schema column(s) {missing} are not in the file's header.\n"
            f"  header: {', '.join(header)}\n  schema: {', '.join(wanted)}\n"
            f"Columns are matched by name: rename them in input.schema to the header's names "
            f"(or set input.options.header: \"false\" if the first line is data, and list the schema in file order).")
    extra = [n for n in header if n not in wanted]
    if extra and extra_columns == "error":
        raise InputError(
            f"{where}: header column(s) {extra} are not in input.schema.\n"
            f"  header: {', '.join(header)}\n  schema: {', '.join(wanted)}\n"
            f"Add them to input.schema, or set input.extra_columns: ignore to read without them.")


def unread_files(raw: DataFrame, read: DataFrame) -> list[str]:
    """Input files of `raw` (from its file index, no data read) that gave no row to `read` (its
    rows, with `_sp_source_file`), ignoring empty files: with `ignoreCorruptFiles`, these are
    the files Spark skipped. (A file cut part-way may yield the rows before the damage; Spark
    does not report that, so only a whole unreadable file is caught here.)

    Args:
        raw: the input as read (its file index).
        read: its rows, read.
    """
    def path(uri: str) -> str:
        return unquote(urlparse(uri).path).rstrip("/")

    seen = {path(r[0]) for r in read.select(SOURCE_FILE).distinct().collect() if r[0]}
    jvm = raw.sparkSession._jvm
    conf = raw.sparkSession._jsc.hadoopConfiguration()
    unread = []
    for uri in raw.inputFiles():
        if path(uri) not in seen:
            hadoop_path = jvm.org.apache.hadoop.fs.Path(uri)
            if hadoop_path.getFileSystem(conf).getFileStatus(hadoop_path).getLen() > 0:
                unread.append(uri)
    return sorted(unread)


def delta_version(spark: SparkSession, uri: str) -> int:
    """The latest version of the Delta table at `uri`.

    Args:
        spark: the session.
        uri: the table's directory.
    """
    from delta.tables import DeltaTable  # the JVM side exists only once the session has the jars

    return int(DeltaTable.forPath(spark, uri).history(1).collect()[0]["version"])


def input_version(spark: SparkSession, config: InputConfig) -> int | None:
    """The Delta table version a run reads (None for file formats).

    Args:
        spark: the session.
        config: the input section.
    """
    if config.format != "delta":
        return None
    try:
        return delta_version(spark, config.paths[0])
    except (AnalysisException, CapturedException, Py4JJavaError) as exc:
        raise InputError(f"{config.paths[0]} is not a readable Delta table: {spark_error_summary(exc)}") from None


def check_columns(df: DataFrame, columns: ColumnsConfig, source: str) -> DataFrame:
    """Apply renames, then fail early on reserved names and on configured columns that are absent.

    Args:
        df: the input as read.
        columns: the columns section.
        source: the input, named in errors.
    """
    for old, new in columns.rename.items():
        if old not in df.columns:
            raise InputError(f"columns.rename: input column {old!r} does not exist in {source}")
        df = df.withColumnRenamed(old, new)
    if columns.rename and LAYOUT in df.columns:
        renamed = F.create_map(*[F.lit(x) for pair in columns.rename.items() for x in pair])
        df = df.withColumn(LAYOUT, F.transform(LAYOUT, lambda n: F.coalesce(renamed[n], n)))
    present = [c for c in df.columns if not c.startswith(INTERNAL_PREFIX)]
    clash = sorted(set(present) & set(RESERVED_COLUMNS))
    if clash:
        raise InputError(
            f"input column(s) {clash} in {source} use names reserved for the output "
            f"({', '.join(RESERVED_COLUMNS)}); rename them with columns.rename, e.g. --set columns.rename.{clash[0]}=src_{clash[0]}")
    wanted = {"columns.label": [columns.label], "columns.numeric": columns.numeric,
              "columns.categorical": columns.categorical, "columns.array": columns.array,
              "columns.text": columns.text}
    for key, names in wanted.items():
        missing = [n for n in names if n not in present]
        if missing:
            raise InputError(f"{key}: column(s) {missing} not found in {source}; "
                             f"the input has: {', '.join(present)}")
    return df


def spark_error_summary(exc: Exception) -> str:
    """The first line of what the JVM said (it names the file), without the stack trace, and why,
    where only its innermost cause says it (Spark's FAILED_READ_FILE.NO_HINT names the file alone).

    Args:
        exc: what Spark raised.
    """
    text = exc.java_exception.getMessage() if isinstance(exc, Py4JJavaError) else str(exc)
    first = (str(text).strip().splitlines() or [type(exc).__name__])[0][:600]
    why = _why(exc)
    return f"{first} ({why})" if why and why not in first else first


def _why(exc: Exception) -> str | None:
    """What the causes of a JVM exception say: the CSV parser's limit where one was hit, else the
    first line of the innermost cause."""
    java = exc.java_exception if isinstance(exc, Py4JJavaError) else getattr(exc, "_origin", None)
    causes, cause = [], java.getCause() if java is not None else None
    while cause is not None and len(causes) < 20:
        causes.append(f"{cause.getClass().getSimpleName()}: {cause.getMessage() or ''}".strip())
        cause = cause.getCause()
    limit = next(filter(None, map(parser_limit, causes)), None)
    return limit or (causes[-1].splitlines()[0][:600] if causes else None)


def _explain_read_failure(config: InputConfig, exc: AnalysisException) -> str:
    condition = exc.getCondition() or ""
    if "PATH_NOT_FOUND" in condition:
        return f"input path does not exist: {exc.getMessageParameters().get('path', config.paths)}"
    first = str(exc).strip().splitlines()[0]
    return f"cannot read {config.paths} as {config.format}: {first}"


#: The input formats (input.format), each read by Spark's reader of the same name.
FORMATS: dict[str, Format] = {
    "csv": Format(text=True, infer={"inferSchema": "true"}, options=csv_options, configure=_csv_encoding,
                  finish=_csv_finish, positioned=whole_files, read=_read_csv),
    "json": Format(text=True, read=_read_json),
    "parquet": Format(),
    "orc": Format(),
    "delta": Format(configure=_delta_version),
}
