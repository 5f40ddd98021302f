"""Real CSV files read by `read_input` against Python's csv module, value for value.

    python bench/real_csv_roundtrip.py [--header-order] FILE [FILE ...]   (.csv or .csv.gz, with a header)

The schema lists each file's header columns in alphabetical order (with --header-order: in the
header's), all as strings, so a reader that matches by position swaps them. Prints, per file: records Python's csv reads, rows read, rows
Spark marked malformed, rows whose values all equal Python's. Figures go to bench/RESULTS.md by hand.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from collections import Counter
from pathlib import Path

from sparkprep.contract import CORRUPT
from sparkprep.config import InputConfig, SparkConfig
from sparkprep.io.read import read_input
from sparkprep.io.session import build_session


def _python_rows(path: Path) -> tuple[list[str], list[tuple[str, ...]]]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    records = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return records[0], [tuple(r) for r in records[1:]]


def main() -> None:
    spark = build_session(SparkConfig(master="local[2]", conf={"spark.ui.showConsoleProgress": "false"}), "real-csv")
    in_header_order = "--header-order" in sys.argv
    for name in [a for a in sys.argv[1:] if a != "--header-order"]:
        path = Path(name).resolve()
        header, expected = _python_rows(path)
        schema = {c: "string" for c in (header if in_header_order else sorted(header))}
        rows = read_input(spark, InputConfig(paths=[str(path)], format="csv", options={"header": "true"},
                                             schema=schema)).collect()
        got = Counter(tuple("" if r[c] is None else r[c] for c in header) for r in rows if r[CORRUPT] is None)
        equal = sum((got & Counter(expected)).values())
        print(json.dumps({"file": path.name, "python_records": len(expected), "rows_read": len(rows),
                          "malformed": sum(1 for r in rows if r[CORRUPT] is not None), "values_equal": equal}))
    spark.stop()


if __name__ == "__main__":
    main()
