"""Where accepted events go: the sink interface, and its in-memory twin.

The API hands every accepted request to an ``EventSink`` and answers 202 only once ``publish``
returned. In production the sink is ``api.producer.KafkaSink``; in embedded mode the composition
root (``flywheel.shell.cli``) passes a sink that runs the ingest pipeline in-process.
``MemorySink`` is the twin for unit tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flywheel.errors import SinkUnavailableError
from ingest.contract import EncodedEvent

__all__ = ["EncodedEvent", "EventSink", "MemorySink"]


class EventSink(Protocol):
    """Durably accepts validated events; raises ``SinkUnavailableError`` when it cannot."""

    async def publish(self, events: Sequence[EncodedEvent]) -> None:
        """Return only once every event is durably stored (all or nothing for the client)."""
        ...

    async def readiness(self) -> str | None:
        """None if ``publish`` is expected to succeed now, else why not (for people)."""
        ...

    def close(self) -> None:
        """Flush and release connections."""
        ...


@dataclass
class MemorySink:
    """Keeps published events in a list; can be told to fail, like a broker that is down."""

    events: list[EncodedEvent] = field(default_factory=list)
    available: bool = True
    delay_s: float = 0.0

    async def publish(self, events: Sequence[EncodedEvent]) -> None:
        """Append the events, or raise as an unreachable broker would."""
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if not self.available:
            raise SinkUnavailableError("the event sink is unavailable", retry_after_s=1)
        self.events.extend(events)

    async def readiness(self) -> str | None:
        """None while the sink accepts events."""
        return None if self.available else "the event sink is unavailable"

    def close(self) -> None:
        """Nothing to release."""


class CachedReadiness:
    """A sink's readiness, asked at most once per ``max_age_s`` and never twice at a time.

    Load balancers probe every second or so from several places; each probe of a Kafka sink is
    a round trip to the broker, so concurrent and frequent probes share one answer.
    """

    def __init__(self, sink: EventSink, *, max_age_s: float, timeout_s: float) -> None:
        self._sink = sink
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._answer: str | None = None
        self._asked_at = float("-inf")
        self._lock = asyncio.Lock()

    async def reason(self) -> str | None:
        """None when ready, else why not."""
        async with self._lock:
            if time.monotonic() - self._asked_at >= self._max_age_s:
                try:
                    async with asyncio.timeout(self._timeout_s):
                        self._answer = await self._sink.readiness()
                except TimeoutError:
                    self._answer = f"the event sink did not answer within {self._timeout_s:g} s"
                self._asked_at = time.monotonic()
            return self._answer
