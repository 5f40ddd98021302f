"""CSV as its writers mean it: RFC 4180 defaults, and each file's header read before Spark reads
the rows, so that columns are matched by name.

Spark's CSV reader, left at its defaults, escapes with a backslash and reads one record per line:
a pandas or Python `csv` file with a doubled quote or a newline inside a quoted field loses and
alters rows. `reader_options` sets what those writers write (quote and escape `"`, multi-line
records); a user's explicit option still wins. The line separator is pinned to `\\n`: with Spark's
line-ending detection a file that mixes `\\n` and `\\r\\n` keeps a `\\r` in its last column, and a
`\\r\\n` inside a quoted field is rewritten to `\\n`. Pinned, every `\\r\\n` inside quotes stays as
written and a CRLF line end leaves one `\\r` on the record's last field, which ingest removes
(`strips_line_end_cr`): a quoted last field that truly ends in a carriage return is the one value this
changes, a case no writer we know of produces. (A UTF-8 byte order mark is skipped by Spark itself
in multi-line mode.)

Headers are read from the first bytes of each file in the driver (decompressed by Hadoop's codec
for the file's extension), with Python's own `csv` module under the same dialect.
"""

from __future__ import annotations

import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor

from py4j.protocol import Py4JJavaError
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

#: What pandas' to_csv and Python's csv.writer produce (RFC 4180). A quote inside a quoted field
#: that is neither doubled nor closing it (a line cut inside a quoted text, say) makes the record
#: malformed (BACK_TO_DELIMITER) instead of silently running on into the following lines, as
#: Spark's default (STOP_AT_DELIMITER) does.
RFC4180 = {"quote": '"', "escape": '"', "multiLine": "true", "unescapedQuoteHandling": "BACK_TO_DELIMITER"}
#: Header bytes read per try; quadrupled until a whole first record parses, up to the limit.
_HEAD_BYTES = 64 << 10
_HEAD_LIMIT = 16 << 20
_THREADS = 16


def reader_options(user: dict[str, str], typed_by_schema: bool) -> dict[str, str]:
    """The CSV options a run reads with: RFC 4180 defaults under the user's own (keys compared
    case-insensitively, as Spark does). The `\\n` separator is pinned only when a schema types the
    columns: Spark's type inference would see a CRLF's `\\r` in the last column before it is removed.

    Args:
        user: input.options.
        typed_by_schema: whether input.schema types the columns.
    """
    given = {k.lower() for k in user}
    defaults = {**RFC4180, **({"lineSep": "\n"} if typed_by_schema else {})}
    return {**{k: v for k, v in defaults.items() if k.lower() not in given}, **user}


def _lowered(options: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in options.items()}


def _dialect(options: dict[str, str]) -> tuple[str, str, str]:
    """(delimiter, quote, escape) as Spark reads them from `options`, with Spark's defaults."""
    lowered = _lowered(options)
    return (_unescape(lowered.get("sep", lowered.get("delimiter", ","))), lowered.get("quote", '"'),
            lowered.get("escape", "\\"))


def _encoding(options: dict[str, str]) -> str:
    lowered = _lowered(options)
    return lowered.get("encoding", lowered.get("charset", "utf-8"))


def whole_files(options: dict[str, str]) -> bool:
    """Whether Spark reads each file whole, in one task (multi-line records cannot be split).

    Args:
        options: the reader options.
    """
    return _lowered(options).get("multiline", "false").lower() == "true"


def strips_line_end_cr(options: dict[str, str]) -> bool:
    """Whether rows keep a CRLF's `\\r` on their last field (the pinned `\\n` separator in multi-line mode).

    Args:
        options: the reader options.
    """
    return whole_files(options) and _lowered(options).get("linesep") == "\n"


def record_text(layout: Column, fields: dict[str, Column], options: dict[str, str]) -> Column:
    """The CSV record of a row, its `fields` in the file's order (`layout`, an array of their
    names), as the reader's dialect writes it, quoting only where needed (Python's QUOTE_MINIMAL,
    pandas' default); a null is an empty field. What a rejected row keeps as `raw`, so that it can
    be fixed and read again. Interpreted (a lambda per field): meant for rejected rows only.

    Args:
        layout: the file's column names in order (an array column).
        fields: each column's text, by name.
        options: the reader options (the dialect).
    """
    delimiter, quote, escape = _dialect(options)
    values = F.create_map(*[x for name, text in fields.items() for x in (F.lit(name), text)])

    def field(name: Column) -> Column:
        value = values[name]
        special = value.contains(delimiter) | value.contains(quote) | value.contains("\n") | value.contains("\r")
        escaped = F.replace(value, F.lit(quote), F.lit((quote if escape == quote else escape) + quote))
        return F.coalesce(F.when(special, F.concat(F.lit(quote), escaped, F.lit(quote))).otherwise(value), F.lit(""))
    return F.array_join(F.transform(layout, field), delimiter)


def reads_utf8(options: dict[str, str]) -> bool:
    """Whether the files are UTF-8 (the default): then Spark reads them byte for byte as
    ISO-8859-1 and ingest checks each value's bytes (`decoded_utf8`), so that an invalid byte is
    reported instead of replaced by U+FFFD.

    Args:
        options: the reader options.
    """
    return _encoding(options).lower().replace("_", "-") in ("utf-8", "utf8")


def has_header(options: dict[str, str]) -> bool:
    """Whether the files start with a header line.

    Args:
        options: the reader options.
    """
    return _lowered(options).get("header", "false").lower() == "true"


def read_headers(spark: SparkSession, files: list[str],
                 options: dict[str, str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each file's header (the first record) as column names, an empty file's as `[]`; and the
    files that could not be read, with what the JVM said.

    Args:
        spark: the session.
        files: the input files.
        options: the reader options.
    """
    def one(uri: str) -> list[str] | str:
        try:
            return _header(spark, uri, options)
        except Py4JJavaError as exc:
            return str(exc.java_exception.getMessage() or exc.java_exception.toString()).splitlines()[0]

    with ThreadPoolExecutor(min(_THREADS, max(1, len(files)))) as pool:
        found = dict(zip(files, pool.map(one, files)))
    return ({u: h for u, h in found.items() if isinstance(h, list)},
            {u: h for u, h in found.items() if isinstance(h, str)})


def _header(spark: SparkSession, uri: str, options: dict[str, str]) -> list[str]:
    encoding = _encoding(options)
    delimiter, quote, escape = _dialect(options)
    dialect = {"delimiter": delimiter, "quotechar": quote or None}
    dialect |= {"doublequote": True} if escape == dialect["quotechar"] else {"doublequote": False, "escapechar": escape}
    size = _HEAD_BYTES
    while True:
        head, complete = _first_bytes(spark, uri, size)
        text = head.decode(encoding, errors="replace").lstrip("\ufeff")
        if not text.strip():
            return []
        # The first record is whole once a second one starts after it (or the file ended).
        records = list(csv.reader(io.StringIO(text, newline=""), **dialect))
        if complete or len(records) > 1 or size >= _HEAD_LIMIT:
            return [name.strip() for name in records[0]] if records else []
        size *= 4


#: What a file that is not CSV at all starts with.
_SIGNATURES = {b"PAR1": "a Parquet file: set input.format: parquet",
               b"ORC": "an ORC file: set input.format: orc",
               b"\x1f\x8b": "gzip-compressed, but its name does not end in .gz (Spark picks the codec by the name): rename it",
               b"PK\x03\x04": "a ZIP archive: unpack it (Spark reads gzip, bzip2, xz and zstd by their extensions)"}


def likely_cause(spark: SparkSession, uri: str, options: dict[str, str]) -> str | None:
    """Why the records of a CSV file fail, guessed from its first bytes: another format, gzip
    under another name, another delimiter than the configured one, or backslash-escaped quotes.

    Args:
        spark: the session.
        uri: the file.
        options: the reader options.
    """
    head, _ = _first_bytes(spark, uri, 8192)  # decompressed only when the name says so
    for signature, what in _SIGNATURES.items():
        if head.startswith(signature):
            return f"the file is {what}"
    delimiter, quote, escape = _dialect(options)
    line = head.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    counts = {d: line.count(d) for d in (",", ";", "\t", "|") if d != delimiter}
    other = max(counts, key=lambda d: counts[d]) if counts else None
    if other and counts[other] > line.count(delimiter):
        return (f"its first line has {counts[other]} x {other!r} and {line.count(delimiter)} x {delimiter!r}: "
                f"set input.options.sep: {other!r}")
    if escape == quote and ("\\" + quote).encode() in head:
        return f"it escapes quotes with a backslash (\\{quote}): set input.options.escape: '\\\\'"
    return None


def parser_limit(message: str) -> str | None:
    """What a failure of Spark's CSV parser means where it hit one of the parser's limits: a record
    with more fields than maxColumns (univocity's TextParsingException: an index out of bounds, and
    the parser's settings).

    Args:
        message: an exception's class name and message.
    """
    limit = re.search(r"Maximum number of columns=(\d+)", message)
    if limit and "ArrayIndexOutOfBoundsException" in message:
        return (f"a record has more than {limit[1]} fields, the CSV parser's limit: a line of runaway delimiters, or "
                f"set input.options.maxColumns higher")
    return None


def _first_bytes(spark: SparkSession, uri: str, size: int) -> tuple[bytes, bool]:
    """Up to `size` bytes from the start of the (decompressed) file; and whether that is all of it."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    path = jvm.org.apache.hadoop.fs.Path(uri)
    stream = path.getFileSystem(conf).open(path)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(path)
    if codec is not None:
        stream = codec.createInputStream(stream)
    try:
        data = bytes(stream.readNBytes(size + 1))
    finally:
        stream.close()
    return data[:size], len(data) <= size


def _unescape(delimiter: str) -> str:
    # Spark takes "\t" spelled with a backslash in a config file.
    return {"\\t": "\t"}.get(delimiter, delimiter)
