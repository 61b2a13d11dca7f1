"""The real Kafka brokers for integration tests: one per test session (and a SASL_SSL one for
the tests that ask for ``sasl_broker``).

``FLYWHEEL_TEST_KAFKA_BOOTSTRAP`` names an existing broker to use instead; otherwise the session
starts one with ``flywheel.dev.localkafka`` under ``.test-kafka/`` (its logs stay there after a
failure, in ``.test-kafka/session/logs/server.log``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.dev import localkafka
from flywheel.settings import KafkaSettings
from tests.integration.kafka_tools import SaslBroker

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


@pytest.fixture(scope="session")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    """A broker of the session's own that serves only SASL_SSL (certificates made with keytool,
    a SCRAM user created through the admin API); started on first use."""
    home = KAFKA_HOME / "sasl-session"
    localkafka.stop(home, kill=True)
    shutil.rmtree(home, ignore_errors=True)
    # A small heap: it may run beside the plaintext session broker on a two-core machine.
    state = localkafka.start(home, sasl_ssl=True, heap=("256m", "512m"))
    try:
        secrets_dir = tmp_path_factory.mktemp("sasl-secrets")
        password = "scram-" + secrets.token_urlsafe(18)
        password_file = secrets_dir / "kafka-password"
        password_file.write_text(password + "\n")  # as mounted secrets often end
        localkafka.add_scram_user(state, "flywheel-app", password)
        untrusted = localkafka.make_ca(secrets_dir / "other-ca", name="not-the-brokers-ca")
        yield SaslBroker(
            state=state, username="flywheel-app", password=password,
            password_file=password_file, untrusted_ca=untrusted / "ca.pem",
        )  # fmt: skip
    finally:
        localkafka.stop(home)
