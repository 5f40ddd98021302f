import itertools

import pytest

from sparkprep.config import SparkConfig
from sparkprep.session import build_session


@pytest.fixture(scope="session")
def spark():
    """One local[2] session with Delta for the whole ETL suite (UI off, few shuffle partitions)."""
    config = SparkConfig(master="local[2]", driver_memory="2g", shuffle_partitions=4,
                         conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                               "spark.sql.adaptive.enabled": "false"})
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
