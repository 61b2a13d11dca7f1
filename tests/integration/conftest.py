"""The real Kafka broker for integration tests: one per test session.

``FLYWHEEL_TEST_KAFKA_BOOTSTRAP`` names an existing broker to use instead; otherwise the session
starts one with ``flywheel.dev.localkafka`` under ``.test-kafka/`` (its logs stay there after a
failure, in ``.test-kafka/session/logs/server.log``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.dev import localkafka
from flywheel.settings import KafkaSettings

EXTERNAL_BOOTSTRAP = os.environ.get("FLYWHEEL_TEST_KAFKA_BOOTSTRAP")
KAFKA_HOME = Path(os.environ.get("FLYWHEEL_TEST_KAFKA_HOME", ".test-kafka")).resolve()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of the session's broker."""
    if EXTERNAL_BOOTSTRAP:
        yield EXTERNAL_BOOTSTRAP
        return
    home = KAFKA_HOME / "session"
    localkafka.stop(home, kill=True)
    shutil.rmtree(home, ignore_errors=True)
    state = localkafka.start(home)
    try:
        yield state.bootstrap_servers
    finally:
        localkafka.stop(home)


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Settings pointing at the session broker, with topics unique to the test."""
    suffix = uuid.uuid4().hex[:8]
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        events_topic=f"test.events.{suffix}",
        dead_letter_topic=f"test.events.{suffix}.dlq",
        partitions=3,
        produce_timeout_s=10,
    )


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Path]:
    """A broker of the test's own, for tests that stop and restart it; yields its home."""
    home = tmp_path / "kafka"
    localkafka.start(home)
    try:
        yield home
    finally:
        localkafka.stop(home, kill=True)
