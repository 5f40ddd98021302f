from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sparkprep.io.fs import HadoopFS
from sparkprep.io.write import remove_stale_siblings, write_table


def _dictionary_encoded(root: Path) -> dict[str, bool]:
    """Per column: does every row group of every data file under `root` carry a dictionary page?"""
    files = [f for f in root.rglob("*.parquet") if "_delta_log" not in f.parts]
    seen: dict[str, bool] = {}
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                chunk = meta.row_group(g).column(c)
                seen[chunk.path_in_schema] = seen.get(chunk.path_in_schema, True) and chunk.has_dictionary_page
    assert files and seen
    return seen


@pytest.mark.parametrize("fmt", ["parquet", "delta"])
def test_the_dictionary_limit_drops_dictionaries_of_many_distinct_values_only(spark, tmp_path, fmt):
    # 10,000 distinct doubles, each twice in every page of 20,000 rows: an 80 KB dictionary that
    # makes the column smaller, so parquet-mr keeps it under its 1 MB default and drops it past a
    # 64 KB limit. Three labels keep theirs under both.
    df = spark.range(80_000).selectExpr("cast(id % 10000 as double) / 7 as x", "concat('c', id % 3) as label")
    one = df.coalesce(1)
    write_table(one, str(tmp_path / "default"), fmt, [], 1_000_000, 1 << 20)
    write_table(one, str(tmp_path / "limited"), fmt, [], 1_000_000, 64 << 10)
    assert _dictionary_encoded(tmp_path / "default") == {"x": True, "label": True}
    assert _dictionary_encoded(tmp_path / "limited") == {"x": False, "label": True}
    read = spark.read.format(fmt).load(str(tmp_path / "limited"))
    assert sorted(read.collect()) == sorted(one.collect())
    assert spark.conf.get("parquet.dictionary.page.size", None) is None  # Delta's limit was for its write only


def test_a_run_removes_what_killed_runs_left_beside_the_output_and_restores_a_moved_dataset(spark, tmp_path):
    # What runs killed at each step leave: scratch (mid-run), staging (before publish), old (after
    # publish's second rename, before the delete); and beside another output, untouched.
    out = tmp_path / "out"
    (out / "data").mkdir(parents=True)
    (out / "manifest.json").write_text("{}")
    left = {".out.scratch-r1": "marked/part-0", ".out.staging-r2": "data/part-0", ".out.old-r3": "manifest.json",
            ".other.staging-r1": "data/part-0", ".out.staging-now": "data/part-0", "out.failed-r4": "quarantine/q"}
    for directory, file in left.items():
        (tmp_path / directory / file).parent.mkdir(parents=True)
        (tmp_path / directory / file).write_text("x" * 10)
    fs = HadoopFS(spark, tmp_path.as_uri())
    removed = remove_stale_siblings(fs, f"file:{out}", "now")
    assert sorted(Path(u).name for u in removed) == [".out.old-r3", ".out.scratch-r1", ".out.staging-r2"]
    # this run's own directory, another output's, and the visible kept quarantine stay
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.staging-r1", ".out.staging-now", "out", "out.failed-r4"]

    # Killed between publish's two renames: the previous dataset sits in `old` and the output is gone.
    (out / "manifest.json").rename(tmp_path / "kept.json")
    out.rename(tmp_path / ".out.old-r5")
    (tmp_path / ".out.staging-r5" / "data").mkdir(parents=True)
    assert [Path(u).name for u in remove_stale_siblings(fs, f"file:{out}", "now")] == [".out.staging-r5"]
    assert (out / "data").is_dir() and not (tmp_path / ".out.old-r5").exists()
