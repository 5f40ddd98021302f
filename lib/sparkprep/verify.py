"""`sparkprep verify <out>`: prove a finished dataset keeps its contract, independently of the writer.

Everything is re-derived from the written data and compared with manifest.json: row accounting,
each `row_id` in exactly one fold (so every copy sits in its original's fold), every copy has its
original, per-class fold counts within 1 of each other and holdout sizes as planned, and the
manifest's per-fold per-class counts equal to the data. Two aggregations over the data, whatever
its size; violations are reported with up to five example row_ids.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkprep import HOLDOUT_FOLD
from sparkprep.errors import InputError
from sparkprep.io.fs import HadoopFS, qualify
from sparkprep.split import holdout_by_column
from sparkprep.write import MANIFEST, read_table

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
        self.checks.append(name)
        self.violations += [f"{name}: {p}" for p in problems]


def load_output(spark: SparkSession, out: str) -> tuple[dict[str, Any], DataFrame]:
    """The manifest and the data it pins; an output without a manifest is incomplete."""
    out = qualify(out).rstrip("/")
    fs = HadoopFS(spark, out)
    if not fs.exists(f"{out}/{MANIFEST}"):
        raise InputError(f"no {MANIFEST} in {out}: the dataset is incomplete or not a sparkprep output")
    manifest = json.loads(fs.read_text(f"{out}/{MANIFEST}"))
    fmt = manifest["output"]["format"]
    data = read_table(spark, f"{out}/{manifest['output']['data_path']}", fmt, manifest["output"]["delta_version"])
    return manifest, data


def _examples(rows: list[Any]) -> str:
    return ", ".join(str(r[0]) for r in rows[:_EXAMPLES])


def verify_output(spark: SparkSession, out: str) -> Verdict:
    """Run every check on the finished dataset at `out`."""
    return verify_dataset(*load_output(spark, out))


def verify_dataset(manifest: dict[str, Any], data: DataFrame) -> Verdict:
    """Run every check on `data` against `manifest` (prepare calls it before publishing)."""
    verdict = Verdict()
    rows = manifest["rows"]
    verdict.check("row accounting", [] if rows["input"] == rows["rejected"] + rows["duplicates"] + rows["output"]
                  else [f"input {rows['input']} != rejected {rows['rejected']} + duplicates "
                        f"{rows['duplicates']} + output {rows['output']}"])

    per_id = data.groupBy("row_id").agg(
        F.countDistinct("fold").alias("folds"), F.min("replica").alias("first"),
        F.sum(F.when(F.col("replica") == 0, 1).otherwise(0)).alias("originals"))
    split_ids = per_id.where(F.col("folds") > 1).limit(_EXAMPLES).collect()
    orphans = per_id.where(F.col("first") > 0).limit(_EXAMPLES).collect()
    twins = per_id.where(F.col("originals") > 1).limit(_EXAMPLES).collect()
    verdict.check("one fold per row_id (copies in their original's fold)",
                  [f"row_ids in more than one fold: {_examples(split_ids)}"] if split_ids else [])
    verdict.check("every copy has its original", [f"copies without an original: {_examples(orphans)}"] if orphans else [])
    verdict.check("row_id unique among originals", [f"row_ids of several originals: {_examples(twins)}"] if twins else [])

    classes, k = manifest["classes"], manifest["split"]["k"]
    grouped = data.groupBy("fold", "label_index").agg(
        F.count(F.when(F.col("replica") == 0, 1)).alias("originals"),
        F.count(F.when(F.col("replica") > 0, 1)).alias("copies")).collect()
    counts = {(int(r["fold"]), int(r["label_index"])): int(r["originals"]) for r in grouped if r["originals"]}
    copies = {(int(r["fold"]), int(r["label_index"])): int(r["copies"]) for r in grouped if r["copies"]}
    expected = {(int(f), classes.index(c)): n for f, per_class in manifest["counts"]["per_fold_per_class"].items()
                for c, n in per_class.items() if n}
    verdict.check("manifest counts equal the data", [] if counts == expected else
                  [f"per (fold, class) originals in data {sorted(counts.items())} != manifest {sorted(expected.items())}"])
    verdict.check("output rows equal the data",
                  [] if sum(counts.values()) == rows["output"] else [f"data has {sum(counts.values())} originals, manifest says {rows['output']}"])
    split = manifest["split"]
    if split.get("method") == "group-stratified-blocks":
        for column in _group_columns(manifest, data):
            spread = (data.where(F.col(column).isNotNull()).groupBy(column).agg(F.countDistinct("fold").alias("n"))
                      .where(F.col("n") > 1).limit(_EXAMPLES).collect())
            verdict.check(f"groups whole: one fold per {column}",
                          [f"{column} values in several folds: {[r[column] for r in spread]}"] if spread else [])
        verdict.check("stratified as well as groups allow (deviation as reported)",
                      _deviation_problems(counts, classes, k, split.get("group_deviation_rows", 0.0)))
    else:
        verdict.check("stratified: per-class fold counts within 1", _stratification_problems(counts, classes, k))
    if split.get("holdout_column"):
        rule = holdout_by_column(split["holdout_column"], split.get("holdout_values") or [], split.get("holdout_from"))
        held = F.col("fold") == HOLDOUT_FOLD
        # A group with one held-out row is held out whole, so with groups the rule only implies the holdout.
        wrong = (rule & ~held) if split.get("method") == "group-stratified-blocks" else (rule != held)
        misplaced = data.where(wrong).select("row_id").limit(_EXAMPLES).collect()
        verdict.check(f"holdout = rows selected by {split['holdout_column']}",
                      [f"rows on the wrong side of the holdout rule: {_examples(misplaced)}"] if misplaced else [])
    elif split.get("method") != "group-stratified-blocks":  # whole groups make the holdout approximate
        verdict.check("holdout size per class", _holdout_problems(counts, classes, k, split["holdout_fraction"]))
    verdict.check("replicas as planned", _replica_problems(counts, copies, len(classes), k, manifest.get("rebalance") or {}))
    return verdict


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


def _group_columns(manifest: dict[str, Any], data: DataFrame) -> list[str]:
    near = ((manifest.get("config") or {}).get("dedup") or {}).get("near") or {}
    candidates = [manifest["split"].get("group_column"), "dup_cluster" if near.get("keep") == "all" else None]
    return [c for c in candidates if c and c in data.columns]


def _deviation_problems(counts: dict[tuple[int, int], int], classes: list[str], k: int, reported: float) -> list[str]:
    problems = []
    for index, name in enumerate(classes):
        per_fold = [counts.get((f, index), 0) for f in range(k)]
        ideal = sum(per_fold) / k
        worst = max((abs(n - ideal) for n in per_fold), default=0.0)
        if worst > reported + 0.05:
            problems.append(f"class {name!r}: {per_fold} in folds 0..{k - 1} deviate by {worst:.1f} rows, "
                            f"the manifest reports {reported}")
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
