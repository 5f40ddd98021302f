"""rebalance.copies: count writes each original once with its number of copies, and everything that
reads the output sees the same training sets as with the copies written as rows (the default)."""

import json
import logging
import math
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from pyspark.sql import functions as F

from sparkprep.config import load_config
from sparkprep.errors import ConfigError
from sparkprep.generate import write_generated
from sparkprep.pipeline import RunResult, run
from sparkprep.publish.verify import verify_dataset, verify_output
from sparkprep.stages.normalise.fit import measure_groups
from trainer_process import run_trainer

ROOT = Path(__file__).resolve().parents[2]
LAYOUTS = ("rows", "count")
#: The manifest's numbers that the data determine, as the frozen-output test lists them.
COUNTED = ("classes", "class_counts", "rows", "counts", "class_weights", "class_priors", "rejections",
           "duplicates", "warnings")


def _demo(root: Path, *overrides: str):
    return load_config(ROOT / "conf" / "demo.yaml", [
        "spark.master=local[2]", "generate.rows=1000", "generate.files=2", f"generate.path={root / 'raw'}",
        f"input.paths=[{root / 'raw'}]", *overrides])


@pytest.fixture(scope="module")
def outputs(spark, tmp_path_factory) -> dict[str, RunResult]:
    """The demo's input, prepared with its copies written as rows and counted (near-duplicates off:
    the copies follow the fold and the class, whatever put a row in its fold)."""
    root = tmp_path_factory.mktemp("copies")
    write_generated(spark, _demo(root).generate)
    return {layout: run(spark, _demo(root, f"output.path={root / layout}", f"rebalance.copies={layout}", "dedup.near=null"))
            for layout in LAYOUTS}


def _expanded_rows(out: str) -> list[tuple[int, int, int, bool]]:
    """(row_id, fold, replica, in_train) of every training row the output stands for: a row with
    counted copies as itself and its copies, replica 0..copies."""
    table = ds.dataset(_local(out) / "data", format="parquet", partitioning="hive").to_table()
    columns = ["row_id", "fold", "replica", "in_train"]
    rows = zip(*(table[c].to_pylist() for c in columns),
               table["copies"].to_pylist() if "copies" in table.column_names else [0] * table.num_rows)
    return sorted((i, f, r + c, t) for i, f, r, t, n in rows for c in range(n + 1))


def test_counted_copies_stand_for_the_same_rows_counts_and_parameters_as_copies_written_as_rows(outputs):
    rows, count = outputs["rows"].manifest, outputs["count"].manifest
    assert rows["rows"]["replicas"] > 0 and rows["rebalance"]["copies"] == "rows" and count["rebalance"]["copies"] == "count"
    assert {key: count[key] for key in COUNTED} == {key: rows[key] for key in COUNTED}
    # Statistics are sums over files of other sizes: equal but for the order of additions.
    assert _close(count["normalisation"], rows["normalisation"], ("final", "folds"))
    transforms = {layout: json.loads((_local(r.out) / r.manifest["normalisation"]["transform"]["path"]).read_text())
                  for layout, r in outputs.items()}
    assert _close(transforms["count"], transforms["rows"], ("final", "folds"))
    expanded = {layout: _expanded_rows(r.out) for layout, r in outputs.items()}
    assert expanded["count"] == expanded["rows"]


def _close(got: dict, want: dict, keys: tuple[str, ...]) -> bool:
    """`got[key]` equals `want[key]` for each key: floats to 1e-9 relative, everything else exactly."""
    a, b = _flat({k: got[k] for k in keys}), _flat({k: want[k] for k in keys})
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12) if isinstance(b[k], float) else a[k] == b[k] for k in a)


def _flat(value: object, where: str = "") -> dict[str, object]:
    """A JSON document as {path: leaf}."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{where}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{where}[{i}]").items()}
    return {where: value}


def _local(uri: str) -> Path:
    return Path(uri.removeprefix("file:"))


#: Per split of fold 1 and backend, the (row_id, replica) of an epoch over two DDP ranks (without
#: drop_last: every row, and fewer than 2 repeated to fill a rank) and each rank's count.
_READ_BOTH_WAYS = """
import json, sys
from sparkprep.train import PetastormOptions, Sampling, make_loader
found = {}
for backend in ('arrow', PetastormOptions()):
    for split in ('train', 'val', 'final', 'test'):
        ranks = []
        for rank in (0, 1):
            with make_loader(sys.argv[1], 1, split, columns=['row_id', 'replica'], batch_size=64,
                             sampling=Sampling(rank=rank, world_size=2, seed=3, drop_last=False),
                             backend=backend) as loader:
                ranks.append([(i, r) for b in loader for i, r in zip(b['row_id'].tolist(), b['replica'].tolist())])
        found[f'{backend}/{split}'] = {'rows': ranks[0] + ranks[1], 'per_rank': [len(r) for r in ranks]}
print(json.dumps(found))
"""


def test_both_loaders_read_the_same_rows_of_either_layout_in_equal_shards(outputs):
    read = {layout: json.loads(run_trainer(_READ_BOTH_WAYS, r.out).stdout.strip().splitlines()[-1])
            for layout, r in outputs.items()}
    for key, found in read["count"].items():
        rows = {tuple(row) for row in found["rows"]}  # (row_id, replica) is unique: the set is the split
        assert rows == {tuple(row) for row in read["rows"][key]["rows"]}, key
        assert len(found["rows"]) - len(rows) < 2 and found["per_rank"][0] == found["per_rank"][1], key
    final = {tuple(row) for row in read["count"]["arrow/final"]["rows"]}
    assert sum(1 for _, replica in final if replica) == outputs["rows"].manifest["rows"]["replicas"]


def test_a_counted_output_holds_only_its_originals_and_passes_verify(spark, outputs):
    for layout, result in outputs.items():
        out, manifest = result.out, result.manifest
        data = spark.read.parquet(f"{out}/data")
        assert ("copies" in data.columns) == (layout == "count") and "copies" in manifest["columns"]["reserved"]
        stored = data.count()
        expected = manifest["rows"]["output"] + (manifest["rows"]["replicas"] if layout == "rows" else 0)
        assert stored == expected
        verdict = verify_output(spark, out)
        assert verdict.ok, verdict.violations
    assert "copies laid out as the manifest records (rebalance.copies)" in verdict.checks


def test_verify_refuses_counts_on_copies_negative_counts_and_a_layout_the_manifest_does_not_record(spark, outputs):
    out, manifest = outputs["count"].out, outputs["count"].manifest
    data = spark.read.parquet(f"{out}/data")
    one = data.where(F.col("copies") > 0).select("row_id").first()[0]
    broken = data.withColumn("copies", F.when(F.col("row_id") == one, -1).otherwise(F.col("copies")))
    violations = verify_dataset(manifest, broken).violations
    assert any(f"copies counted on originals only, never null or negative: row_ids with a null, negative or "
               f"copy's copies: {one}" in v for v in violations), violations
    assert any("rows.replicas: manifest" in v for v in violations)
    rows_manifest = {**manifest, "rebalance": {**manifest["rebalance"], "copies": "rows"}}
    assert any("the data has a copies column, but the manifest records rebalance.copies rows" in v
               for v in verify_dataset(rows_manifest, data).violations)


def test_both_ways_of_measuring_count_the_copies_of_either_layout_alike(spark, outputs, caplog, tmp_path):
    """measure_groups reads unpartitioned local Parquet with pyarrow and anything else with Spark's
    aggregation: both count an original's counted copies as the copy rows they stand for."""
    counts = {}
    caplog.set_level(logging.INFO, logger="sparkprep.stages.normalise.fit")
    for layout, result in outputs.items():
        written = spark.read.parquet(f"{result.out}/data")
        written.write.parquet(str(tmp_path / layout))  # fold in the files: the Parquet path reads it
        for path, df in (("files", spark.read.parquet(str(tmp_path / layout))), ("spark", written)):
            caplog.clear()
            measured = measure_groups(df, ["num_0"])
            assert ("from the Parquet files" if path == "files" else "by Spark's grouped aggregation") in caplog.text
            counts[layout, path] = (measured.rows, measured.copies)
    assert counts["count", "files"] == counts["rows", "files"] == counts["count", "spark"] == counts["rows", "spark"]
    assert sum(counts["count", "files"][1].values()) == outputs["rows"].manifest["rows"]["replicas"]


def test_counted_copies_need_oversampling(tmp_path):
    with pytest.raises(ConfigError, match="copies: count counts oversampled copies, but method is undersample"):
        _demo(tmp_path, "rebalance.method=undersample", "rebalance.copies=count")
