"""The data contract's names, defined once (DESIGN.md, "Data contract"; docs/manifest.md).

Pyspark-free: the trainer side imports it too. Stages take from here the names they share (the
output columns, the `_sp_` columns that cross from one stage to the next, the reason codes, the
file names) instead of borrowing them from one another.
"""

from __future__ import annotations

# Output columns added to every row.
ROW_ID = "row_id"
FOLD = "fold"
REPLICA = "replica"
LABEL_INDEX = "label_index"
#: False only for an undersampled original, which training portions skip.
IN_TRAIN = "in_train"
#: How many oversampled copies of the row training adds (replica 1..copies): written only when the
#: copies are counted (rebalance.copies: count) instead of written as rows, but reserved always, so
#: that an input column of that name is refused whichever layout a run picks.
COPIES = "copies"
RESERVED_COLUMNS = (ROW_ID, FOLD, REPLICA, LABEL_INDEX, IN_TRAIN, COPIES)
#: rebalance.copies (recorded in the manifest's `rebalance`): oversampled copies written as rows
#: (the default, for readers outside sparkprep) or counted in COPIES on their original.
COPIES_AS_ROWS = "rows"
COPIES_COUNTED = "count"
#: Optional output column: the near-duplicate cluster a row belongs to.
DUP_CLUSTER = "dup_cluster"
#: The fold of the held-out test rows.
HOLDOUT_FOLD = -1
#: What a trainer reads of fold k: train, val (fold k), final (all but the holdout), test.
SPLITS = ("train", "val", "final", "test")

# Internal columns that cross stages; every internal name starts with this prefix and none reaches
# the output.
INTERNAL_PREFIX = "_sp_"
CORRUPT = "_sp_corrupt"
SOURCE_FILE = "_sp_source_file"
#: Where a record stands in its partition (monotonically_increasing_id), for CSV files that Spark
#: reads whole in one task (multi-line records): the record's number in its file is its position
#: less its file's first (clean.quarantine_rows). Null where files are split across tasks.
POSITION = "_sp_position"
#: CSV: the names of the file's columns in file order (a literal per file layout), from which
#: read.raw_record writes a rejected row's record back as text. Dropped by clean.mark_rejections.
LAYOUT = "_sp_layout"
#: The names of a row's columns whose bytes are not valid UTF-8 (CSV read as UTF-8), or
#: WHOLE_RECORD for a record that is not UTF-8 as a whole (a JSON line).
INVALID_UTF8 = "_sp_invalid_utf8"
WHOLE_RECORD = ""
#: JSON Lines: the line a record was read from, as read (a rejected row's `raw`). Dropped by clean.
LINE = "_sp_line"
REASON = "_sp_reason"
REASON_COLUMN = "_sp_column"
MESSAGE = "_sp_message"
RAW = "_sp_raw"
GROUP = "_sp_group"
CONFLICT = "_sp_conflict"
#: 64 bits of a row's feature hash (dedup), by which the split keeps a conflicting group in one fold.
FEATURE_HASH = "_sp_features1"
#: Index of a row within its (fold, class), in hash order, set by the split; null in the holdout.
#: Rebalancing undersamples and oversamples by it.
FOLD_RANK = "_sp_fold_rank"

# Quarantine reason codes, in the order clean checks them (the first that applies is recorded).
MALFORMED = "malformed_record"
INVALID_ENCODING = "invalid_encoding"
UNPARSABLE = "unparsable_value"
MISSING_LABEL = "missing_label"
UNKNOWN_LABEL = "unknown_label"
MISSING_VALUE = "missing_value"
OUT_OF_RANGE = "out_of_range"
UNEXPECTED_CATEGORY = "unexpected_category"
#: Set by dedup: identical features with different labels, quarantined by policy.
CONFLICTING_LABEL = "conflicting_label"
#: Set after dedup (columns.rare_classes: quarantine): too few rows to stratify.
RARE_LABEL = "rare_label"
REASONS = (MALFORMED, INVALID_ENCODING, UNPARSABLE, MISSING_LABEL, UNKNOWN_LABEL, MISSING_VALUE, OUT_OF_RANGE,
           UNEXPECTED_CATEGORY, CONFLICTING_LABEL, RARE_LABEL)
#: Not a row's reason: an input file that could not be read (input.on_unreadable_file: skip).
UNREADABLE_FILE = "unreadable_file"
#: The quarantine's columns and their Spark SQL types, in order.
QUARANTINE_SCHEMA = (("reason", "string"), ("column", "string"), ("message", "string"),
                     ("source_file", "string"), ("raw", "string"), ("record", "bigint"))

# File names in an output directory.
MANIFEST = "manifest.json"
REPORT = "report.html"
#: What report.html shows of the data, as JSON (publish/report_data.py), beside it.
REPORT_DATA = "report_data.json"
STATS = "stats.json"
DATA_DIR = "data"
QUARANTINE_DIR = "quarantine"
#: The optional Spark-transformed copy of the data (normalise.materialise).
NORMALISED_DIR = "normalised"
BLOCKED_DIR = "_blocked"
#: A fold's data directory is `<data>/fold=<k>`.
FOLD_DIR = FOLD + "="
MANIFEST_FORMAT_VERSION = 1
#: manifest.json `status`: a published dataset, or the record of a run that the quality gate
#: stopped (written under `<out>/_blocked/<run_id>/`, never read as a dataset).
PUBLISHED = "published"
BLOCKED = "blocked"


def transform_file(run_id: str) -> str:
    """The name of a run's transform document, beside its manifest (which names it).

    Args:
        run_id: the run's id, as the manifest records it.
    """
    return f"transform-{run_id}.json"
