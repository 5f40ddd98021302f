"""The one place that builds the SparkSession.

Outside spark-submit (CLI, tests) sparkprep starts the JVM itself: master, driver memory and the
Delta jars (resolved by Ivy from Maven Central, cached in ~/.ivy2.5.2) come from `SparkConfig`.
Under spark-submit the JVM already runs with the submitter's master, resources and `--packages`,
so only session-level SQL settings are applied.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

from pyspark.errors import PySparkRuntimeError
from pyspark.sql import DataFrame, SparkSession

from sparkprep.config import Config, SparkConfig
from sparkprep.errors import SparkprepError

log = logging.getLogger(__name__)

DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"
#: The console's log configuration for a JVM that sparkprep starts (see the file for what it hides).
QUIET_LOG4J = resources.files("sparkprep") / "log4j2.properties"

# Settings every run needs, whoever launched the JVM.
_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    # Dates and timestamps must not depend on the machine's zone (reproducible output).
    "spark.sql.session.timeZone": "UTC",
    # Without this, a CSV row whose bad token sits in an unselected column is not flagged corrupt.
    "spark.sql.csv.parser.columnPruning.enabled": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # HotSpot never JIT-compiles a method over 8000 bytes of bytecode; with Spark's default limit
    # (65535) a whole-stage method in between runs interpreted. Cleaning a wide input generates
    # one: falling back to per-expression code took it from 6.2 to 4.4 s on 400k rows.
    "spark.sql.codegen.hugeMethodLimit": "8000",
    # Row groups of 32 MiB, not parquet-mr's 128 MiB, in everything we write (scratch copies and
    # output). A reader holds a whole row group's column chunks in heap while it decodes it (Hadoop
    # 3.4's vectored reads allocate them at once), and so does a writer while it fills one: two
    # tasks on 100 MB row groups next to a sort's buffers ran a 1 GB executor out of heap at 10 GB
    # (bench/split_vs_sort.py). Copied into every write's Hadoop conf, as every SQL conf is.
    "parquet.block.size": str(32 << 20),
}


def hadoop_aws_package() -> str:
    """The `s3a://` connector matching the Hadoop that pyspark bundles (hadoop-client-api-X.jar).

    hadoop-aws must be the exact Hadoop version on the classpath, or s3a fails with missing methods.
    """
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    found = sorted(jars.glob("hadoop-client-api-*.jar"))
    if not found:
        raise SparkprepError(f"no hadoop-client-api-*.jar in {jars}: is pyspark installed completely?")
    return f"org.apache.hadoop:hadoop-aws:{found[0].stem.removeprefix('hadoop-client-api-')}"


def under_spark_submit() -> bool:
    """True when spark-submit launched this Python process (the JVM gateway already exists)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(config: SparkConfig, app_name: str = "sparkprep") -> SparkSession:
    """Return the session for a run; creates it with Delta configured unless one is active.

    Args:
        config: the run's `spark:` section.
        app_name: the application name Spark's UI and logs show.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    ivy = Path(config.conf.get("spark.jars.ivy", Path.home() / ".ivy2.5.2"))
    # Delta rebuilds a snapshot's file list in a fixed 50 partitions (Snapshot.scala), for every
    # version read and again for each query's file listing: 51 tasks a time whatever the table's
    # size. An output has a few files per fold, so the data's shuffle width is plenty; on 2 cores
    # the 50 made Delta prepare + verify on HDFS 263 s against Parquet's 138 s (tests/cluster).
    settings = {**_SQL_CONF, "spark.sql.shuffle.partitions": str(config.shuffle_partitions),
                "spark.databricks.delta.snapshotPartitions": str(config.shuffle_partitions), **config.conf}
    builder = SparkSession.builder.appName(app_name)
    launching = not under_spark_submit()
    if launching:
        settings |= _launch_settings(config, ivy)
    # Hadoop and Parquet keys are session settings: spark-submit would warn that it ignores them.
    for key, value in settings.items():
        if key.startswith("spark."):
            builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except PySparkRuntimeError as exc:
        raise SparkprepError(_launch_failure_hint(exc, ivy)) from exc
    for key, value in settings.items():
        if not key.startswith("spark."):
            spark.conf.set(key, value)
    if launching and "spark.jars.packages" in settings:
        _remember_jars(spark, ivy)
    spark.sparkContext.setLogLevel("INFO" if config.verbose else "WARN")
    log.info("Spark %s, master %s", spark.version, spark.sparkContext.master)
    return spark


def _launch_settings(config: SparkConfig, ivy: Path) -> dict[str, str]:
    """How sparkprep starts the JVM itself: master, memory, Delta's jars and the console's log
    configuration (spark-submit's own settings take their place under spark-submit), under the
    user's spark.conf; the log configuration joins, not replaces, the user's driver Java options."""
    settings = {
        "spark.master": config.master,
        "spark.driver.memory": config.driver_memory,
        "spark.ui.showConsoleProgress": "true",
        # A finished shuffle's files stay on disk until the driver's garbage collector drops
        # its last reference, and Spark forces a collection only every 30 minutes: a long run
        # would hold every stage's shuffle (several times the input) on disk at once.
        "spark.cleaner.periodicGC.interval": "2min",
    }
    # Once Ivy has resolved Delta, its jars are taken from the cache by name: Ivy's 100-line
    # resolution report then appears only on the first run (or with --verbose).
    jars = None if config.verbose else _remembered_jars(ivy)
    settings |= ({"spark.jars": jars} if jars else {"spark.jars.packages": DELTA_PACKAGE}) | config.conf
    if not config.verbose:
        options = config.conf.get("spark.driver.extraJavaOptions", "")
        settings["spark.driver.extraJavaOptions"] = f"{options} -Dlog4j2.configurationFile={QUIET_LOG4J}".strip()
    return settings


def _jar_list(ivy: Path) -> Path:
    return ivy / f"sparkprep-{DELTA_PACKAGE.replace(':', '_')}.jars"


def _remembered_jars(ivy: Path) -> str | None:
    """The jars an earlier run resolved for DELTA_PACKAGE, if each is still in Ivy's cache."""
    listed = _jar_list(ivy)
    if not listed.exists():
        return None
    jars = listed.read_text().strip()
    present = jars and all(Path(urlparse(jar).path).is_file() for jar in jars.split(","))
    return jars if present else None


def _remember_jars(spark: SparkSession, ivy: Path) -> None:
    jars = spark.sparkContext.getConf().get("spark.jars", "")
    if jars and ivy.is_dir():
        _jar_list(ivy).write_text(jars)


def _launch_failure_hint(exc: Exception, ivy: Path) -> str:
    jar = ivy / "jars" / f"{DELTA_PACKAGE.replace(':', '_', 1).replace(':', '-')}.jar"
    if not jar.exists():
        return (f"Spark could not start: the Delta jars ({DELTA_PACKAGE}) are not cached in "
                f"{jar.parent} and could not be fetched from Maven Central. Check the network "
                f"(or a proxy), then run `sparkprep jars` once; later runs use the cache. ({exc})")
    return f"Spark could not start (is Java 17 installed and JAVA_HOME set?): {exc}"


@contextmanager
def temporary_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """`key` set to `value` in the session for the block, then put back.

    Args:
        spark: the session.
        key: a SQL conf key.
        value: its value inside the block.
    """
    before = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def scale_shuffle_partitions(spark: SparkSession, raw: DataFrame, config: Config) -> None:
    """spark.sql.shuffle.partitions = max(spark.shuffle_partitions, input bytes /
    spark.shuffle_partition_bytes), the input's size as Spark's plan states it (the files' total).

    Args:
        spark: the run's session.
        raw: the input as read.
        config: the run's config (its spark section).
    """
    per = config.spark.shuffle_partition_bytes
    if per is None or "spark.sql.shuffle.partitions" in config.spark.conf:
        return
    size = plan_bytes(raw)
    width = max(config.spark.shuffle_partitions, -(-size // per))
    if width != int(spark.conf.get("spark.sql.shuffle.partitions")):
        log.info("shuffle partitions: %d (input %.0f MB / %d MB per partition)", width, size / 1e6, per >> 20)
        spark.conf.set("spark.sql.shuffle.partitions", str(width))


def plan_bytes(df: DataFrame) -> int:
    """The size of `df` in bytes as Spark's optimised plan states it (for an input read: its files' total).

    Args:
        df: the rows.
    """
    return int(str(df._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()))  # a BigInt
