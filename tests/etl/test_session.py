import subprocess
import sys
from pathlib import Path

from sparkprep.config import SparkConfig, load_config
from sparkprep.io.session import (DELTA_PACKAGE, QUIET_LOG4J, _launch_settings, build_session, scale_shuffle_partitions,
                                  under_spark_submit)

ROOT = Path(__file__).resolve().parents[2]

DEAD_REPOSITORY = """<ivysettings>
  <settings defaultResolver="dead"/>
  <resolvers><ibiblio name="dead" m2compatible="true" root="http://127.0.0.1:9/maven2/"/></resolvers>
</ivysettings>
"""


def test_session_is_utc_with_delta_and_full_csv_parsing(spark, tmp_path):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.csv.parser.columnPruning.enabled") == "false"
    # Finished shuffles are cleaned within 2 minutes, not Spark's 30 (disk: README).
    assert spark.sparkContext.getConf().get("spark.cleaner.periodicGC.interval") == "2min"
    # Delta's snapshots take the session's shuffle width, not Delta's fixed 50 tasks (io/session.py),
    # as every run's build_session sets them. This worker's session may come from other tests in any
    # state (a pipeline.run widens the shuffle alone): set as a run would, with a width of its own.
    before = int(spark.conf.get("spark.sql.shuffle.partitions"))
    adaptive = {"spark.sql.adaptive.enabled": spark.conf.get("spark.sql.adaptive.enabled")}
    width = int(spark.conf.get("spark.databricks.delta.snapshotPartitions")) + 1
    try:
        assert build_session(SparkConfig(master="local[2]", shuffle_partitions=width, conf=adaptive)) is spark
        assert spark.conf.get("spark.databricks.delta.snapshotPartitions") == spark.conf.get("spark.sql.shuffle.partitions") == str(width)
    finally:
        build_session(SparkConfig(master="local[2]", shuffle_partitions=before, conf=adaptive))
    spark.range(3).write.format("delta").save(str(tmp_path / "t"))
    assert spark.read.format("delta").load(str(tmp_path / "t")).count() == 3


def test_parquet_row_groups_are_32_mib_so_a_1_gb_executor_reads_them(spark, tmp_path):
    """io/session.py caps row groups at 32 MiB; ~40 MB of incompressible doubles in one file must
    therefore come out as more than one row group (parquet-mr's default would write one)."""
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    assert spark.conf.get("parquet.block.size") == str(32 << 20)
    spark.range(5_000_000).select(F.rand(1).alias("x")).coalesce(1).write.parquet(str(tmp_path / "p"))
    (part,) = (tmp_path / "p").glob("*.parquet")
    assert pq.ParquetFile(part).metadata.num_row_groups >= 2


def test_spark_submit_is_detected_by_its_gateway(monkeypatch):
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert not under_spark_submit()
    monkeypatch.setenv("PYSPARK_GATEWAY_PORT", "12345")
    assert under_spark_submit()


def test_unreachable_maven_without_cache_says_what_to_do(tmp_path):
    # An empty Ivy directory (no cached jars); the only repository is a closed port on loopback.
    settings = tmp_path / "ivysettings.xml"
    settings.write_text(DEAD_REPOSITORY)
    proc = subprocess.run([sys.executable, "-m", "sparkprep.cli", "jars",
                           "--set", f"spark.conf.spark.jars.ivySettings={settings}",
                           "--set", f"spark.conf.spark.jars.ivy={tmp_path / 'ivy'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert f"the Delta jars ({DELTA_PACKAGE}) are not cached" in proc.stderr
    assert "Maven Central" in proc.stderr and "sparkprep jars" in proc.stderr


def test_a_run_widens_the_shuffle_to_its_inputs_size_unless_told_otherwise(spark, tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("a,b\n" + "12345678,abcdefgh\n" * 200_000)  # 3.6 MB: 4 partitions of 1 MiB
    df = spark.read.option("header", True).csv(str(path))
    key, before = "spark.sql.shuffle.partitions", spark.conf.get("spark.sql.shuffle.partitions")
    widen = ["spark.shuffle_partitions=1", f"spark.shuffle_partition_bytes={1 << 20}"]
    try:
        scale_shuffle_partitions(spark, df, load_config(ROOT / "conf/demo.yaml", widen))
        assert spark.conf.get(key) == "4"
        scale_shuffle_partitions(spark, df, load_config(ROOT / "conf/demo.yaml", ["spark.shuffle_partitions=9"]))
        assert spark.conf.get(key) == "9"  # the configured width is the least
        spark.conf.set(key, "5")
        scale_shuffle_partitions(spark, df, load_config(ROOT / "conf/demo.yaml", widen + ["spark.conf.spark.sql.shuffle.partitions=5"]))
        assert spark.conf.get(key) == "5"  # set explicitly: left alone
    finally:
        spark.conf.set(key, before)


def test_the_quiet_log_configuration_joins_the_user_s_driver_java_options():
    # spark.conf wins over sparkprep's launch settings, except that the console's log configuration
    # is added to, not replaced by, the user's own driver Java options.
    settings = _launch_settings(SparkConfig(conf={"spark.driver.extraJavaOptions": "-Dx=1", "spark.master": "local[1]"}),
                                Path("/nonexistent-ivy"))
    assert settings["spark.master"] == "local[1]"
    assert settings["spark.driver.extraJavaOptions"] == f"-Dx=1 -Dlog4j2.configurationFile={QUIET_LOG4J}"
    verbose = _launch_settings(SparkConfig(verbose=True, conf={"spark.driver.extraJavaOptions": "-Dx=1"}), Path("/nonexistent-ivy"))
    assert verbose["spark.driver.extraJavaOptions"] == "-Dx=1" and verbose["spark.jars.packages"]
