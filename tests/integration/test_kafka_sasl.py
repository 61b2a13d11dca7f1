"""Kafka over TLS with SASL, against a real broker that serves only SASL_SSL: events flow from
the API to the lake, and a wrong password or an untrusted certificate is one clear line (CLI),
a 503 (API), and nothing lands. The password never shows in logs, errors or metrics."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from api.producer import KafkaSink
from api.server import running_api
from flywheel.errors import KafkaAuthError
from flywheel.kafka import create_topics, security_config
from flywheel.settings import KafkaSettings, Settings, load_settings
from privacy.keys import create_keyring
from tests.factories import WRITE_KEY, make_event
from tests.integration.kafka_tools import SaslBroker, kafka_env, lake_frame, worker_env

AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}
WRONG_PASSWORD = "not-the-password-4711"


def api_settings(kafka: KafkaSettings) -> Settings:
    return load_settings(api={"write_keys": [WRITE_KEY]}, kafka=kafka.model_dump())


def flywheel(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the ``flywheel`` command with only ``env``'s FLYWHEEL_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    return subprocess.run(
        [sys.executable, "-m", "flywheel", *args], env={**base, **env}, capture_output=True,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def wrong_password(broker: SaslBroker) -> KafkaSettings:
    return broker.settings(sasl_password=WRONG_PASSWORD, sasl_password_file=None)


def untrusted(broker: SaslBroker) -> KafkaSettings:
    return broker.settings(ssl_cafile=broker.untrusted_ca)


def topic_size(broker: SaslBroker, settings: KafkaSettings) -> int:
    """How many records the events topic holds, read with the right credentials."""
    good = broker.settings(events_topic=settings.events_topic)
    consumer = KafkaConsumer(
        bootstrap_servers=good.bootstrap_servers, **security_config(good, client="consumer")
    )
    try:
        partitions = consumer.partitions_for_topic(good.events_topic) or set()
        ends = consumer.end_offsets([TopicPartition(good.events_topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        consumer.close()


def assert_no_secret(broker: SaslBroker, *texts: str) -> None:
    for text in texts:
        assert broker.password not in text
        assert WRONG_PASSWORD not in text


def test_events_posted_over_http_reach_the_lake_through_sasl_ssl(
    sasl_broker: SaslBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every library's log, to look for the password in
    settings = sasl_broker.settings()
    init = flywheel("kafka", "init", env=kafka_env(settings))
    assert init.returncode == 0, init.stderr
    assert f"{settings.events_topic}: created (2 partitions)" in init.stdout

    events = [make_event(conversation_id=f"conv-{i % 7}") for i in range(120)]
    sink = KafkaSink(settings)
    with running_api(api_settings(settings), sink) as url, httpx.Client(timeout=30) as client:
        ready = client.get(f"{url}/readyz")
        deadline = time.monotonic() + 20
        while ready.status_code != 200 and time.monotonic() < deadline:
            # The topic was just created: the broker may not list its partitions yet.
            time.sleep(0.5)
            ready = client.get(f"{url}/readyz")
        assert ready.status_code == 200, ready.text
        for start in range(0, len(events), 40):
            batch = events[start : start + 40]
            response = client.post(f"{url}/v1/events", json={"events": batch}, headers=AUTH)
            assert response.status_code == 202, response.text
        metrics = client.get(f"{url}/metrics").text
    sink.close()
    assert topic_size(sasl_broker, settings) == len(events)

    data_dir = tmp_path / "data"
    key_file = tmp_path / "keys.json"
    create_keyring(key_file)
    env = worker_env(settings, data_dir, key_file)
    worker = subprocess.run(
        [sys.executable, "-m", "flywheel", "ingest", "--idle-exit", "4"], env=env,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr[-3000:]
    landed = lake_frame(data_dir)["event_id"].to_list()
    assert sorted(landed) == sorted(e["event_id"] for e in events)

    assert_no_secret(sasl_broker, init.stdout, init.stderr, worker.stdout, worker.stderr, metrics,
                     caplog.text, str(settings), repr(settings))  # fmt: skip


def test_the_admin_user_signs_in_with_plain(sasl_broker: SaslBroker) -> None:
    settings = sasl_broker.state.admin_settings(events_topic="test.sasl.plain")
    assert settings.sasl_mechanism == "PLAIN"
    assert create_topics(settings)["test.sasl.plain"] in {"created", "exists"}


@pytest.mark.parametrize(
    ("command", "timeout"), [(("kafka", "init"), 60), (("ingest", "--idle-exit", "30"), 60)]
)
def test_a_wrong_password_is_one_line_and_exit_3(
    sasl_broker: SaslBroker, tmp_path: Path, command: tuple[str, ...], timeout: float
) -> None:
    settings = wrong_password(sasl_broker)
    create_topics(sasl_broker.settings(events_topic=settings.events_topic))
    data_dir = tmp_path / "data"
    key_file = tmp_path / "keys.json"
    create_keyring(key_file)
    env = {**worker_env(settings, data_dir, key_file), "FLYWHEEL_LOG_LEVEL": "DEBUG"}
    started = time.monotonic()
    result = flywheel(*command, env=env, timeout=timeout)
    assert result.returncode == 3, result.stderr[-3000:]
    [line] = error_lines(result.stderr)
    assert "Kafka refused the sign-in of user flywheel-app (SCRAM-SHA-512)" in line
    assert "invalid credentials" in line
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 30  # stopped on the refusal, not on --idle-exit
    assert_no_secret(sasl_broker, result.stdout, result.stderr)
    assert not list(data_dir.rglob("*.parquet"))


def test_an_untrusted_certificate_is_one_line_and_exit_3(sasl_broker: SaslBroker) -> None:
    result = flywheel("kafka", "init", env=kafka_env(untrusted(sasl_broker)))
    assert result.returncode == 3, result.stderr[-3000:]
    [line] = error_lines(result.stderr)
    assert "TLS with the Kafka brokers failed" in line
    assert "certificate verify failed" in line
    assert "FLYWHEEL_KAFKA__SSL_CAFILE" in line
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("broken", [wrong_password, untrusted], ids=["password", "certificate"])
def test_the_api_answers_503_and_nothing_lands_when_kafka_refuses_it(
    sasl_broker: SaslBroker,
    broken: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = broken(sasl_broker)
    create_topics(sasl_broker.settings(events_topic=settings.events_topic))
    sink = KafkaSink(settings)
    events = [make_event() for _ in range(5)]
    with running_api(api_settings(settings), sink) as url, httpx.Client(timeout=60) as client:
        first = client.post(f"{url}/v1/events", json={"events": events}, headers=AUTH)
        started = time.monotonic()
        again = client.post(f"{url}/v1/events", json={"events": events}, headers=AUTH)
        answered_again_s = time.monotonic() - started
        ready = client.get(f"{url}/readyz")
        metrics = client.get(f"{url}/metrics").text
    for response in (first, again):
        assert response.status_code == 503
        assert response.json()["error"] == "unavailable"
        assert response.headers["Retry-After"] == "30"
        assert "flywheel-app" not in response.text  # the operators' business, not the client's
    assert answered_again_s < 2  # the refusal is remembered, not waited for again
    assert ready.status_code == 503
    assert "refused the sign-in" in ready.text or "TLS with the Kafka brokers failed" in ready.text
    assert topic_size(sasl_broker, settings) == 0
    assert_no_secret(sasl_broker, first.text, ready.text, metrics, caplog.text)


def test_the_refusal_names_the_user_and_never_the_password(sasl_broker: SaslBroker) -> None:
    settings = wrong_password(sasl_broker)
    sink = KafkaSink(settings)
    with pytest.raises(KafkaAuthError) as raised:
        sink.producer()
    assert "flywheel-app" in str(raised.value)
    assert_no_secret(sasl_broker, str(raised.value), repr(raised.value), repr(settings))
