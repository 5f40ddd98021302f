"""prepare's validate step: a blocking anomaly stops the run before any output; a clean run records
stats and anomalies in manifest.json and report.html, which a real headless browser renders."""

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from conftest import headless_chromium, needs_chromium
from sparkprep.config import Config
from sparkprep.errors import InputError, SparkprepError
from sparkprep.pipeline import run
from sparkprep.quality.profile import profile
from sparkprep.quality.schema_rules import dump_schema, infer_schema
from sparkprep.publish.verify import verify_output


@pytest.fixture(scope="module")
def batch(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("validated")
    rows = [(i, float(i % 17) * (1.5 if i % 3 else -1.0), "ABC"[i % 3], "yes" if i % 4 else "no") for i in range(300)]
    df = spark.createDataFrame(rows, "id long, x double, c string, label string")
    df.write.parquet(str(root / "in"))
    stats = profile(df, label="label")
    (root / "stats.json").write_text(json.dumps(stats.to_dict()))
    (root / "schema.yaml").write_text(dump_schema(infer_schema(stats)))
    return root


def _config(root: Path, out: str, **validation) -> Config:
    return Config.model_validate({
        "input": {"paths": [str(root / "in")], "format": "parquet"},
        "columns": {"label": "label", "numeric": ["x"], "categorical": ["c"]},
        "split": {"k": 2, "holdout_fraction": 0.0}, "output": {"path": str(root / out)},
        "validation": {"schema": str(root / "schema.yaml"), **validation}})


@pytest.fixture(scope="module")
def narrow(batch):
    """A schema whose domain for c lacks "C", which a third of the rows have: a blocking anomaly."""
    rules = yaml.safe_load((batch / "schema.yaml").read_text())
    rules["columns"]["c"]["domain"]["values"] = ["A", "B"]
    (batch / "narrow.yaml").write_text(yaml.safe_dump(rules))
    return str(batch / "narrow.yaml")


def _with_schema(config: Config, schema: str) -> Config:
    return config.model_copy(update={"validation": config.validation.model_copy(update={"schema_path": schema})})


def test_blocking_anomaly_stops_before_any_output(spark, batch, narrow):
    config = _with_schema(_config(batch, "stopped"), narrow)
    with pytest.raises(SparkprepError, match="blocking") as err:
        run(spark, config)
    assert "outside the domain" in str(err.value) and "/stopped/_blocked/" in str(err.value)
    # Only the record of why: no data, quarantine, transform or manifest at the output itself.
    (blocked,) = (batch / "stopped" / "_blocked").iterdir()
    assert [p.name for p in (batch / "stopped").iterdir()] == ["_blocked"]
    assert sorted(p.name for p in blocked.iterdir()) == ["manifest.json", "report.html", "stats.json"]
    assert not [p for p in batch.iterdir() if p.name.startswith(".stopped")]
    manifest = json.loads((blocked / "manifest.json").read_text())
    assert (manifest["status"], manifest["run_id"], manifest["blocked"]["previous_run_id"]) == ("blocked", blocked.name, None)
    assert [a["type"] for a in manifest["validation"]["anomalies"] if a["severity"] == "error"] == ["unexpected_values"]
    assert "outside the domain" in (blocked / "report.html").read_text()
    with pytest.raises(InputError, match="which the quality gate blocked"):
        verify_output(spark, str(blocked))
    # The next run that passes replaces the output, the blocked record with it.
    run(spark, _config(batch, "stopped"))
    assert not (batch / "stopped" / "_blocked").exists() and (batch / "stopped" / "manifest.json").exists()


def test_a_blocked_run_on_delta_leaves_the_table_and_the_manifest_in_force(spark, batch, narrow):
    good = _config(batch, "delta_out")
    good = good.model_copy(update={"output": good.output.model_copy(update={"format": "delta"})})
    run(spark, good)
    out = batch / "delta_out"
    manifest, log = (out / "manifest.json").read_text(), sorted((out / "data" / "_delta_log").glob("*.json"))
    with pytest.raises(SparkprepError, match="blocking"):
        run(spark, _with_schema(good, narrow))
    assert (out / "manifest.json").read_text() == manifest
    assert sorted((out / "data" / "_delta_log").glob("*.json")) == log  # no new table version
    (blocked,) = (out / "_blocked").iterdir()
    assert json.loads((blocked / "manifest.json").read_text())["blocked"]["previous_run_id"] == json.loads(manifest)["run_id"]
    run(spark, good)
    assert not (out / "_blocked").exists()


@pytest.fixture(scope="module")
def published(spark, batch):
    run(spark, _config(batch, "out", baseline=str(batch / "stats.json")))
    return batch / "out"


def test_clean_run_records_stats_and_distances(published):
    manifest = json.loads((published / "manifest.json").read_text())
    assert manifest["validation"]["blocking"] == 0 and manifest["validation"]["stats"] == "stats.json"
    assert manifest["validation"]["distances"]["x"]["linf"] == 0
    stats = json.loads((published / "stats.json").read_text())
    # The profile reads the typed scratch copy: its row_id, hashes and counters stay out of it.
    assert stats["rows"] == 300 and sorted(stats["columns"]) == ["c", "id", "label", "x"]


@needs_chromium
def test_report_renders_its_plots_in_a_headless_browser(published, tmp_path):
    page = published / "report.html"
    dom = headless_chromium(page, "--dump-dom").stdout
    # Numeric columns id and x: a histogram each plus a baseline-vs-current overlay each.
    quality = dom.split('<section id="validation">')[1]
    assert quality.count('class="plot"') == 4 and quality.count("Label distribution") == 1
    assert "x: baseline vs current" in quality and 'class="bar"' in quality
    shot = tmp_path / "report.png"
    headless_chromium(page, f"--screenshot={shot}", "--window-size=800,3000")
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    palette_blue = (0x4C, 0x72, 0xB0)
    assert len(colours) > 10 and sum(n for n, rgb in colours if rgb == palette_blue) > 500


def test_spark_jobs_carry_the_stage_and_the_callers_description_comes_back(spark, batch, narrow, monkeypatch):
    """Spark names a write "parquet at NativeMethodAccessorImpl.java:0"; the stage's name as the
    job description says in the UI and event log which stage it belongs to."""
    import sparkprep.pipeline as pipeline

    seen = []
    real = pipeline.write_table

    def recording(df, uri, *args):
        seen.append((Path(uri).name, spark.sparkContext.getLocalProperty("spark.job.description")))
        return real(df, uri, *args)

    monkeypatch.setattr(pipeline, "write_table", recording)
    spark.sparkContext.setJobDescription("the caller's own")
    try:
        run(spark, _config(batch, "described"))
        assert seen == [("quarantine", "sparkprep prepare: quarantine"), ("data", "sparkprep prepare: split+write")]
        assert spark.sparkContext.getLocalProperty("spark.job.description") == "the caller's own"
        with pytest.raises(SparkprepError, match="blocking"):
            run(spark, _with_schema(_config(batch, "described"), narrow))
        assert spark.sparkContext.getLocalProperty("spark.job.description") == "the caller's own"
    finally:
        spark.sparkContext.setLocalProperty("spark.job.description", None)
    assert spark.sparkContext.getLocalProperty("spark.job.description") is None
