"""profile's Parquet path: the same stats.json as the Spark path, Delta snapshots, bad files (one job: test_profile.py)."""

import json
import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from sparkprep.config import InputConfig, load_config
from sparkprep.errors import InputError
from sparkprep.generate import write_generated
from sparkprep.io.read import read_input
from sparkprep.quality.profile import column_kinds, profile
from sparkprep.io.arrow_tasks import plan
from sparkprep.quality.gate import profile_frame, typed_input

ROOT = Path(__file__).resolve().parents[2]


def _table(seed: int, n: int) -> pa.Table:
    """Every type the Parquet path takes, with nulls, NaN, ±inf, -0.0, a null and an empty array."""
    rng = np.random.default_rng(seed)
    mask = np.arange(n) % 11 == 3
    f64 = rng.normal(100, 30, n)
    f64[::13], f64[1::17], f64[2::19], f64[5::23] = np.nan, np.inf, -np.inf, -0.0
    f32 = rng.normal(0, 1e3, n).astype(np.float32)
    f32[::29] = np.nan
    big = rng.integers(-(1 << 62), 1 << 62, n)  # beyond 2^53: the cast to double rounds
    sizes = rng.integers(0, 5, n)
    arrays = [None if i % 7 == 0 else [0.5] * int(sizes[i]) for i in range(n)]
    arrays[1] = []
    return pa.table({
        "i8": pa.array(rng.integers(-128, 128, n).astype(np.int8)),
        "i16": pa.array(rng.integers(-3000, 3000, n).astype(np.int16), mask=mask),
        "i32": pa.array(rng.integers(-10**6, 10**6, n).astype(np.int32)),
        "i64": pa.array(big, mask=np.arange(n) % 5 == 0),
        "f32": pa.array(f32, mask=np.arange(n) % 31 == 0),
        "f64": pa.array(f64, mask=mask),
        "s": pa.array([None if i % 9 == 0 else f"v{int(k)}" for i, k in enumerate(rng.integers(0, 50, n))]),
        "t": pa.array(["ab" * int(k) for k in rng.integers(0, 7, n)]),
        "b": pa.array([None if i % 6 == 0 else bool(k) for i, k in enumerate(rng.integers(0, 2, n))]),
        "label": pa.array(rng.integers(0, 4, n)),
        "arr": pa.array(arrays, pa.list_(pa.float64())),
    })


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    """Three files of 3,000-5,000 rows, in row groups of 700 rows."""
    root = tmp_path_factory.mktemp("profile-files")
    for i, n in enumerate((3000, 5000, 4000)):
        pq.write_table(_table(i, n), root / f"part-{i}.parquet", row_group_size=700)
    return root


def _dump(stats) -> str:
    return json.dumps(stats.to_dict(), sort_keys=True)


def _paths(df, label="label", text=("t",)):
    source, tasks, why = plan(df, column_kinds(df, label, text), label)
    return source, why, tasks


def test_parquet_path_gives_the_spark_paths_stats_for_any_split(spark, parquet_dir, caplog):
    df = read_input(spark, InputConfig(paths=[str(parquet_dir)], format="parquet"))
    source, why, tasks = _paths(df)
    assert source is not None and len(source.files) == 3, why
    with caplog.at_level(logging.INFO, logger="sparkprep.quality.profile"):
        fast = profile(df, label="label", text=("t",))
    assert "profile: Parquet path" in caplog.text
    # The same rows through Spark: a repartition is not a bare read, so the Spark path runs.
    assert _paths(df.repartition(3))[0] is None
    with caplog.at_level(logging.INFO, logger="sparkprep.quality.profile"):
        slow = profile(df.repartition(3), label="label", text=("t",))
    assert "profile: Spark path" in caplog.text
    assert _dump(fast) == _dump(slow)
    assert fast.rows == 12_000 and fast.columns["label"].type == "bigint" and fast.columns["label"].is_label
    assert fast.columns["arr"].nulls == sum(1 for n in (3000, 5000, 4000) for i in range(n) if i % 7 == 0)
    assert fast.columns["b"].top[0][0] in ("true", "false") and fast.columns["f64"].inf > 0
    reordered = df.select(*reversed(df.columns))  # a projection of stored columns, in another order
    assert _paths(reordered)[2] is not None and _dump(profile(reordered, label="label", text=("t",))) == _dump(fast)
    # Every row group its own piece, several tasks per file: the same stats.
    spark.conf.set("spark.sql.files.maxPartitionBytes", "1k")
    try:
        many = _paths(df)[2]
        split = profile(df, label="label", text=("t",))
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert len(many) > 3 * len(tasks) and sum(len(p.row_groups) for t in many for p in t) == 5 + 8 + 6
    assert _dump(split) == _dump(fast)


def test_what_the_parquet_path_leaves_to_spark(spark, parquet_dir, tmp_path):
    df = spark.read.parquet(str(parquet_dir))
    assert "label 'f64'" in _paths(df, label="f64")[1]  # a float label: Java's and Arrow's digits differ
    assert "'f64' is computed" in _paths(df.withColumn("f64", F.col("f64") * 2))[1]
    assert "'d' is computed" in _paths(df.withColumn("d", F.current_date()))[1]
    assert "not a bare file read" in _paths(df.where("i8 > 0"))[1]
    other = _table(9, 50)
    other = other.set_column(3, "i64", other.column("i64").cast(pa.int32(), safe=False))
    (tmp_path / "mixed").mkdir()
    pq.write_table(other, tmp_path / "mixed" / "other.parquet")
    pq.write_table(_table(8, 50), tmp_path / "mixed" / "same.parquet")
    mixed = spark.read.schema(df.schema).parquet(str(tmp_path / "mixed"))  # Spark widens int32 to bigint
    source, why, tasks = _paths(mixed)
    assert source is not None and tasks is None and "stores 'i64' as int32" in why
    assert profile(mixed, label="label").columns["i64"].count == 80  # by the Spark path
    skipping = InputConfig(paths=[str(parquet_dir)], format="parquet", on_unreadable_file="quarantine")
    assert "ignoreCorruptFiles is set" in _paths(read_input(spark, skipping))[1]
    mixed.write.partitionBy("b").parquet(str(tmp_path / "by_b"))
    assert "partitioned" in _paths(spark.read.parquet(str(tmp_path / "by_b")), label=None)[1]


def test_delta_path_reads_the_current_snapshot_only(spark, tmp_path):
    path = str(tmp_path / "delta")
    for version, (seed, n) in enumerate(((1, 2000), (2, 3000))):
        pq.write_table(_table(seed, n), tmp_path / f"v{version}.parquet", row_group_size=700)
        rows = spark.read.parquet(str(tmp_path / f"v{version}.parquet"))
        rows.repartition(3).write.format("delta").mode("overwrite").save(path)
    df = read_input(spark, InputConfig(paths=[path], format="delta"))
    source, why, tasks = _paths(df)
    assert source is not None and tasks is not None, why
    assert len(df.inputFiles()) == 3  # the overwritten version's files are still on disk, not read
    assert len(list((tmp_path / "delta").glob("*.parquet"))) == 6
    fast = profile(df, label="label", text=("t",))
    assert fast.rows == 3000
    assert _dump(fast) == _dump(profile(df.repartition(2), label="label", text=("t",)))
    # Deletion vectors delete rows outside the files: the Spark path.
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    spark.sql(f"DELETE FROM delta.`{path}` WHERE i8 > 100")
    deleted = read_input(spark, InputConfig(paths=[path], format="delta"))
    assert "deletion vectors" in _paths(deleted)[1]
    assert profile(deleted, label="label").rows == 3000 - int(np.sum(_table(2, 3000).column("i8").to_numpy() > 100))


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def test_a_truncated_or_corrupt_file_is_an_input_error_naming_it(spark, tmp_path):
    good = _parquet_bytes(_table(3, 1000))
    (tmp_path / "a.parquet").write_bytes(good)
    (tmp_path / "b.parquet").write_bytes(good)
    df = spark.read.parquet(str(tmp_path))
    (tmp_path / "b.parquet").write_bytes(good[: len(good) // 2])  # footer gone: found while planning
    with pytest.raises(InputError, match=r"cannot read Parquet file .*b\.parquet"):
        profile(df, label="label")
    # Footer intact, data pages overwritten: found by the task reading them.
    (tmp_path / "b.parquet").write_bytes(good[:4] + b"\xff" * 2000 + good[2004:])
    with pytest.raises(InputError, match=r"cannot read Parquet file .*b\.parquet"):
        profile(df, label="label")


_DAY_US = 86_400_000_000
_MIN_US, _MAX_US = -62_135_596_800_000_000, 253_402_300_799_999_999  # 0001-01-01 .. 9999-12-31 (Spark's range)


def _times(seed: int, n: int) -> pa.Table:
    """Dates and timestamps over years 1-9999 (before 1582 and 1970, past 2262: beyond 2^53 micros
    the cast to double rounds), sub-second, with nulls; ms and us; UTC instants and local (_ntz)."""
    rng = np.random.default_rng(seed)
    micros = rng.integers(_MIN_US, _MAX_US, n)
    micros[::4] = rng.integers(-10**9, 10**9, (n + 3) // 4)  # around the epoch, sub-second both sides
    micros[1] = -1  # 1969-12-31 23:59:59.999999
    nulls = np.arange(n) % 7 == 2
    millis = micros // 1000
    return pa.table({
        "d": pa.array((micros // _DAY_US).astype(np.int32), pa.int32(), mask=nulls).cast(pa.date32()),
        "ts": pa.array(micros, pa.timestamp("us", tz="UTC"), mask=np.arange(n) % 5 == 1),
        "ts_ms": pa.array(millis, pa.timestamp("ms", tz="UTC"), mask=nulls),
        "ts_ny": pa.array(micros[::-1].copy(), pa.timestamp("us", tz="America/New_York")),  # instants too
        "ntz": pa.array(micros, pa.timestamp("us"), mask=nulls),
        "ntz_ms": pa.array(millis, pa.timestamp("ms")),
        "label": pa.array(rng.integers(0, 3, n)),
    })


def test_dates_and_timestamps_give_the_spark_paths_epoch_seconds(spark, tmp_path):
    """pyarrow's files (no Spark version: the read rebase mode applies, CORRECTED by default) and
    Spark's own (TIMESTAMP_MICROS, dates; no legacy calendar marker) take the Parquet path."""
    for i, n in enumerate((2000, 3000)):
        pq.write_table(_times(i, n), tmp_path / f"times-{i}.parquet", row_group_size=700)
    written = spark.read.parquet(str(tmp_path))
    assert [f.dataType.simpleString() for f in written.schema.fields][:6] == \
        ["date", "timestamp", "timestamp", "timestamp", "timestamp_ntz", "timestamp_ntz"]
    written.repartition(2).write.parquet(str(tmp_path / "by_spark"))
    for df in (written, spark.read.parquet(str(tmp_path / "by_spark"))):
        source, why, tasks = _paths(df, text=())
        assert source is not None and tasks is not None, why
        fast = profile(df, label="label")
        assert _dump(fast) == _dump(profile(df.repartition(3), label="label"))
        assert fast.rows == 5000 and fast.columns["ts"].count == 5000 - 400 - 600
        assert fast.columns["ts"].min < -6e10 and fast.columns["ts"].max > 2e11
    # By hand: 1969-12-31 23:59:59.999999 and 00:00:01.5 UTC, the midnight of 1969-12-31.
    pq.write_table(pa.table({"ts": pa.array([-1, 1_500_000], pa.timestamp("us", tz="UTC")),
                             "d": pa.array([-1, None], pa.date32())}), tmp_path / "hand.parquet")
    hand = profile(spark.read.parquet(str(tmp_path / "hand.parquet")))
    assert (hand.columns["ts"].min, hand.columns["ts"].max, hand.columns["d"].min) == (-1e-06, 1.5, -86400.0)


@contextmanager
def _conf(spark, key: str, value: str):
    """`key` set to `value`, then back to the session's own value (unset would give Spark's default)."""
    before = spark.conf.get(key)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        spark.conf.set(key, before)


def test_what_the_parquet_path_leaves_to_spark_among_dates_and_timestamps(spark, tmp_path):
    table = _times(5, 500)
    pq.write_table(table, tmp_path / "times.parquet")
    df = spark.read.parquet(str(tmp_path / "times.parquet"))
    # A local-time zone: cast(date | timestamp_ntz as timestamp) adds its offset; an instant does not.
    with _conf(spark, "spark.sql.session.timeZone", "America/New_York"):
        assert "session time zone America/New_York" in _paths(df, text=())[1]
        instants = df.select("ts", "ts_ms", "ts_ny", "label")
        assert _paths(instants, text=())[2] is not None
        assert _dump(profile(instants, label="label")) == _dump(profile(instants.repartition(2), label="label"))
    # A file without a Spark version under a LEGACY (or EXCEPTION) rebase mode: Spark may rebase.
    with _conf(spark, "spark.sql.parquet.datetimeRebaseModeInRead", "LEGACY"):
        assert "not written by Spark and the datetime rebase mode is LEGACY" in _paths(df, text=())[1]
    legacy = spark.read.option("datetimeRebaseMode", "EXCEPTION").parquet(str(tmp_path / "times.parquet"))
    assert "rebase mode is EXCEPTION" in _paths(legacy, text=())[1]
    # Spark's files in the hybrid Julian calendar (legacy marker) and INT96 timestamps: Spark's path.
    for conf, value, path in (("datetimeRebaseModeInWrite", "LEGACY", "julian"), ("outputTimestampType", "INT96", "int96")):
        with _conf(spark, f"spark.sql.parquet.{conf}", value):
            df.write.parquet(str(tmp_path / path))
    julian = spark.read.parquet(str(tmp_path / "julian"))
    assert "legacy hybrid calendar" in _paths(julian, text=())[1]
    int96 = spark.read.parquet(str(tmp_path / "int96")).select("ts", "label")
    source, why, tasks = _paths(int96, text=())
    assert tasks is None and "stores 'ts' as timestamp[ns]" in why
    for spark_path in (julian, int96):
        assert _dump(profile(spark_path, label="label")) == _dump(profile(df.select(*spark_path.columns), label="label"))


def test_the_demo_input_as_parquet_takes_the_parquet_path_with_its_timestamp(spark, tmp_path, caplog):
    """conf/demo.yaml's rows (event_time: timestamp) written as Parquet, read as `validate` and
    `prepare` read their input: the Parquet path, with the Spark path's stats."""
    data = str(tmp_path / "demo")
    config = load_config(ROOT / "conf/demo.yaml", ["generate.format=parquet", f"generate.path={data}",
                                                   "generate.rows=3000", "input.format=parquet", f"input.paths=[{data}]"])
    write_generated(spark, config.generate)
    df = typed_input(spark, config.input)
    assert dict(df.dtypes)["event_time"] == "timestamp"
    with caplog.at_level(logging.INFO, logger="sparkprep.quality.profile"):
        fast = profile_frame(df, config.columns)
    assert "profile: Parquet path" in caplog.text
    assert fast.columns["event_time"].kind == "numeric" and fast.columns["event_time"].min >= 1_700_000_000
    assert _dump(fast) == _dump(profile_frame(df.repartition(3), config.columns))
