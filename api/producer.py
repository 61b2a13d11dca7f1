"""The Kafka sink: produces accepted events to the events topic and waits for the broker's ack.

kafka-python's producer is thread-based: ``send`` queues a record and returns a future that the
sender thread completes when the broker acknowledged it (``acks=all``, idempotent). ``KafkaSink``
calls ``send`` in a worker thread (it can block on metadata while the broker is down) and bridges
the futures to asyncio, so the event loop never blocks and concurrent requests share batches.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from api.sink import EncodedEvent
from flywheel import kafka
from flywheel.errors import FlywheelError, SinkUnavailableError
from flywheel.settings import KafkaSettings

HEADERS = [("content-type", b"application/json"), ("schema-version", b"1")]


class KafkaSink:
    """An ``EventSink`` backed by a durable kafka-python producer, created on first use."""

    def __init__(self, settings: KafkaSettings, *, producer_factory: Any = None) -> None:
        self._settings = settings
        self._factory = producer_factory
        self._producer: Any = None
        self._lock = threading.Lock()

    @property
    def topic(self) -> str:
        """The events topic."""
        return self._settings.events_topic

    def producer(self) -> Any:
        """The producer, built (and checked to be durable) on first use; raises if unreachable."""
        with self._lock:
            if self._producer is None:
                factory = self._factory
                if factory is None:
                    from kafka import KafkaProducer

                    factory = KafkaProducer
                config = kafka.producer_config(self._settings, client_suffix="api")
                try:
                    producer = factory(**config)
                except Exception as exc:
                    raise kafka.translate(exc, action="produce", topic=self.topic) from None
                kafka.check_durable(producer)
                self._producer = producer
            return self._producer

    def _send_all(self, events: Sequence[EncodedEvent]) -> list[Any]:
        producer = self.producer()
        futures = []
        try:
            for event in events:
                futures.append(
                    producer.send(self.topic, key=event.key, value=event.value, headers=HEADERS)
                )
        except Exception as exc:
            raise kafka.translate(exc, action="produce", topic=self.topic) from None
        return futures

    async def publish(self, events: Sequence[EncodedEvent]) -> None:
        """Produce every event and return once the broker acknowledged all of them."""
        loop = asyncio.get_running_loop()
        futures = await asyncio.to_thread(self._send_all, events)
        waiters = [_as_asyncio(loop, future) for future in futures]
        try:
            await asyncio.wait_for(asyncio.gather(*waiters), self._settings.produce_timeout_s)
        except TimeoutError:
            raise SinkUnavailableError(
                f"Kafka did not acknowledge {len(events)} events on topic {self.topic} "
                f"within {self._settings.produce_timeout_s:g}s"
            ) from None
        except FlywheelError:
            raise
        except Exception as exc:
            raise kafka.translate(exc, action="produce", topic=self.topic) from None

    async def ready(self) -> bool:
        """True if the broker answers a metadata request for the events topic."""

        def probe() -> bool:
            producer = self.producer()
            return bool(producer.partitions_for(self.topic))

        try:
            return await asyncio.wait_for(
                asyncio.to_thread(probe), self._settings.produce_timeout_s
            )
        except Exception:
            return False

    def close(self) -> None:
        """Flush what is queued and close the connections."""
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


def _as_asyncio(loop: asyncio.AbstractEventLoop, future: Any) -> asyncio.Future[Any]:
    """Complete an asyncio future when a kafka-python future completes (in the sender thread)."""
    waiter: asyncio.Future[Any] = loop.create_future()

    def settle(setter: str, value: Any) -> None:
        if not waiter.done():
            getattr(waiter, setter)(value)

    def from_sender_thread(setter: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(settle, setter, value)
        except RuntimeError:
            pass  # the loop closed (shutdown); nobody is waiting any more

    future.add_callback(lambda metadata: from_sender_thread("set_result", metadata))
    future.add_errback(lambda exc: from_sender_thread("set_exception", exc))
    return waiter
