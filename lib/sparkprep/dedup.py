"""Row identity and exact deduplication.

`row_id` is xxhash64 of the canonical cleaned content (all data columns, in order). Exact
duplicates are found on 128 bits: `row_id` plus a second, independently salted 64-bit hash. Two
different rows share both only with probability ~ n^2 / 2^129 (about 1e-21 at a billion rows), so
no equality re-check is needed; `row_id` alone (64 bits) may collide with probability
~ n^2 / 2^65 at n rows (about 3% at a billion), which only ties the split's sort order, never
merges rows.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ROW_ID = "row_id"
_CONTENT_HASH2 = "_sp_content_hash2"


def add_row_id(df: DataFrame) -> DataFrame:
    """Add `row_id` (and the internal second hash) from every data column of `df`."""
    content = [F.col(c) for c in df.columns if not c.startswith("_sp_")]
    return df.withColumns({
        ROW_ID: F.xxhash64(*content),
        _CONTENT_HASH2: F.xxhash64(F.lit("sparkprep/content/2"), *content),
    })


def drop_exact_duplicates(df: DataFrame) -> DataFrame:
    """Keep one row per identical content (any copy: they are equal in every output column)."""
    return df.dropDuplicates([ROW_ID, _CONTENT_HASH2]).drop(_CONTENT_HASH2)
