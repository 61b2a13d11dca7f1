"""What became of events: dropped events with their reasons, results of ``send``, counters.

The client never raises for an event it could not deliver; it drops the event and says why:

    DropReason
    ├── rejected           the API found the event invalid (``errors`` say where and why)
    ├── refused            the API refused the request the event was in (a wrong key, a body it
    │                      would not read, or a batch-mate it found invalid without partial
    │                      acceptance); sending it again unchanged fails again
    ├── retries_exhausted  the API stayed unreachable or busy for every retry
    ├── too_large          the event alone is over ``max_event_bytes``; it was never sent
    ├── queue_full         the queue was full when the event was added; it was never sent
    └── closed             the client was closed before the event could be delivered

A dropped event's ``str`` and ``repr`` carry its id, the reason and the API's error paths, never
the event's text or user id, so they are safe to log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DropReason = Literal[
    "rejected", "refused", "retries_exhausted", "too_large", "queue_full", "closed"
]
"""Why an event was dropped (the module docstring explains each)."""


@dataclass(frozen=True, slots=True)
class EventError:
    """One reason the API gave for refusing an event: where, what kind, and a message that
    never quotes the event."""

    path: str
    """The field, e.g. ``prompt[0].role``; ``(body)`` or ``events`` for the request as a whole."""
    type: str
    """The kind of error, e.g. ``missing``, ``literal_error``, ``event_type_not_allowed``."""
    message: str
    """What is wrong, in words."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message} ({self.type})"


@dataclass(frozen=True, slots=True)
class DroppedEvent:
    """An event the client gave up on, and why."""

    event_id: str
    """The event's id (its ``event_id`` field)."""
    reason: DropReason
    """Why it was dropped."""
    message: str
    """What happened, in words; never the event's text."""
    status_code: int | None = None
    """The API's last HTTP status for it, if it answered at all."""
    errors: tuple[EventError, ...] = ()
    """The API's reasons, for ``rejected`` events (and batch-wide ones for ``refused``)."""
    event: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The event as it was queued, to fix and send again; left out of ``repr`` (it holds the
    user's text and id)."""

    def __str__(self) -> str:
        status = f", HTTP {self.status_code}" if self.status_code is not None else ""
        details = "; ".join(str(error) for error in self.errors)
        return f"event {self.event_id} dropped ({self.reason}{status}): " + (
            details or self.message
        )


@dataclass(frozen=True, slots=True)
class SendResult:
    """What ``send`` did with its events."""

    accepted: list[str]
    """Ids of the events the API stored, in the order given."""
    dropped: list[DroppedEvent]
    """The events it did not store, with the reasons."""
    retries: int = 0
    """How many requests were sent again after a network error or a busy answer."""


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters since the client was made (a snapshot)."""

    queued: int
    """Events waiting in the queue or in the batch being sent now."""
    accepted: int
    """Events the API stored."""
    dropped: int
    """Events dropped, for any reason (each was reported to ``on_error``, or returned by
    ``send``)."""
    retries: int
    """Requests sent again after a network error or a busy answer."""
