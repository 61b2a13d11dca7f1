"""Helpers for integration tests: produce raw messages, read the lake, run worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from kafka import KafkaProducer

from flywheel.dev import localkafka
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.kafka import create_topics
from flywheel.settings import KafkaSettings
from privacy.keys import create_keyring
from warehouse.lake import Lake


def produce(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Produce (key, value) pairs and wait until the broker acknowledged all; returns the count."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    count = 0
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
            count += 1
        producer.flush(timeout=120)
    finally:
        producer.close()
    return count


def encoded(events: Iterable[dict[str, Any]]) -> Iterable[tuple[bytes, bytes]]:
    """Simulated events as a frontend's backend would produce them (compact JSON)."""
    for event in events:
        yield event["conversation_id"].encode(), json.dumps(event, separators=(",", ":")).encode()


def lake_frame(data_dir: Path) -> pl.DataFrame:
    """Every landed row of the lake (empty frame if nothing landed)."""
    files = sorted(str(f.path) for f in Lake.in_data_dir(data_dir).files())
    if not files:
        return pl.DataFrame({"event_id": []}, schema={"event_id": pl.String})
    return pl.read_parquet(files)


SECURITY_FIELDS = (
    "security_protocol", "sasl_mechanism", "sasl_username", "sasl_password",
    "sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname",
)  # fmt: skip


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    """``FLYWHEEL_KAFKA__*`` variables for a subprocess: the broker, topics and security."""
    env = {
        "FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers or "",
        "FLYWHEEL_KAFKA__EVENTS_TOPIC": kafka.events_topic,
        "FLYWHEEL_KAFKA__DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        "FLYWHEEL_KAFKA__PARTITIONS": str(kafka.partitions),
    }
    for name in SECURITY_FIELDS:
        value = getattr(kafka, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"FLYWHEEL_KAFKA__{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


def worker_env(
    kafka: KafkaSettings, data_dir: Path, key_file: Path, **extra: str
) -> dict[str, str]:
    """Environment of a ``flywheel ingest`` subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.update(kafka_env(kafka))
    env.update(
        FLYWHEEL_DATA_DIR=str(data_dir),
        FLYWHEEL_PRIVACY__HMAC_KEY_FILE=str(key_file),
        FLYWHEEL_LOG_FORMAT="json",
        **extra,
    )
    return env


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start ``flywheel ingest`` as its own process, appending its output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "flywheel", "ingest", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


@dataclass(frozen=True)
class SaslBroker:
    """The session's SASL_SSL broker and the SCRAM user the tests connect as."""

    state: localkafka.BrokerState
    username: str
    password: str
    password_file: Path
    untrusted_ca: Path
    """A PEM authority that did not sign the broker's certificate."""

    def settings(self, **overrides: object) -> KafkaSettings:
        """SCRAM-SHA-512 over TLS as the test user, with topics unique to the test."""
        suffix = uuid.uuid4().hex[:8]
        fields: dict[str, object] = {
            "bootstrap_servers": self.state.bootstrap_servers,
            "events_topic": f"test.sasl.{suffix}",
            "dead_letter_topic": f"test.sasl.{suffix}.dlq",
            "partitions": 2,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": self.username,
            "sasl_password_file": self.password_file,
            "ssl_cafile": self.state.ca_file,
        }
        return KafkaSettings.model_validate({**fields, **overrides})


def simulated(n: int, seed: int) -> list[dict[str, Any]]:
    return list(simulate(SimulationConfig(events=n, seed=seed)))


def consented(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events that may land: their user consented to training."""
    return [e for e in events if (e.get("consent") or {}).get("training") is True]


def topic_with_events(
    kafka: KafkaSettings, tmp_path: Path, *, events: int, seed: int
) -> tuple[list[dict[str, Any]], Path]:
    """Create the topics, produce simulated events, and write a key file for worker processes."""
    create_topics(kafka)
    key_file = tmp_path / "keys.json"
    create_keyring(key_file)
    produced = simulated(events, seed=seed)
    produce(kafka.bootstrap_servers or "", kafka.events_topic, encoded(produced))
    return produced, key_file
