"""The Kafka sink: produces accepted events to the events topic and waits for the broker's ack.

kafka-python's producer is thread-based: ``send`` queues a record and returns a future that the
sender thread completes when the broker acknowledged it (``acks=all``, idempotent). ``KafkaSink``
calls ``send`` in a worker thread (it can block on metadata while the broker is down) and bridges
the futures to asyncio, so the event loop never blocks and concurrent requests share batches.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from api.sink import EncodedEvent
from flywheel import kafka
from flywheel.errors import FlywheelError, KafkaAuthError, SinkUnavailableError
from flywheel.settings import KafkaSettings

HEADERS = [("content-type", b"application/json"), ("schema-version", b"1")]
REFUSAL_MEMORY_S = 10.0
"""For how long a refused sign-in or TLS handshake is answered from memory, without
connecting again (the brokers may be fixed without restarting the API)."""


class KafkaSink:
    """An ``EventSink`` backed by a durable kafka-python producer, created on first use."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        producer_factory: Any = None,
        ready_timeout_s: float = 2.0,
    ) -> None:
        self._settings = settings
        self._ready_timeout_s = ready_timeout_s
        self._factory = producer_factory
        self._producer: Any = None
        self._lock = threading.Lock()
        self._refused: tuple[float, KafkaAuthError] | None = None
        """The brokers' last refusal (credentials, TLS) and when it came: each request would
        otherwise wait the whole bootstrap timeout to learn the same."""

    @property
    def topic(self) -> str:
        """The events topic."""
        return self._settings.events_topic

    def producer(self) -> Any:
        """The producer, built (and checked to be durable) on first use; raises if unreachable."""
        with self._lock:
            if self._producer is None:
                if self._refused is not None:
                    at, refusal = self._refused
                    if time.monotonic() - at < REFUSAL_MEMORY_S:
                        raise refusal
                factory = self._factory
                if factory is None:
                    from kafka import KafkaProducer

                    factory = KafkaProducer
                config = kafka.producer_config(self._settings, client_suffix="api")
                try:
                    producer = factory(**config)
                except Exception as exc:
                    error = kafka.connect_error(
                        exc, self._settings, action="produce", topic=self.topic
                    )
                    if isinstance(error, KafkaAuthError):
                        self._refused = (time.monotonic(), error)
                    raise error from None
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
        try:
            await asyncio.wait_for(
                _all_acknowledged(loop, futures), self._settings.produce_timeout_s
            )
        except TimeoutError:
            raise SinkUnavailableError(
                f"Kafka did not acknowledge {len(events)} events on topic {self.topic} "
                f"within {self._settings.produce_timeout_s:g}s"
            ) from None
        except FlywheelError:
            raise
        except Exception as exc:
            raise kafka.translate(exc, action="produce", topic=self.topic) from None

    async def readiness(self) -> str | None:
        """None if the broker answered a metadata request for the events topic just now.

        A real round trip over the producer's connections: kafka-python's cached metadata
        would call a stopped broker ready.
        """

        def probe() -> None:
            kafka.metadata_round_trip(self.producer(), self.topic, timeout_s=self._ready_timeout_s)

        try:
            await asyncio.to_thread(probe)
        except FlywheelError as exc:
            return str(exc)
        except Exception as exc:
            return str(kafka.translate(exc, action="produce", topic=self.topic))
        return None

    def close(self) -> None:
        """Flush what is queued and close the connections."""
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


def _all_acknowledged(loop: asyncio.AbstractEventLoop, futures: list[Any]) -> asyncio.Future[None]:
    """One asyncio future that completes when every kafka-python future did (or one failed).

    The callbacks run in kafka-python's sender thread; they count down under a lock and wake the
    event loop once, not once per record (a future per record cost a quarter of the loop's time).
    """
    done: asyncio.Future[None] = loop.create_future()
    remaining = len(futures)
    lock = threading.Lock()
    settled = False

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def wake(error: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:
            pass  # the loop closed (shutdown); nobody is waiting any more

    def acknowledged(_metadata: Any) -> None:
        nonlocal remaining, settled
        with lock:
            remaining -= 1
            last = remaining == 0 and not settled
            settled = settled or last
        if last:
            wake(None)

    def failed(error: BaseException) -> None:
        nonlocal settled
        with lock:
            first = not settled
            settled = True
        if first:
            wake(error)

    if not futures:
        done.set_result(None)
    for future in futures:
        future.add_callback(acknowledged)
        future.add_errback(failed)
    return done
