"""bench/headline.py on hand-made results: newest wins, overrides are said, regenerating is idempotent."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("headline", Path(__file__).parents[2] / "bench" / "headline.py")
headline = importlib.util.module_from_spec(_spec)
sys.modules["headline"] = headline  # dataclasses look their module up there
_spec.loader.exec_module(headline)

LOG = """## Dated log

| date | bench | input | floor | ours | ratio |
|---|---|---|---|---|---|
| 2026-11-29 | suite: prepare vs floor | 1 GB | floor 20 s | prepare 200 s | **10x** floor |

## Prose that follows the log
"""
PREAMBLE = "# Benchmark results\n\nEvery figure is a ratio.\nMachine: 2 cores.\n\n"


def _suite(date: str, ratio: float, overrides: list[str], input_mb: float = 1217.7) -> dict:
    return {"date": date, "gb": 1.0, "rows": 3786444, "master": "local[2]", "driver_memory": "1g",
            "overrides": overrides, "input_mb": input_mb, "floor_s": 20.0,
            "prepare": {"seconds": 20.0 * ratio, "ratio_to_floor": ratio}}


@pytest.fixture
def bench(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    files = {
        "2026-11-29T2018-suite-1gb-custom.json": _suite("2026-11-29T20:18:53+00:00", 10.15, ["dedup.near=null"]),
        # Newest by its recorded date although its name sorts first.
        "2026-11-30-a-suite-1gb.json": _suite("2026-11-30T06:16:38+00:00", 7.97, ["dedup.near=null", "x.y=1"]),
        "2026-11-30T0700-suite-1gb.json": _suite("2026-11-30T05:00:00+00:00", 9.0, []),
        "2026-11-30T0742-suite-5gb-custom.json": _suite("2026-11-30T07:42:42+00:00", 7.02, [], input_mb=6098.7),
        "2026-11-29-profile-1x52.json": {"date": "2026-11-29T04:56:22+00:00", "rows": 1, "columns": 52,
                                         "parquet_mb": 1.0, "master": "local[2]", "scan_s": 1.0,
                                         "profile_s": 2.0, "ratio_to_scan": 2.0},
    }
    for name, data in files.items():
        (results / name).write_text(json.dumps(data))
    md = tmp_path / "RESULTS.md"
    md.write_text(PREAMBLE + LOG)
    return results, md


def _row(md: Path, figure: str) -> str:
    return next(line for line in md.read_text().splitlines() if line.startswith(f"| {figure} |"))


def test_newest_result_wins_and_overrides_are_said(bench):
    results, md = bench
    headline.write_headline(headline.load_results(results), md)
    one_gb = _row(md, "prepare / floor, ~1 GB")
    assert "**7.97x**" in one_gb and "2026-11-30-a-suite-1gb.json" in one_gb
    assert "**dedup.near=null** (near-duplicate detection off)" in one_gb and "**x.y=1**" in one_gb
    five_gb = _row(md, "prepare / floor, ~5 GB")
    assert "**7.02x**" in five_gb and "conf/demo.yaml as is (no override)" in five_gb
    assert "none" in _row(md, "prepare / floor, ~20 GB") and "none" in _row(md, "near-dup vs peers")
    assert "**2.0x** scan" in _row(md, "profile / scan")


def test_regenerating_is_idempotent_and_keeps_the_log(bench):
    results, md = bench
    headline.write_headline(headline.load_results(results), md)
    once = md.read_text()
    headline.write_headline(headline.load_results(results), md)
    assert md.read_text() == once
    assert once.startswith(PREAMBLE + headline.BEGIN) and once.endswith(headline.END + "\n\n" + LOG)
    assert once.count(headline.BEGIN) == 1


def test_a_new_result_replaces_the_old_row(bench):
    results, md = bench
    headline.write_headline(headline.load_results(results), md)
    (results / "2026-12-01T0100-suite-1gb-custom.json").write_text(
        json.dumps(_suite("2026-12-01T01:00:00+00:00", 5.5, ["dedup.near=null"])))
    headline.write_headline(headline.load_results(results), md)
    assert "**5.5x**" in _row(md, "prepare / floor, ~1 GB")
    assert "7.97x" not in md.read_text().split(headline.END)[0]
    assert md.read_text().endswith(headline.END + "\n\n" + LOG)


def test_the_peers_row_says_how_much_faster_and_where_a_peer_stopped(bench):
    results, md = bench
    def tool(seconds, status="ok", faster=None):
        return {"seconds": seconds, "status": status, "precision": 1.0, "recall": 0.99, "ours_faster": faster}
    run = {"texts": 100_000, "floor_s": 0.5, "truth": {"over": "all texts", "pairs": 9},
           "ours": tool(10.0), "mllib": tool(600.0, "stopped after 600 s (time limit)", "> 60.0"),
           "datasketch": tool(150.0, faster=15.0)}
    (results / "2026-12-06-neardup-peers.json").write_text(json.dumps(
        {"date": "2026-12-06T10:00:00+00:00", "master": "local[2]", "runs": [{**run, "texts": 20_000}, run]}))
    headline.write_headline(headline.load_results(results), md)
    row = _row(md, "near-dup vs peers")
    assert "**60.0x+** faster than MLlib (stopped at its time limit)" in row and "**15.0x** faster than datasketch" in row
    assert "100,000 generated texts" in row
