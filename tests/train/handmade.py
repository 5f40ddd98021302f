"""Tiny sparkprep outputs written by hand with pyarrow, per the data contract (DESIGN.md)."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sparkprep.transform import ArrayParams, NumericParams, TransformParams, transform_document

#: The transform file a hand-made manifest names (prepare names it transform-<run_id>.json).
TRANSFORM = "transform.json"

# Large ids: a reader that round-trips int64 through float64 would change them.
BASE = 2**60

# (fold, row_id offset, replica, label_index): replicas are copies of an original of the same fold.
ROWS = [
    (-1, 1, 0, 0), (-1, 2, 0, 1), (-1, 3, 0, 0), (-1, 3, 1, 0),
    (0, 10, 0, 0), (0, 11, 0, 1), (0, 12, 0, 0), (0, 13, 0, 1), (0, 10, 1, 0), (0, 11, 1, 1),
    (1, 20, 0, 1), (1, 21, 0, 0), (1, 22, 0, 1), (1, 23, 0, 0), (1, 20, 1, 1), (1, 20, 2, 1),
]
SCHEMA = pa.schema([("row_id", pa.int64()), ("fold", pa.int32()), ("replica", pa.int32()),
                    ("label_index", pa.int32()), ("label", pa.string()), ("num_0", pa.float64()),
                    ("num_1", pa.float64()), ("emb", pa.list_(pa.float64()))])


K = 3  # folds of generated_rows


def generated_rows(n: int = 240, seed: int = 5) -> list[tuple[int, int, int, int]]:
    """n originals over folds -1..K-1, a third of them with 1 or 2 copies in their fold."""
    rng = random.Random(seed)
    rows = []
    for r in range(n):
        fold, label = rng.randint(-1, K - 1), rng.randint(0, 1)
        rows += [(fold, r, rep, label) for rep in range(1 + (rng.randint(1, 2) if r % 3 == 0 else 0))]
    rng.shuffle(rows)  # copies far from their originals, in other row groups
    return rows


def table_of(rows: list[tuple[int, int, int, int]], base: int = BASE) -> pa.Table:
    """num_0 is null on every row_id divisible by 5, so nulls reach the reader."""
    return pa.table({
        "row_id": [base + r for _, r, _, _ in rows],
        "fold": [f for f, _, _, _ in rows],
        "replica": [rep for _, _, rep, _ in rows],
        "label_index": [y for _, _, _, y in rows],
        "label": [f"class_{y}" for _, _, _, y in rows],
        "num_0": [None if r % 5 == 0 else float(r) for _, r, _, _ in rows],
        "num_1": [float(-r) for _, r, _, _ in rows],
        "emb": [[float(r), float(rep)] for _, r, rep, _ in rows],
    }, schema=SCHEMA)


#: How a hand-made output stores its oversampled copies (rebalance.copies): as rows, or counted.
LAYOUTS = ("rows", "count")


def counted_copies(rows: list[tuple[int, int, int, int]]) -> pa.Table:
    """The originals of `rows`, each with its number of copies in `copies` (rebalance.copies: count)
    instead of the copy rows; those with copies last, so that row groups hold none, some or only
    rows with copies."""
    copies = Counter(r for _, r, rep, _ in rows if rep)
    originals = sorted((row for row in rows if row[2] == 0), key=lambda row: copies[row[1]] > 0)
    return table_of(originals).append_column("copies", pa.array([copies[r] for _, r, _, _ in originals], pa.int32()))


def write_generated_output(out: Path, layout: str, **manifest: Any) -> None:
    """generated_rows() with k=3, 2 or 3 files per fold and row groups of 7 rows (not a divisor of
    anything), the copies written as `layout` says (LAYOUTS); `manifest` overrides manifest_for's."""
    rows = generated_rows()
    table = table_of(rows) if layout == "rows" else counted_copies(rows)
    write_parquet_output(out, table, files={-1: 2, 0: 3, 1: 2, 2: 3}, row_group_size=7)
    rebalance = {"method": "oversample", "target": 1.0, "copies": layout}
    schema = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    write_manifest(out, manifest_for("parquet", k=K, rebalance=rebalance, schema=schema, **manifest))


def manifest_for(fmt: str, k: int = 2, delta_version: int | None = None, **overrides: Any) -> dict[str, Any]:
    manifest = {
        "format_version": 1,
        "seed": 42,
        "output": {"format": fmt, "data_path": "data", "partition_by": ["fold"],
                   "delta_version": delta_version},
        "columns": {"label": "label", "numeric": ["num_0", "num_1"], "categorical": [],
                    "array": ["emb"], "text": [], "other": [],
                    "reserved": ["row_id", "fold", "replica", "label_index"]},
        "schema": [{"name": f.name, "type": str(f.type)} for f in SCHEMA],
        "classes": ["class_0", "class_1"],
        "split": {"k": k, "holdout_fraction": 0.25, "seed": 42, "method": "hand-written"},
        "class_priors": {"final": [0.5, 0.5], "folds": {str(f): [0.5, 0.5] for f in range(k)}},
        "class_weights": {"final": [1.0, 1.0], "folds": {str(f): [1.0, 1.0] for f in range(k)}},
        "normalisation": {"method": "standard", "final": {}, "transform": transform_reference(),
                          "folds": {str(f): {"num_0": {"mean": 0.0, "std": 1.0, "count": 1},
                                             "num_1": {"mean": 0.0, "std": 1.0, "count": 1}}
                                    for f in range(k)}},
    }
    manifest.update(overrides)
    return manifest


def transform_reference(name: str = TRANSFORM) -> dict[str, Any]:
    return {"path": name, "format_version": 1, "materialised": None}


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    (out / "manifest.json").write_text(json.dumps(manifest))


def write_parquet_output(out: Path, table: pa.Table, files: dict[int, int] | None = None,
                         row_group_size: int = 2) -> None:
    """Hive-partitioned like Spark's writer: fold only in the directory name, not in the files;
    `files` gives the number of files of a fold (default 1)."""
    for fold in sorted(set(table.column("fold").to_pylist())):
        part = table.filter(pc.equal(table.column("fold"), fold)).drop(["fold"])
        directory = out / "data" / f"fold={fold}"
        directory.mkdir(parents=True)
        count = (files or {}).get(fold, 1)
        step = -(-part.num_rows // count)
        for i in range(count):
            pq.write_table(part.slice(i * step, step), directory / f"part-{i:05d}.snappy.parquet",
                           row_group_size=row_group_size)


ROWS_PER_FOLD = 2000  # 3/4 of class 0, 1/4 of class 1: priors 0.75 / 0.25 in every training set
PRIORS = [0.75, 0.25]


def separable_table(rng: np.random.Generator) -> pa.Table:
    """Class 0 has num_0 around +2, class 1 around -2; num_1 and emb are noise."""
    folds = np.repeat([-1, 0, 1], ROWS_PER_FOLD)
    labels = np.tile(np.repeat([0, 1], [ROWS_PER_FOLD * 3 // 4, ROWS_PER_FOLD // 4]), 3)
    num_0 = np.where(labels == 0, 2.0, -2.0) + rng.normal(0, 0.5, len(labels))
    return pa.table({
        "row_id": np.arange(len(labels)), "fold": folds.astype(np.int32),
        "replica": np.zeros(len(labels), np.int32), "label_index": labels.astype(np.int32),
        "label": [f"class_{y}" for y in labels], "num_0": num_0 * 10 + 100,  # standardising matters
        "num_1": rng.normal(0, 1, len(labels)), "emb": rng.normal(0, 1, (len(labels), 2)).tolist(),
    }, schema=SCHEMA)


def write_separable_output(out: Path) -> None:
    """separable_table as a Parquet output with fold statistics, priors and class weights."""
    table = separable_table(np.random.default_rng(0))
    # Rows sorted by class, in row groups of one class: only the loader's shuffling gives mixed batches.
    write_parquet_output(out, table, row_group_size=ROWS_PER_FOLD // 4)
    frame = table.to_pandas()
    stats = {str(k): {c: {"mean": frame[frame.fold == 1 - k][c].mean(), "std": frame[frame.fold == 1 - k][c].std(ddof=0),
                          "count": ROWS_PER_FOLD} for c in ("num_0", "num_1")} for k in (0, 1)}
    write_standard_transform(out, {k: {c: s["mean"] for c, s in stats[str(k)].items()} for k in (0, 1)},
                             {k: {c: s["std"] for c, s in stats[str(k)].items()} for k in (0, 1)})
    write_manifest(out, manifest_for(
        "parquet",
        class_priors={"final": PRIORS, "folds": {"0": PRIORS, "1": PRIORS}},
        class_weights={"final": [2 / 3, 2.0], "folds": {"0": [2 / 3, 2.0], "1": [2 / 3, 2.0]}},
        normalisation={"method": "standard", "final": {}, "folds": stats, "transform": transform_reference()}))


def standard_params(name: str, mean: dict[str, float], std: dict[str, float]) -> TransformParams:
    """StandardScaler-like params (fill = mean) for num_0/num_1; emb left as is."""
    return TransformParams(name, numeric=tuple(
        NumericParams(c, "standard", False, mean[c], -math.inf, math.inf, mean[c], std[c], ROWS_PER_FOLD)
        for c in ("num_0", "num_1")), arrays=(ArrayParams("emb", "none", True, (0.0, 0.0), (1.0, 1.0)),))


def write_standard_transform(out: Path, mean: dict[int, dict[str, float]], std: dict[int, dict[str, float]],
                             name: str = TRANSFORM) -> None:
    """A transform file by hand: fold k standardises with mean[k]/std[k]; final with fold 0's."""
    folds = {k: standard_params(str(k), mean[k], std[k]) for k in mean}
    (out / name).write_text(json.dumps(transform_document(standard_params("final", mean[0], std[0]), folds)))
