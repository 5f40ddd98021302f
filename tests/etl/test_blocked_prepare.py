"""prepare blocked by validation, end to end through the CLI on generated data with a real defect
(a batch with ~30% nulls where the schema, inferred from the first batch, allows ~1%): exit 1,
nothing published, the previous dataset byte-for-byte intact and still read by a trainer, and a
blocked manifest and report under <out>/_blocked/<run_id>/ that say why."""

import hashlib
import html
import json
import subprocess
from pathlib import Path

import pytest

from conftest import csv_records
from test_e2e_cli import ROOT, SMALL, SPARKPREP, _expected_loader_counts, _main, _trainer_counts
from trainer_process import run_trainer

pytestmark = pytest.mark.e2e

FEATURES = ["num_0", "num_1", "num_2", "num_3", "num_4", "cat_0"]


def _files(out: Path) -> dict[str, str]:
    """Every file of the output except _blocked/, with a digest of its bytes."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.relative_to(out).parts[0] != "_blocked"}


def test_a_blocked_prepare_publishes_nothing_keeps_the_previous_dataset_and_says_why(spark, tmp_path):
    good, bad, out = tmp_path / "good", tmp_path / "bad", tmp_path / "out"
    _main("generate", *SMALL, "--set", f"generate.path={good}")
    _main("generate", *SMALL, "--set", f"generate.path={bad}", "--set", "generate.seed=8",
         "--set", "generate.defects.nulls=0.3")
    _main("profile", *SMALL, "--input", str(good), "--out", str(tmp_path / "stats.json"))
    _main("infer-schema", "--stats", str(tmp_path / "stats.json"), "--out", str(tmp_path / "schema.yaml"))
    prepare = ["prepare", *SMALL, "--set", f"output.path={out}", "--set", f"validation.schema={tmp_path / 'schema.yaml'}"]
    _main(*prepare, "--set", f"input.paths=[{good}]")
    published = json.loads((out / "manifest.json").read_text())
    before = _files(out)

    proc = subprocess.run([*SPARKPREP, *prepare, "--set", f"input.paths=[{bad}]"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    (blocked,) = (out / "_blocked").iterdir()
    assert f"{blocked}/report.html" in proc.stderr and "num_0: " in proc.stderr and "nulls, allowed" in proc.stderr
    # Nothing published, nothing left staged: the previous dataset is the same bytes.
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "good", "out", "schema.yaml", "stats.json"]
    assert sorted(p.name for p in blocked.iterdir()) == ["manifest.json", "report.html", "stats.json"]

    manifest = json.loads((blocked / "manifest.json").read_text())
    assert manifest["status"] == "blocked" and manifest["run_id"] == blocked.name
    assert manifest["blocked"]["previous_run_id"] == published["run_id"] and not manifest["output"]["published"]
    assert manifest["config"]["input"]["paths"] == [str(bad)] and manifest["validation"]["stats"] == "stats.json"
    nulls = {a["column"]: a for a in manifest["validation"]["anomalies"] if a["type"] == "nulls_above_allowed"}
    assert set(FEATURES) <= set(nulls) and all(nulls[c]["severity"] == "error" and nulls[c]["value"] > 0.2 for c in FEATURES)
    assert manifest["validation"]["blocking"] == len([a for a in manifest["validation"]["anomalies"] if a["severity"] == "error"])
    assert all(manifest["stats_summary"]["columns"][c]["null_fraction"] > 0.2 for c in FEATURES)
    assert json.loads((blocked / "stats.json").read_text())["rows"] == manifest["stats_summary"]["rows"] == csv_records(bad)
    report = html.unescape((blocked / "report.html").read_text())
    assert "run blocked" in report and f"run {published['run_id']}" in report
    assert all(nulls[c]["message"] in report for c in FEATURES)
    assert report.count('class="plot"') >= 5  # a histogram per numeric column

    # A trainer still reads the previous dataset, and refuses the blocked record if pointed at it.
    assert _trainer_counts(out, fold=0) == _expected_loader_counts(published, 0)
    script = ("import sys\nfrom sparkprep.errors import InputError\nfrom sparkprep.train import make_loader\n"
              "try:\n    make_loader(sys.argv[1], 0, 'train')\nexcept InputError as err:\n    print(err)\n")
    refused = run_trainer(script, str(blocked))
    assert f"records run {blocked.name}, which validation blocked" in refused.stdout, refused.stderr[-2000:]
