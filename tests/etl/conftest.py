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
