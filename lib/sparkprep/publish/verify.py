"""`sparkprep verify <out>`: prove a finished dataset keeps its contract, independently of the writer.

Everything is re-derived from the written data and compared with manifest.json: row accounting,
each `row_id` in exactly one fold (so every copy sits in its original's fold), every copy has its
original, per-class fold counts within 1 of each other and holdout sizes as planned (with
groups: wherever the manifest says the groups allowed it, and the largest deviation equal to the
one it reports), groups whole, and the manifest's per-fold per-class counts equal to the data; with
`in_train`, only CV originals undersampled and exactly the planned number kept per (fold, class).
Every other number of the manifest that the data determines is re-derived from the same per-(fold,
class) counts (an output whose copies are counted, rebalance.copies: count, counts them from its
`copies` column, so both layouts must give the same numbers): class_counts, rows.replicas,
rows.undersampled, rows.by_fold, counts.replicas_per_fold_per_class, and the class weights and priors of every training set (by
manifest.py's own formulas, which are the definition; what is checked is that the manifest's
numbers are those formulas applied to the written rows). Two aggregations over the data, whatever
its size; violations are reported with up to five example row_ids, and each manifest number that
disagrees is named by its key (class_weights.folds.0, rows.by_fold, ...).

The fitted transform (the file manifest.json names) is checked the same way, with a third
pass: parameters for folds 0..k-1 and final; each set fitted on exactly its training
originals (`fold not in {k, -1}`, `replica == 0`; final: every non-holdout original); means, stds
and min/max recomputed from Spark's rows, per fold with numpy and merged per training set
(publish/training_stats.py), not by normalise/fit.py's reader and sums; quantile parameters checked
by their rank in the data (exact counts below and at most the fitted value): exactly for a
quantile of every value, else within the sampling error of the hash sample a large output's
quantiles are taken over (`normalise.sketch_sample_rows`; plus a KLL sketch's rank error for an
output whose config records `sketch_k`, fitted before quantiles were exact). The manifest's normalisation
statistics (count, mean, std per column, final and per fold) are recomputed in the same pass.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkprep.contract import (
    BLOCKED, COPIES, COPIES_AS_ROWS, COPIES_COUNTED, DUP_CLUSTER, FOLD, HOLDOUT_FOLD, IN_TRAIN, LABEL_INDEX, MANIFEST, REPLICA, ROW_ID,
    UNREADABLE_FILE)
from sparkprep.errors import InputError
from sparkprep.io.fs import HadoopFS, qualify
from sparkprep.publish.manifest import class_priors, class_weights
from sparkprep.publish.training_stats import TrainingStats, Value, measure
from sparkprep.stages.normalise.fit import FoldGroups, sketch_sample_rate
from sparkprep.stages.split import holdout_by_column, training_folds
from sparkprep.transform import TRANSFORM_FORMAT_VERSION, ArrayParams, NumericParams, TransformParams
from sparkprep.io.write import read_table

_EXAMPLES = 5


@dataclass
class Verdict:
    """Checks run and violations found; `ok` when there are none."""

    checks: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def check(self, name: str, problems: list[str]) -> None:
        """Record a check and its problems (none: it passed).

        Args:
            name: what was checked.
            problems: what failed, one sentence each.
        """
        self.checks.append(name)
        self.violations += [f"{name}: {p}" for p in problems]


def load_output(spark: SparkSession, out: str) -> tuple[dict[str, Any], DataFrame]:
    """The manifest and the data it pins; an output without a manifest is incomplete.

    Args:
        spark: the session.
        out: the output directory.
    """
    out = qualify(out).rstrip("/")
    fs = HadoopFS(spark, out)
    if not fs.exists(f"{out}/{MANIFEST}"):
        raise InputError(f"no {MANIFEST} in {out}: the dataset is incomplete or not a sparkprep output")
    manifest = json.loads(fs.read_text(f"{out}/{MANIFEST}"))
    if manifest.get("status") == BLOCKED:
        raise InputError(f"{out}/{MANIFEST} records run {manifest.get('run_id')}, which the quality gate "
                         f"blocked: it published no data (see report.html beside it); verify the output it names, "
                         f"{manifest['output'].get('path')}")
    fmt = manifest["output"]["format"]
    data = read_table(spark, f"{out}/{manifest['output']['data_path']}", fmt, manifest["output"]["delta_version"])
    return manifest, data


def _examples(rows: list[Any]) -> str:
    return ", ".join(str(r[0]) for r in rows[:_EXAMPLES])


def verify_output(spark: SparkSession, out: str) -> Verdict:
    """Run every check on the finished dataset at `out`.

    Args:
        spark: the session.
        out: the output directory.
    """
    manifest, data = load_output(spark, out)
    transform, problems = _read_transform(spark, qualify(out).rstrip("/"), manifest)
    quarantine, missing = _read_quarantine(spark, qualify(out).rstrip("/"), manifest)
    verdict = verify_dataset(manifest, data, transform, quarantine)
    verdict.check("transform: the file the manifest names is present", problems)
    if missing:
        verdict.check(QUARANTINE_COUNTS, missing)
    return verdict


def _read_quarantine(spark: SparkSession, out: str, manifest: dict[str, Any]) -> tuple[DataFrame | None, list[str]]:
    """The quarantine table the manifest pins (None, and why, when it is missing; None without a
    problem for a manifest that names none, such as a hand-made one)."""
    recorded = manifest.get("quarantine")
    if not recorded:
        return None, []
    uri = f"{out}/{recorded['path']}"
    if not HadoopFS(spark, uri).exists(uri):
        return None, [f"{uri} is missing"]
    return read_table(spark, uri, manifest["output"]["format"], recorded.get("delta_version")), []


def _read_transform(spark: SparkSession, out: str, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    name = ((manifest.get("normalisation") or {}).get("transform") or {}).get("path")
    if not name:
        return None, ["the manifest names no transform file (normalisation.transform.path)"]
    uri = f"{out}/{name}"
    fs = HadoopFS(spark, uri)
    if not fs.exists(uri):
        return None, [f"{uri} is missing"]
    try:
        return json.loads(fs.read_text(uri)), []
    except ValueError as exc:
        return None, [f"{uri} is not JSON: {exc}"]


def _in_several_folds() -> Column:
    """Aggregate: the group's rows lie in more than one fold."""
    return F.min(FOLD) != F.max(FOLD)


def verify_dataset(manifest: dict[str, Any], data: DataFrame, transform: dict[str, Any] | None = None,
                   quarantine: DataFrame | None = None) -> Verdict:
    """Run every check on `data` against `manifest`, and on the transform document and the
    quarantine table when given (prepare calls it before publishing).

    Args:
        manifest: the manifest to check (a dict, as written to manifest.json).
        data: the dataset's rows.
        transform: the transform document, if there is one to check.
        quarantine: the quarantine table, if there is one to check.
    """
    verdict = Verdict()
    rows = manifest["rows"]
    verdict.check("row accounting", [] if rows["input"] == rows["rejected"] + rows["duplicates"] + rows["output"]
                  else [f"input {rows['input']} != rejected {rows['rejected']} + duplicates "
                        f"{rows['duplicates']} + output {rows['output']}"])
    _identity_checks(verdict, data)
    counted = _per_fold_and_class(data)
    counts, copies = counted["originals"], counted["copies"]
    _count_checks(verdict, manifest, counts)
    _split_checks(verdict, manifest, data, counts)
    classes, k = manifest["classes"], manifest["split"]["k"]
    verdict.check("replicas as planned", _replica_problems(counts, copies, len(classes), k, manifest.get("rebalance") or {}))
    verdict.check("copies laid out as the manifest records (rebalance.copies)", _layout_problems(manifest, data))
    if IN_TRAIN in data.columns or (manifest.get("rebalance") or {}).get("method") == "undersample":
        verdict.check("undersampling as planned (training portions balanced to the target)",
                      _undersample_problems(counts, counted["skipped"], counted["skipped_copies"], manifest,
                                            IN_TRAIN in data.columns))
    as_read = FoldGroups(counts, copies, {}, undersampled=_summed(counted["skipped"], counted["skipped_copies"]))
    verdict.check(RECORDED_COUNTS, _recorded_count_problems(manifest, as_read))
    verdict.check(CLASS_BALANCE, _class_balance_problems(manifest, as_read))
    plan = _Plan()
    if transform is not None:
        _transform_rules(verdict, plan, manifest, transform)
    _normalisation_rules(plan, manifest)
    _run_plan(verdict, plan, data, [*([TRANSFORM_ROWS, TRANSFORM_MOMENTS, TRANSFORM_QUANTILES] if transform is not None
                                      else []), NORMALISATION_STATS])
    if quarantine is not None:
        verdict.check(QUARANTINE_COUNTS, _quarantine_problems(manifest, quarantine))
    return verdict


def _identity_checks(verdict: Verdict, data: DataFrame) -> None:
    """One fold per row_id, every copy with its original, row_id unique among originals; with
    counted copies, a count on originals only, never null or negative."""
    # One shuffle by row_id answers all of them; examples are fetched only for a check that failed.
    counted = COPIES in data.columns
    miscounted = [(F.count_if(F.col(COPIES).isNull() | (F.col(COPIES) < 0) |
                              ((F.col(REPLICA) > 0) & (F.col(COPIES) != 0))) > 0).alias("miscounted")] if counted else []
    per_id = data.groupBy(ROW_ID).agg(
        _in_several_folds().alias("split"), (F.min(REPLICA) > 0).alias("orphan"),
        (F.count_if(F.col(REPLICA) == 0) > 1).alias("twin"), *miscounted)
    kinds = ("split", "orphan", "twin", *(["miscounted"] if counted else []))
    found = per_id.agg(*[F.count_if(kind).alias(kind) for kind in kinds]).first()

    def examples(kind: str, what: str) -> list[str]:
        return [f"{what}: {_examples(per_id.where(kind).select(ROW_ID).limit(_EXAMPLES).collect())}"] if found[kind] else []

    verdict.check("one fold per row_id (copies in their original's fold)", examples("split", "row_ids in more than one fold"))
    verdict.check("every copy has its original", examples("orphan", "copies without an original"))
    verdict.check("row_id unique among originals", examples("twin", "row_ids of several originals"))
    if counted:
        verdict.check(f"{COPIES} counted on originals only, never null or negative",
                      examples("miscounted", f"row_ids with a null, negative or copy's {COPIES}"))


def _per_fold_and_class(data: DataFrame) -> dict[str, dict[tuple[int, int], int]]:
    """Per (fold, label_index): originals, copies (rows with replica > 0, plus the counts of an
    output whose copies are counted), and those of each that training skips."""
    # A null in_train counts as skipped, as the trainer's filter (== true) skips it.
    skipped = ~F.coalesce(F.col(IN_TRAIN), F.lit(False)) if IN_TRAIN in data.columns else F.lit(False)
    copies = (F.col(REPLICA) > 0).cast("long") + (F.coalesce(F.col(COPIES), F.lit(0)) if COPIES in data.columns else 0)
    grouped = data.groupBy(FOLD, LABEL_INDEX).agg(
        F.count(F.when(F.col(REPLICA) == 0, 1)).alias("originals"),
        F.sum(copies).alias("copies"),
        F.count(F.when(skipped & (F.col(REPLICA) == 0), 1)).alias("skipped"),
        F.sum(F.when(skipped, copies)).alias("skipped_copies")).collect()
    return {column: {(int(r[FOLD]), int(r[LABEL_INDEX])): int(r[column]) for r in grouped if r[column]}
            for column in ("originals", "copies", "skipped", "skipped_copies")}


def _count_checks(verdict: Verdict, manifest: dict[str, Any], counts: dict[tuple[int, int], int]) -> None:
    """The manifest's per (fold, class) and per class counts, and its output rows, against the data."""
    classes = manifest["classes"]
    expected = {(int(f), classes.index(c)): n for f, per_class in manifest["counts"]["per_fold_per_class"].items()
                for c, n in per_class.items() if n}
    by_class = {c: sum(n for (_, i), n in counts.items() if i == classes.index(c)) for c in classes}
    verdict.check("manifest counts equal the data", ([] if counts == expected else
                  [f"counts.per_fold_per_class: per (fold, class) originals in data {sorted(counts.items())} "
                   f"!= manifest {sorted(expected.items())}"]) + (
                  # A manifest written before class_counts existed has none to check.
                  [] if manifest.get("class_counts", by_class) == by_class else
                  [f"class_counts: originals per class in data {by_class} != manifest {manifest.get('class_counts')}"]))
    output = manifest["rows"]["output"]
    verdict.check("output rows equal the data",
                  [] if sum(counts.values()) == output else [f"data has {sum(counts.values())} originals, manifest says {output}"])


def _split_checks(verdict: Verdict, manifest: dict[str, Any], data: DataFrame, counts: dict[tuple[int, int], int]) -> None:
    """Groups whole, stratification and the holdout, as the split's method promises them."""
    classes, split = manifest["classes"], manifest["split"]
    k = split["k"]
    group_split = split.get("method") == "group-stratified-blocks"
    if group_split:
        _group_checks(verdict, manifest, data, counts)
    else:
        verdict.check("stratified: per-class fold counts within 1", _stratification_problems(counts, classes, k))
    if split.get("holdout_column"):
        rule = holdout_by_column(split["holdout_column"], split.get("holdout_values") or [], split.get("holdout_from"))
        held = F.col(FOLD) == HOLDOUT_FOLD
        # A group with one held-out row is held out whole, so with groups the rule only implies the holdout.
        wrong = (rule & ~held) if group_split else (rule != held)
        misplaced = data.where(wrong).select(ROW_ID).limit(_EXAMPLES).collect()
        verdict.check(f"holdout = rows selected by {split['holdout_column']}",
                      [f"rows on the wrong side of the holdout rule: {_examples(misplaced)}"] if misplaced else [])
    elif not group_split:  # whole groups make the holdout exact only where they allow it (checked above)
        verdict.check("holdout size per class", _holdout_problems(counts, classes, k, split["holdout_fraction"]))


def _group_checks(verdict: Verdict, manifest: dict[str, Any], data: DataFrame, counts: dict[tuple[int, int], int]) -> None:
    """A group split: every group in one fold, and the counts as stratified as the plan reported."""
    classes, split = manifest["classes"], manifest["split"]
    k = split["k"]
    for column in _group_columns(manifest, data):
        spread = (data.where(F.col(column).isNotNull()).groupBy(column)
                  .agg(_in_several_folds().alias("split")).where("split").limit(_EXAMPLES).collect())
        verdict.check(f"groups whole: one fold per {column}",
                      [f"{column} values in several folds: {[r[column] for r in spread]}"] if spread else [])
    verdict.check("stratified as well as groups allow (deviation as reported)",
                  _deviation_problems(counts, classes, k, split.get("group_deviation_rows", 0.0)))
    # Where every group fit under its targets, single rows filled them exactly: the row split's counts.
    reachable = bool(split.get("group_within_one_reachable"))
    verdict.check("within 1 where the groups allow it (group_within_one_reachable)", [] if not reachable else
                  _stratification_problems(counts, classes, k) + ([] if split.get("holdout_column") else
                  _holdout_problems(counts, classes, k, split["holdout_fraction"])))


RECORDED_COUNTS = "manifest replica, undersampling and per-fold row counts equal the data"
CLASS_BALANCE = "class weights and priors re-derived from the data (final and per fold)"
NORMALISATION_STATS = "normalisation statistics (mean, std, count) recomputed from the data (rel 1e-6)"
QUARANTINE_COUNTS = "rejection counts equal the quarantine"


def _summed(a: dict[tuple[int, int], int], b: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
    return {key: a.get(key, 0) + b.get(key, 0) for key in a.keys() | b.keys()}


def _per_fold_class(per: dict[tuple[int, int], int], folds: list[int], classes: list[str]) -> dict[str, dict[str, int]]:
    """The manifest's fold -> class -> count shape of counts keyed by (fold, label_index)."""
    return {str(f): {c: per.get((f, i), 0) for i, c in enumerate(classes)} for f in folds}


def _recorded_count_problems(manifest: dict[str, Any], groups: FoldGroups) -> list[str]:
    """rows.replicas, rows.undersampled, rows.by_fold and counts.replicas_per_fold_per_class, each
    against the data (a key an older manifest lacks is skipped)."""
    k, classes = manifest["split"]["k"], manifest["classes"]
    rows, counts = manifest["rows"], manifest.get("counts") or {}
    derived = {
        "rows.replicas": (rows.get("replicas"), sum(groups.copies.values())),
        "rows.undersampled": (rows.get("undersampled"), sum(groups.undersampled.values())),
        "rows.by_fold": (rows.get("by_fold"), {str(f): sum(n for (fo, _), n in groups.rows.items() if fo == f)
                                               for f in [HOLDOUT_FOLD, *range(k)]}),
        "counts.replicas_per_fold_per_class": (counts.get("replicas_per_fold_per_class"),
                                               _per_fold_class(groups.copies, list(range(k)), classes)),
    }
    return [f"{key}: manifest {recorded}, the data gives {data}" for key, (recorded, data) in derived.items()
            if recorded is not None and recorded != data]


def _quarantine_problems(manifest: dict[str, Any], quarantine: DataFrame) -> list[str]:
    """rejections.by_reason and .by_column, rows.rejected and quarantine.rows against the quarantine
    table, counted per (reason, column); an unreadable file's entry counts in quarantine.rows only."""
    entries = {(r["reason"], r["column"]): int(r["count"])
               for r in quarantine.groupBy("reason", "column").count().collect()}
    rejected = {key: n for key, n in entries.items() if key[0] != UNREADABLE_FILE}
    by_reason: dict[str, int] = {}
    for (reason, _), n in rejected.items():
        by_reason[reason] = by_reason.get(reason, 0) + n
    recorded = manifest.get("rejections") or {}
    derived = {
        "rejections.by_reason": (recorded.get("by_reason"), by_reason),
        "rejections.by_column": (None if recorded.get("by_column") is None else
                                 {(e["reason"], e["column"]): e["rows"] for e in recorded["by_column"]}, rejected),
        "rows.rejected": (manifest["rows"].get("rejected"), sum(rejected.values())),
        "quarantine.rows": ((manifest.get("quarantine") or {}).get("rows"), sum(entries.values())),
    }
    return [f"{key}: manifest {want}, the quarantine gives {got}" for key, (want, got) in derived.items()
            if want is not None and want != got]


def _class_balance_problems(manifest: dict[str, Any], groups: FoldGroups) -> list[str]:
    """class_weights and class_priors of every training set, by manifest.py's own formulas over the
    rows a trainer reads there (originals and copies, minus undersampled originals)."""
    k, classes = manifest["split"]["k"], manifest["classes"]
    problems = []
    for key, formula in (("class_weights", class_weights), ("class_priors", class_priors)):
        recorded = manifest.get(key)
        if recorded is None:
            continue
        sets = {"final": (recorded.get("final"), None),
                **{f"folds.{f}": ((recorded.get("folds") or {}).get(str(f)), f) for f in range(k)}}
        for name, (values, fold) in sets.items():
            want = formula(groups.class_counts(training_folds(k, fold), len(classes), as_read=True))
            if not (isinstance(values, list) and len(values) == len(want)
                    and all(math.isclose(v, w, rel_tol=1e-9, abs_tol=1e-12) for v, w in zip(values, want))):
                problems.append(f"{key}.{name}: manifest {values}, the data gives {want}")
    return problems



def _layout_problems(manifest: dict[str, Any], data: DataFrame) -> list[str]:
    """Counted copies and the `copies` column go together: a loader that trusted a manifest without
    the column would train without the copies, one without the record would ignore the column."""
    layout = (manifest.get("rebalance") or {}).get("copies", COPIES_AS_ROWS)
    if (layout == COPIES_COUNTED) == (COPIES in data.columns):
        return []
    has = "has" if COPIES in data.columns else "has no"
    return [f"the data {has} a {COPIES} column, but the manifest records rebalance.copies {layout}"]


def _replica_problems(counts: dict[tuple[int, int], int], copies: dict[tuple[int, int], int],
                      classes: int, k: int, rebalance: dict[str, Any]) -> list[str]:
    """Each fold filled to round(target x its majority) per class; no copies in the holdout."""
    problems = [f"{n} copies in the holdout (class {c})" for (f, c), n in copies.items() if f == HOLDOUT_FOLD]
    for fold in range(k):
        originals = [counts.get((fold, c), 0) for c in range(classes)]
        if rebalance.get("method") == "oversample":
            goal = round(rebalance["target"] * max(originals))
            wanted = [max(n, goal) - n if n else 0 for n in originals]
        else:
            wanted = [0] * classes
        got = [copies.get((fold, c), 0) for c in range(classes)]
        if got != wanted:
            problems.append(f"fold {fold}: copies per class {got}, expected {wanted} (originals {originals})")
    return problems


def _undersample_problems(counts: dict[tuple[int, int], int], skipped: dict[tuple[int, int], int],
                          skipped_copies: dict[tuple[int, int], int], manifest: dict[str, Any],
                          has_column: bool) -> list[str]:
    """Only CV originals are skipped; per fold j and class c the kept originals number exactly
    T_jc = min(n_jc, round(m_j / target)), m_j the fold's smallest nonzero class count (re-derived
    here, not imported from rebalance). Each class of fold j then keeps m_j to round(m_j / target)
    rows, every class m_j with target 1, so every union of folds, every training portion, is balanced
    to the target exactly; the manifest's undersampled counts must equal the data's."""
    if not has_column:
        return [f"the data has no {IN_TRAIN} column, but the manifest says rebalance.method undersample"]
    classes, k, rebalance = manifest["classes"], manifest["split"]["k"], manifest.get("rebalance") or {}
    problems = [f"{n} copies (replica > 0) with {IN_TRAIN} false in fold {f} (class {c}): only originals "
                f"are undersampled" for (f, c), n in sorted(skipped_copies.items())]
    problems += [f"{n} holdout rows with {IN_TRAIN} false (class {c}): the holdout is never resampled"
                 for (f, c), n in sorted(skipped.items()) if f == HOLDOUT_FOLD]
    for fold in range(k):
        originals = [counts.get((fold, c), 0) for c in range(len(classes))]
        kept = [n - skipped.get((fold, c), 0) for c, n in enumerate(originals)]
        if rebalance.get("method") == "undersample":
            cap = round(min((n for n in originals if n), default=0) / rebalance["target"])
            wanted = [min(n, cap) for n in originals]
        else:
            wanted = originals
        if kept != wanted:
            problems.append(f"fold {fold}: originals in training per class {kept}, expected {wanted} "
                            f"(originals {originals})")
    recorded = (manifest.get("counts") or {}).get("undersampled_per_fold_per_class")
    if recorded is not None:
        written = {(int(f), classes.index(c)): n for f, per in recorded.items() for c, n in per.items() if n}
        if written != {key: n for key, n in skipped.items() if key[0] != HOLDOUT_FOLD}:
            problems.append(f"manifest undersampled_per_fold_per_class {sorted(written.items())} != data "
                            f"{sorted(skipped.items())}")
    return problems


def _group_columns(manifest: dict[str, Any], data: DataFrame) -> list[str]:
    near = ((manifest.get("config") or {}).get("dedup") or {}).get("near") or {}
    candidates = [manifest["split"].get("group_column"), DUP_CLUSTER if near.get("keep") == "all" else None]
    return [c for c in candidates if c and c in data.columns]


def _deviation_problems(counts: dict[tuple[int, int], int], classes: list[str], k: int, reported: float) -> list[str]:
    """The largest |rows of a class in a fold - its CV rows / k| equals the reported one (rounded to 0.1)."""
    problems, largest = [], 0.0
    for index, name in enumerate(classes):
        per_fold = [counts.get((f, index), 0) for f in range(k)]
        ideal = sum(per_fold) / k
        worst = max((abs(n - ideal) for n in per_fold), default=0.0)
        largest = max(largest, worst)
        if worst > reported + 0.05:
            problems.append(f"class {name!r}: {per_fold} in folds 0..{k - 1} deviate by {worst:.1f} rows, "
                            f"the manifest reports {reported}")
    if largest < reported - 0.05:
        problems.append(f"the data deviate by at most {largest:.1f} rows, the manifest reports {reported}")
    return problems


def _stratification_problems(counts: dict[tuple[int, int], int], classes: list[str], k: int) -> list[str]:
    problems = []
    for index, name in enumerate(classes):
        per_fold = [counts.get((f, index), 0) for f in range(k)]
        if max(per_fold) - min(per_fold) > 1:
            problems.append(f"class {name!r} has {per_fold} rows in folds 0..{k - 1}")
    return problems


def _holdout_problems(counts: dict[tuple[int, int], int], classes: list[str], k: int, fraction: float) -> list[str]:
    problems = []
    for index, name in enumerate(classes):
        total = sum(counts.get((f, index), 0) for f in [HOLDOUT_FOLD, *range(k)])
        # Re-derived here on purpose, not imported from split: the verifier must not share the
        # writer's code path.
        planned = int(math.floor(fraction * total + 0.5))
        if counts.get((HOLDOUT_FOLD, index), 0) != planned:
            problems.append(f"class {name!r}: {counts.get((HOLDOUT_FOLD, index), 0)} holdout rows, planned {planned}")
    return problems

TRANSFORM_SETS = "transform: parameters of folds 0..k-1 and final"
TRANSFORM_ROWS = "transform: fitted on the training originals (rows, present values)"
TRANSFORM_MOMENTS = "transform: mean, std, min, max recomputed from the data (rel 1e-6)"
TRANSFORM_QUANTILES = "transform: quantiles within the KLL sketch's rank error"
_REL = 1e-6
#: An exact quantile's rank bounds are counts / n, compared with a rank as floats: a unit in the
#: last place either way is no error of the fit.
_RANK_ROUNDING = 1e-12


def _kll_rank_error(k: int) -> float:
    """DataSketches' bound on a KLL sketch's normalised rank error, two-sided at 99% confidence
    (about 1.65% at k=200); a merge of sketches keeps the bound of one sketch. Outputs of sparkprep
    before its quantiles were exact on their sample record `normalise.sketch_k` and get it."""
    return 2.446 / k ** 0.9433


@dataclass(frozen=True)
class _Tolerance:
    """How far a fitted quantile's rank may be from its target: 0 for a quantile of every value,
    and when the fit took a column's quantiles over a hash sample (more than
    normalise.sketch_sample_rows present values in its smallest training set), the sample's error
    (Dvoretzky-Kiefer-Wolfowitz at 99%: sqrt(ln(2/0.01) / (2 n)) for n sampled values); plus a KLL
    sketch's bound for an output whose config records `sketch_k` (fitted with sketches)."""

    kll: float
    sample: int | None
    #: column -> its value and the training sets its quantiles were fitted on (the smallest
    #: decides the sample's rate, as in the fit)
    present: dict[str, list[tuple[Value, int | None]]] = field(default_factory=dict)

    def at(self, stats: TrainingStats, column: str, present: int) -> float:
        rate = sketch_sample_rate(min(stats.summary(v, fold).count for v, fold in self.present[column]), self.sample)
        return self.kll + (math.sqrt(math.log(200) / (2 * rate * present)) if rate < 1 else 0.0)


@dataclass
class _Plan:
    """The values (and thresholds) to measure in one pass over the training originals, and what
    each result must satisfy."""

    wanted: dict[Value, set[float]] = field(default_factory=dict)
    rules: list[tuple[str, Callable[[TrainingStats], str | None]]] = field(default_factory=list)

    def value(self, value: Value, *thresholds: float) -> Value:
        self.wanted.setdefault(value, set()).update(thresholds)
        return value

    def rule(self, check: str, test: Callable[[TrainingStats], str | None]) -> None:
        self.rules.append((check, test))


def _differs(where: str, got: float, want: float | None, spread: float) -> str | None:
    """A problem when `got` is not `want` within 1e-6 relative to the larger of |want| and `spread`
    (a centre near 0 is compared on the scale of its column's spread)."""
    if want is not None and math.isclose(got, want, rel_tol=_REL, abs_tol=_REL * abs(spread)):
        return None
    return f"{where} is {got!r}, the data gives {want!r}"


def _joined(problems: list[str | None]) -> str | None:
    return "; ".join(q for q in problems if q) or None


def _noise_free(std: float, mean: float) -> float:
    """Spark's stddev_pop leaves rounding noise on a constant column where the fit's sums give 0."""
    return std if std > 1e-12 * max(1.0, abs(mean)) else 0.0


def _unit(scale: float) -> float:
    """A zero scale is 1 in the transform (scikit-learn's rule for a constant column)."""
    return scale if scale > 0 else 1.0


def _transform_rules(verdict: Verdict, plan: _Plan, manifest: dict[str, Any], document: dict[str, Any]) -> None:
    """Check the transform document's shape now; add what its parameters must satisfy to `plan`."""
    k = manifest["split"]["k"]
    wanted = ["final", *map(str, range(k))]
    sets = {"final": document.get("final"), **(document.get("folds") or {})}
    version = document.get("format_version")
    parsed, malformed = {}, []
    for name in (n for n in wanted if sets.get(n)):
        try:
            parsed[name] = TransformParams.from_dict(sets[name])
        except (KeyError, TypeError, ValueError) as exc:
            malformed.append(f"{_set_label(name)}: malformed parameters ({type(exc).__name__}: {exc})")
    verdict.check(TRANSFORM_SETS, ([] if version == TRANSFORM_FORMAT_VERSION else [f"format_version {version!r}"])
                  + [f"no parameters for {_set_label(n)}" for n in wanted if not sets.get(n)]
                  + [f"parameters for fold {n}, which the data does not have" for n in sets if n not in wanted]
                  + malformed)
    normalise = (manifest.get("config") or {}).get("normalise") or {}
    # Manifests from before sampling have no sketch_sample_rows: their sketches saw every row.
    kll = _kll_rank_error(int(normalise["sketch_k"])) if "sketch_k" in normalise else 0.0
    tolerance = _Tolerance(kll, normalise.get("sketch_sample_rows"))
    for name, params in parsed.items():
        fold = None if name == "final" else int(name)
        _rows_rule(plan, _set_label(name), fold, params.rows)
        for p in params.numeric:
            _numeric_rules(plan, f"{_set_label(name)} {p.column}", fold, p, _configured(normalise, p.column), tolerance)
        for a in params.arrays:
            _array_rules(plan, f"{_set_label(name)} {a.column}", fold, a)
    # Categorical vocabularies are not re-derived here: that takes a group per distinct value (the
    # second aggregation of normalise/fit.py), and their counts are not in transform.json to compare.


def _configured(normalise: dict[str, Any], column: str) -> dict[str, Any]:
    """The manifest config's transform of a numeric column: its own entry replaces the default."""
    return (normalise.get("numeric_columns") or {}).get(column) or normalise.get("numeric") or {}


def _training_originals() -> Column:
    """Every fold's training originals: the originals outside the holdout (fold f's training set is
    those of the other folds)."""
    return (F.col(REPLICA) == 0) & (F.col(FOLD) != HOLDOUT_FOLD)


def _normalisation_rules(plan: _Plan, manifest: dict[str, Any]) -> None:
    """normalisation.final and .folds.<k>: per numeric column the count, mean and population std
    of its present training values (on the log scale with log1p), recomputed from Spark's rows
    (publish/training_stats.py), not by normalise/fit.py."""
    recorded = manifest.get("normalisation") or {}
    normalise = (manifest.get("config") or {}).get("normalise") or {}
    sets = {"final": (recorded.get("final"), None),
            **{f"folds.{f}": (stats, int(f)) for f, stats in (recorded.get("folds") or {}).items()}}
    for name, (stats, fold) in sets.items():
        for column, moments in (stats or {}).items():
            value = plan.value(Value(column, bool(_configured(normalise, column).get("log1p"))))
            _moments_rule(plan, f"normalisation.{name}.{column}", value, fold, moments)


def _moments_rule(plan: _Plan, where: str, value: Value, fold: int | None, recorded: dict[str, Any]) -> None:
    """`recorded` (count, mean, std) against `value` in fold `fold`'s training set; no values give
    mean 0 and a zero std is 1 (Moments.to_dict, scikit-learn's rule)."""

    def test(s: TrainingStats) -> str | None:
        m = s.summary(value, fold)
        want_mean = m.mean if m.count else 0.0
        sd = _noise_free(m.std, want_mean) if m.count else 0.0
        count = recorded.get("count")
        return _joined([None if count == m.count else f"{where}.count is {count!r}, the data gives {m.count}",
                        _differs(f"{where}.mean", float(recorded.get("mean", math.nan)), want_mean, sd),
                        _differs(f"{where}.std", float(recorded.get("std", math.nan)), _unit(sd), _unit(sd))])

    plan.rule(NORMALISATION_STATS, test)


def _run_plan(verdict: Verdict, plan: _Plan, data: DataFrame, checks: list[str]) -> None:
    """Every value of `plan` measured in one pass over the training originals (the filter spares
    the copies and the holdout, more than half the rows when oversampling); then each of `checks`
    with the problems its rules found."""
    found: dict[str, list[str]] = {check: [] for check in checks}
    if plan.rules:
        stats = measure(data.where(_training_originals()), plan.wanted)
        for check, test in plan.rules:
            problem = test(stats)
            if problem:
                found[check].append(problem)
    for check, problems in found.items():
        verdict.check(check, problems)


def _set_label(name: str) -> str:
    return "final" if name == "final" else f"fold {name}"


def _rows_rule(plan: _Plan, where: str, fold: int | None, fitted: int | None) -> None:
    plan.rule(TRANSFORM_ROWS, lambda s: None if fitted == s.training_rows(fold) else
              f"{where}: fitted on {fitted} rows, the data has {s.training_rows(fold)} training originals")


def _numeric_rules(plan: _Plan, where: str, fold: int | None, p: NumericParams, configured: dict[str, Any],
                   tolerance: _Tolerance) -> None:
    value = plan.value(Value(p.column, p.log1p))
    tolerance.present.setdefault(p.column, []).append((value, fold))
    plan.rule(TRANSFORM_ROWS, lambda s: None if p.count == s.summary(value, fold).count else
              f"{where}: fitted on {p.count} present values, the data has {s.summary(value, fold).count}")
    if not p.count:
        return
    clipped = not math.isinf(p.lower)
    if p.method == "standard" or configured.get("impute") == "mean":

        def moments(s: TrainingStats) -> str | None:
            m = s.summary(value, fold)
            if not m.count:  # the rows rule names it
                return None
            sd = _noise_free(m.std, m.mean)
            problems = [_differs(f"{where} center", p.center, m.mean, sd),
                        _differs(f"{where} scale", p.scale, _unit(sd), _unit(sd))] if p.method == "standard" else []
            if configured.get("impute") == "mean":
                problems.append(_differs(f"{where} fill (mean)", p.fill, m.mean, sd))
            return _joined(problems)

        plan.rule(TRANSFORM_MOMENTS, moments)
    if p.method == "minmax":
        # Clipped, the range is the clip quantiles (their ranks are checked below), else min/max.

        def extent(s: TrainingStats) -> str | None:
            m = s.summary(value, fold)
            if not m.count:  # the rows rule names it
                return None
            lo, hi = (p.lower, p.upper) if clipped else (m.min, m.max)
            problems = [_differs(f"{where} center (min)", p.center, lo, hi - lo),
                        _differs(f"{where} scale (range)", p.scale, _unit(hi - lo), _unit(hi - lo))]
            return _joined(problems)

        plan.rule(TRANSFORM_MOMENTS, extent)
    ranks = []
    if p.method == "robust":
        # Only the median: the scale is q75 - q25, and transform.json keeps the difference, not
        # the two quantiles whose ranks could be checked.
        ranks.append(("center (median)", p.center, 0.5))
    if configured.get("impute") == "median":
        ranks.append(("fill (median)", p.fill, 0.5))
    if configured.get("clip") and clipped:
        ranks += [("lower clip", p.lower, configured["clip"][0]), ("upper clip", p.upper, configured["clip"][1])]
    for what, fitted, rank in ranks:
        _rank_rule(plan, f"{where} {what}", plan.value(value, fitted), fold, fitted, rank, tolerance)


def _rank_rule(plan: _Plan, where: str, value: Value, fold: int | None, fitted: float, rank: float,
               tolerance: _Tolerance) -> None:
    """`fitted` is the `rank` quantile of `value` in fold `fold`'s training set within ±eps: some
    rank in [#(v < fitted), #(v <= fitted)] / n (ties span a range) lies within eps of it."""

    def test(s: TrainingStats) -> str | None:
        m = s.summary(value, fold)
        if not m.count:  # the rows rule names it
            return None
        eps = tolerance.at(s, value.column, m.count) + _RANK_ROUNDING
        low, high = m.below(fitted) / m.count, m.at_most(fitted) / m.count
        if low - eps <= rank <= high + eps:
            return None
        return f"{where} {fitted!r} has rank [{low:.4f}, {high:.4f}] in the data, expected {rank} ± {eps:.4f}"

    plan.rule(TRANSFORM_QUANTILES, test)


def _array_rules(plan: _Plan, where: str, fold: int | None, p: ArrayParams) -> None:
    if not p.per_element or p.method not in ("standard", "minmax"):
        # Pooled over positions (per_element: false), one plain aggregate would need the elements
        # exploded into rows, a pass of its own; the per-element arithmetic is the same.
        return
    for i, (center, scale) in enumerate(zip(p.center, p.scale)):
        value = plan.value(Value(p.column, element=i))
        _element_rule(plan, f"{where}[{i}]", value, fold, p.method, center, scale)


def _element_rule(plan: _Plan, where: str, value: Value, fold: int | None, method: str, center: float,
                  scale: float) -> None:
    """One array position: (mean, std) or (min, max - min); no present value gives (0, 1)."""

    def test(s: TrainingStats) -> str | None:
        m = s.summary(value, fold)
        a, b = (m.mean, m.std) if method == "standard" else (m.min, m.max)
        a, b = a or 0.0, b or 0.0
        want_center, spread = (a, _noise_free(b, a)) if method == "standard" else (a, b - a)
        problems = [_differs(f"{where} center", center, want_center, spread),
                    _differs(f"{where} scale", scale, _unit(spread), _unit(spread))]
        return _joined(problems)

    plan.rule(TRANSFORM_MOMENTS, test)
