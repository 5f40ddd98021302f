import csv
import itertools
import shutil
import subprocess
import uuid
from pathlib import Path

import yaml

import pytest

from sparkprep.config import SparkConfig
from sparkprep.io.session import build_session


@pytest.fixture(scope="session")
def spark():
    """One local[2] session with Delta for the whole ETL suite (UI off, few shuffle partitions).

    Expressions run interpreted: on inputs of a few rows, compiling every plan's generated Java
    (Janino, whose class lookups scan the jars) cost more CPU than running it (-12% on the split
    and dedup property tests). Spark keeps both ways equal; the runs that start a JVM of their own
    (the CLI and spark-submit subprocesses of test_e2e_cli and test_blocked_prepare, tests/cluster)
    keep Spark's generated code."""
    config = SparkConfig(master="local[2]", driver_memory="2g", shuffle_partitions=4,
                         conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                               "spark.sql.adaptive.enabled": "false", "spark.sql.codegen.wholeStage": "false",
                               "spark.sql.codegen.factoryMode": "NO_CODEGEN"})
    session = build_session(config, "sparkprep-tests")
    yield session
    session.stop()


@pytest.fixture
def materialise(spark, tmp_path):
    """The pipeline's scratch-Parquet materialiser for stages that take one: every call writes a
    new directory (a lazily read earlier result is never overwritten)."""
    calls = itertools.count()

    def write(df, name):
        path = str(tmp_path / f"{name}-{next(calls)}")
        df.write.parquet(path)
        return spark.read.parquet(path)
    return write


@pytest.fixture
def csv_config(tmp_path):
    """Writes a prepare config for CSV files with a header under `data` and returns its path;
    `sections` replace or extend the defaults (local[2], exact dedup, k=5 with a 10% holdout)."""
    def write(data, schema: dict[str, str], **sections) -> str:
        config = {
            "spark": {"master": "local[2]", "shuffle_partitions": 4},
            "input": {"paths": [str(data)], "format": "csv", "options": {"header": "true"}, "schema": schema},
            "columns": {"label": "label", "numeric": ["score"], "text": ["text"]},
            "dedup": {"exact": True},
            "split": {"k": 5, "holdout_fraction": 0.1, "seed": 3},
            "output": {"path": str(tmp_path / "out"), "format": "parquet"},
        }
        for name, section in sections.items():
            config[name] = {**config.get(name, {}), **section}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return str(path)
    return write


def csv_records(raw: Path) -> int:
    """Records of generated CSV files (part-*.txt, as `generate` names them) as Python's csv
    module reads them (RFC 4180): one per line, except that a line cut inside its quoted text
    runs on into the next."""
    return sum(len(list(csv.reader(f.open(newline="")))) for f in Path(raw).glob("part-*.txt"))


def shuffle_reads(spark, partitions: int, action):
    """`action()` run with `partitions` shuffle partitions, and per stage of it that read a shuffle:
    (records read, tasks, the largest task's records), from Spark's own task metrics (its status
    store)."""
    sc, width = spark.sparkContext, spark.conf.get("spark.sql.shuffle.partitions")
    group = f"shuffle-reads-{uuid.uuid4().hex}"  # an id() may come back: never another call's jobs
    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    sc.setJobGroup(group, group)
    try:
        result = action()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", width)
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    store, stages = sc._jsc.sc().statusStore(), []
    for job in sc.statusTracker().getJobIdsForGroup(group):
        for stage in sc.statusTracker().getJobInfo(job).stageIds:
            tasks = store.taskList(stage, 0, 1 << 16)
            reads = [tasks.apply(i).taskMetrics().get().shuffleReadMetrics().recordsRead() for i in range(tasks.size())]
            if sum(reads):
                stages.append((sum(reads), len(reads), max(reads)))
    return result, stages


def assert_no_task_above_its_share(stages) -> None:
    """No task of a shuffle read more than twice its share of the stage's records (and a row per
    task: a hot key folded in every map task arrives as one row from each)."""
    assert stages, "no stage read a shuffle"
    for records, tasks, largest in stages:
        assert largest <= 2 * records / tasks + tasks, (records, tasks, largest, stages)


#: Skips a test where Debian's chromium is not installed.
needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")


def headless_chromium(page: Path, *args: str) -> subprocess.CompletedProcess:
    """Chromium, headless, on the local file `page` (`--dump-dom` prints the DOM it built,
    `--screenshot=<png>` draws it); fails the test on a non-zero exit or a console message (a
    script error, a resource that failed to load)."""
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    done = subprocess.run([*flags, *args, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CONSOLE" not in done.stderr and "Failed to load" not in done.stderr, done.stderr[-2000:]
    return done
