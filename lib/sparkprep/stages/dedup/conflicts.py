"""Label conflicts: rows whose features are identical and whose labels differ.

Rows are grouped by a 128-bit hash of their features (`add_feature_hash`, computed once when the
rows are marked, so that the split can keep a conflicting group in one fold). The policy
(dedup.conflicts) decides which of a group's rows are quarantined as conflicting_label.

A conflict needs two rows with the same features, and most rows' features are their own: as
exact dedup does (exact.py), `apply` first finds the feature hashes that occur more than once (one
narrow aggregation of a 64-bit column), and only the rows that carry one are grouped. Grouping
every row cost two shuffles and two sorts of all of them (a collected list keeps the second
aggregation off Spark's hash path): 351 s of the dedup stage at 20 GB of unique features.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkprep.config import Config
from sparkprep.contract import CONFLICT, CONFLICTING_LABEL, FEATURE_HASH, MESSAGE, REASON, REASON_COLUMN, ROW_ID
from sparkprep.io.write import counted
from sparkprep.stages.context import Context
from sparkprep.stages import probe_filter
from sparkprep.stages.dedup.exact import COUNTED_PREFIX, MERGED, data_columns

#: Up to this many conflicting feature groups (about 60 bytes each) are broadcast to the rows.
_BROADCAST_CONFLICT_GROUPS = 500_000
_FEATURES = (FEATURE_HASH, "_sp_features2")
#: Per row: 1 if it is in a conflicting group (manifest: duplicates.label_conflicts.rows).
CONFLICTING = COUNTED_PREFIX + "conflicting_rows"
_MAYBE_CONFLICTING = "_sp_maybe_conflicting"


def apply(rows: DataFrame, config: Config, ctx: Context) -> DataFrame:
    """The dedup rule: mark the conflicting rows, and the policy's rejections, among `rows`.

    Args:
        rows: rows through the previous dedup rules, with `add_feature_hash`'s columns.
        config: the run's config (dedup.conflicts, columns.label).
        ctx: the run's scratch space, for the conflicting groups.
    """
    label = config.columns.label  # type: ignore[union-attr]
    materialise = ctx.under("dedup")
    repeated, n_repeated = probe_filter.repeated(rows, FEATURE_HASH, materialise, "conflicts-repeated")
    if not n_repeated:  # no two rows share their features: nothing to group, no conflict to write
        return mark_label_conflicts(rows, label, config.dedup.conflicts,
                                    groups=F.broadcast(conflicting_groups(rows.where(F.lit(False)), label)))
    candidates = probe_filter.mark_members(rows, FEATURE_HASH, repeated, n_repeated, materialise, _MAYBE_CONFLICTING,
                                           "conflicts-filter").where(F.col(_MAYBE_CONFLICTING)).drop(_MAYBE_CONFLICTING)
    groups, n_groups = counted(materialise, conflicting_groups(candidates, label), "conflicts")
    # Few conflicting groups (the usual case) are broadcast, so marking the rows shuffles nothing.
    small = n_groups <= _BROADCAST_CONFLICT_GROUPS
    return mark_label_conflicts(rows, label, config.dedup.conflicts, groups=F.broadcast(groups) if small else groups)


def add_feature_hash(df: DataFrame, label: str, features: list[str] | None = None) -> DataFrame:
    """128-bit hash of the feature columns (default: every data column but the label).

    Args:
        df: rows with `row_id`.
        label: the label column.
        features: the feature columns (default: every data column but the label).
    """
    features = [F.col(c) for c in (features or [c for c in data_columns(df) if c not in (label, ROW_ID)])]
    return df.withColumns({_FEATURES[0]: F.xxhash64(F.lit("sparkprep/features/1"), *features),
                           _FEATURES[1]: F.xxhash64(F.lit("sparkprep/features/2"), *features)})


def conflicting_groups(df: DataFrame, label: str, features: list[str] | None = None) -> DataFrame:
    """Feature groups (by the 128-bit feature hash) that carry more than one label, with the
    label counts that decide a majority: small (one row per conflicting group). Two aggregations
    of narrow columns, hash-based (fixed-width buffers) except the second, which sees one row
    per (group, label).

    Args:
        df: rows with the merged-row counts of `add_row_id`.
        label: the label column.
        features: the feature columns, where the rows have no feature hash yet.
    """
    hashed = df if _FEATURES[0] in df.columns else add_feature_hash(df, label, features)
    per_label = hashed.groupBy(*_FEATURES, label).agg(F.sum(MERGED).alias("_sp_label_rows"))
    per_group = per_label.groupBy(*_FEATURES).agg(
        F.count(F.lit(1)).alias("_sp_labels"),
        F.max_by(F.col(label), F.struct("_sp_label_rows", F.col(label))).alias("_sp_majority"),
        F.max("_sp_label_rows").alias("_sp_top"),
        # The runner-up's count decides whether the top label is a majority or a tie; labels per
        # feature group are few (a group is one content), so this list stays tiny.
        F.get(F.sort_array(F.collect_list("_sp_label_rows"), asc=False), 1).alias("_sp_second"))
    return per_group.where(F.col("_sp_labels") > 1)


def mark_label_conflicts(df: DataFrame, label: str, policy: str, features: list[str] | None = None,
                         groups: DataFrame | None = None) -> DataFrame:
    """Flag rows whose `features` (default: all data columns but the label; identifiers such as
    an id column are not features, so pass the feature roles) equal another row's with a
    different label.

    Adds `_sp_conflict` (true for every row of a conflicting feature group), its counter
    (`CONFLICTING`, which a later collapse sums) and the quarantine
    columns (`_sp_reason` ...) for the rows the policy rejects: `drop_all` rejects the whole group,
    `keep_majority` all but the label with the most input rows (a tie has no majority: all go),
    `keep_all` none. `groups`: `conflicting_groups` of the same rows, computed beforehand (the
    pipeline materialises it and broadcasts it when small, so the rows are not shuffled).

    Args:
        df: rows with the merged-row counts of `add_row_id`.
        label: the label column.
        policy: dedup.conflicts: keep_all, drop_all or keep_majority.
        features: the feature columns, where the rows have no feature hash yet.
        groups: `conflicting_groups` of the same rows, computed beforehand.
    """
    hashed = df if _FEATURES[0] in df.columns else add_feature_hash(df, label, features)
    conflicting = conflicting_groups(hashed, label) if groups is None else groups
    joined = hashed.join(conflicting, list(_FEATURES), "left")
    conflict = F.col("_sp_labels").isNotNull()
    has_majority = F.coalesce(F.col("_sp_top") > F.col("_sp_second"), F.lit(False))
    rejected = {"keep_all": F.lit(False),
                "drop_all": conflict,
                "keep_majority": conflict & ~(has_majority & (F.col(label) == F.col("_sp_majority")))}[policy]
    message = F.format_string(f"features identical to rows with %d labels; policy {policy}", F.col("_sp_labels"))
    return joined.withColumns({
        CONFLICT: conflict,
        CONFLICTING: conflict.cast("long"),
        REASON: F.when(rejected, F.lit(CONFLICTING_LABEL)),
        REASON_COLUMN: F.when(rejected, F.lit(label)),
        MESSAGE: F.when(rejected, message),
    }).drop("_sp_labels", "_sp_majority", "_sp_top", "_sp_second")
