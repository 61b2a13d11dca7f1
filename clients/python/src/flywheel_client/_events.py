"""Events of contract v1 as JSON-ready dicts: the envelope, one builder per type, and encoding.

The builders check what a caller can get wrong at the call (a naive time, metadata that is not
flat, a copy with neither text nor span) and raise ``ValueError`` or ``TypeError`` there; every
other rule of the contract is the API's to check, and an event it refuses is reported to the
client's error callback.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired, TypedDict

SCHEMA_VERSION = 1
_ENVELOPE = ("event_id", "occurred_at", "app", "schema_version")
# One encoder for every event: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

Scalar = str | int | float | bool | None
"""A metadata value: a JSON string, number, boolean or null."""

Choice = Literal["a", "b", "tie", "both_bad"]
"""An A/B choice: the left (or first) response, the right one, a tie, or both bad."""


class App(TypedDict):
    """The application the events come from: ``{"name": "chat-api", "version": "1.4.0"}``."""

    name: str
    version: str


class Consent(TypedDict):
    """The user's training consent; an event without it never changes a dataset."""

    training: bool
    policy_version: NotRequired[str | None]


def new_event_id() -> str:
    """A fresh event id: a random UUID (version 4), the event's idempotency key."""
    return str(uuid.uuid4())


def utc_timestamp(when: datetime | None = None) -> str:
    """``when`` (default: now) as RFC 3339 in UTC with milliseconds, e.g.
    ``2026-01-05T09:00:00.000Z``; a naive datetime is refused (its zone is unknown)."""
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("occurred_at must carry a timezone (e.g. datetime.now(UTC))")
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_metadata(metadata: Mapping[str, Scalar]) -> dict[str, Scalar]:
    """A copy of ``metadata`` if it is flat: string keys, scalar values (no lists or objects)."""
    checked: dict[str, Scalar] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be strings, not {type(key).__name__}")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise TypeError(
                f"metadata[{key!r}] must be a string, number, boolean or None, "
                f"not {type(value).__name__}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metadata[{key!r}] must be a finite number")
        checked[key] = value
    return checked


def envelope(
    type_: str,
    *,
    app: App,
    user_id: str,
    conversation_id: str,
    consent: Consent | None,
    metadata: Mapping[str, Scalar] | None,
    occurred_at: datetime | None,
    event_id: str | None,
) -> dict[str, Any]:
    """The fields every event carries; optional ones only when given."""
    event: dict[str, Any] = {
        "event_id": event_id or new_event_id(),
        "type": type_,
        "occurred_at": utc_timestamp(occurred_at),
        "user_id": user_id,
        "conversation_id": conversation_id,
        "app": dict(app),
        "schema_version": SCHEMA_VERSION,
    }
    if consent is not None:
        event["consent"] = dict(consent)
    if metadata is not None:
        event["metadata"] = check_metadata(metadata)
    return event


def prompt_messages(prompt: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The prompt as a list of plain dicts, as given: ``role`` and ``content`` (a string, or
    OpenAI-style content parts such as ``[{"type": "text", "text": "..."}]``), and optionally
    ``tool_calls`` (assistant), ``tool_call_id`` (tool) and ``response_id`` (assistant)."""
    if isinstance(prompt, str | bytes) or not prompt:
        raise ValueError("prompt must be a non-empty list of messages")
    messages = []
    for index, message in enumerate(prompt):
        if not isinstance(message, Mapping) or "role" not in message:
            raise ValueError(f"prompt[{index}] must be a message with a role and content")
        messages.append(dict(message))
    return messages


def complete(event: Mapping[str, Any], *, app: App) -> dict[str, Any]:
    """The caller-built event with what it lacks of the envelope filled in (a new ``event_id``,
    ``occurred_at`` now, the client's ``app``, the schema version), in a copy if anything is
    lacking; the caller's event is never changed."""
    if not isinstance(event, Mapping):
        raise TypeError(f"an event is a mapping, not {type(event).__name__}")
    if isinstance(event, dict) and all(name in event for name in _ENVELOPE):
        return event  # complete already, and never changed: no copy
    filled = dict(event)
    if "event_id" not in filled:
        filled["event_id"] = new_event_id()
    if "occurred_at" not in filled:
        filled["occurred_at"] = utc_timestamp()
    if "app" not in filled:
        filled["app"] = dict(app)
    if "schema_version" not in filled:
        filled["schema_version"] = SCHEMA_VERSION
    return filled


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """An event completed and encoded once (``Client.prepare``), ready to queue or send, as
    often as needed: the id, the event, and the JSON that is sent."""

    event_id: str
    event: dict[str, Any] = field(repr=False)
    """The event; left out of ``repr`` (it holds the user's text and id)."""
    data: bytes = field(repr=False)
    """The event as compact UTF-8 JSON."""


def prepare(event: Mapping[str, Any] | PreparedEvent, *, app: App) -> PreparedEvent:
    """``event`` completed (``complete``, with ``app`` where it has none) and encoded once, for
    any client's ``track`` or ``send``; a prepared event is returned as it is."""
    if isinstance(event, PreparedEvent):
        return event
    filled = complete(event, app=app)
    return PreparedEvent(str(filled["event_id"]), filled, encode(filled))


def encode(event: Mapping[str, Any]) -> bytes:
    """The event as compact UTF-8 JSON, the form it is sent in; ``TypeError`` or ``ValueError``
    for a value JSON cannot carry (a datetime, NaN)."""
    return _ENCODER.encode(event).encode()
