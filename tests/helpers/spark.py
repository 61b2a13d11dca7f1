"""One Spark application for the whole test run (``local[2]``, started on first use, stopped at
the end): the ``spark_settings`` fixture, a plugin of the root conftest. Each run of the
transforms opens a SQL session of its own on it (``transforms.spark.open_session``), so tests on
different lakes and catalogs share the application, not a catalog. Tests that use it are marked
``spark``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flywheel.settings import SparkSettings


@pytest.fixture(scope="session")
def spark_settings() -> Iterator[SparkSettings]:
    """The settings the tests' runs use; the application stops when the test run ends."""
    settings = SparkSettings(master="local[2]", properties={"spark.driver.memory": "2g"})
    yield settings
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
