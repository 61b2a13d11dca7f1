"""KafkaSink with a fake producer: durable settings are pinned and checked, errors translated."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from api.producer import KafkaSink
from api.sink import EncodedEvent
from flywheel.errors import KafkaError, SinkUnavailableError
from flywheel.settings import KafkaSettings

SETTINGS = KafkaSettings(bootstrap_servers="127.0.0.1:1", produce_timeout_s=0.5)


class FakeFuture:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def add_callback(self, fn: Any) -> None:
        if not isinstance(self.outcome, Exception) and self.outcome is not None:
            fn(self.outcome)

    def add_errback(self, fn: Any) -> None:
        if isinstance(self.outcome, Exception):
            fn(self.outcome)


class FakeProducer:
    def __init__(self, outcome: Any = "ack", **config: Any) -> None:
        self.config = {**config, "acks": -1 if config.get("acks") == "all" else config["acks"]}
        self.outcome = outcome
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, *, key: bytes, value: bytes, headers: Any) -> FakeFuture:
        self.sent.append((topic, key, value))
        return FakeFuture(self.outcome)

    def close(self, timeout: float) -> None:
        pass


EVENTS = [EncodedEvent(event_id=__import__("uuid").uuid4(), key=b"c", value=b"{}")]
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_producer_gets_acks_all_and_idempotence_explicitly() -> None:
    seen: dict[str, Any] = {}

    def factory(**config: Any) -> FakeProducer:
        seen.update(config)
        return FakeProducer(**config)

    sink = KafkaSink(SETTINGS, producer_factory=factory)
    await sink.publish(EVENTS)
    assert seen["acks"] == "all"
    assert seen["enable_idempotence"] is True
    assert sink.producer().sent == [(SETTINGS.events_topic, b"c", b"{}")]


async def test_a_producer_that_lost_durability_is_refused() -> None:
    def factory(**config: Any) -> FakeProducer:
        producer = FakeProducer(**config)
        producer.config["enable_idempotence"] = False  # as kafka-python does on conflicts
        return producer

    with pytest.raises(KafkaError, match="not durable"):
        await KafkaSink(SETTINGS, producer_factory=factory).publish(EVENTS)


async def test_unreachable_broker_at_start_is_sink_unavailable() -> None:
    def factory(**config: Any) -> FakeProducer:
        raise KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")

    with pytest.raises(SinkUnavailableError, match="bootstrap"):
        await KafkaSink(SETTINGS, producer_factory=factory).publish(EVENTS)


async def test_failed_delivery_is_sink_unavailable() -> None:
    def factory(**config: Any) -> FakeProducer:
        return FakeProducer(KafkaTimeoutError("Batch expired"), **config)

    with pytest.raises(SinkUnavailableError):
        await KafkaSink(SETTINGS, producer_factory=factory).publish(EVENTS)


async def test_no_ack_in_time_is_sink_unavailable() -> None:
    def factory(**config: Any) -> FakeProducer:
        return FakeProducer(None, **config)  # the future never completes

    with pytest.raises(SinkUnavailableError, match="within 0.5s"):
        await KafkaSink(SETTINGS, producer_factory=factory).publish(EVENTS)
