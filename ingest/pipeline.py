"""Validate, anonymise and flatten one micro-batch of raw messages into a lake frame.

The same code serves the Kafka workers (``ingest.worker``) and embedded mode
(``ingest.embedded``). It never touches Kafka or the disk: it takes raw messages and returns
the frame to land, the dead letters to send and how many duplicates it dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ingest.anonymiser import Anonymised, Anonymiser
from ingest.contract import EVENT_ADAPTER, Event, error_details

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as read from the events topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that can never land, and why (the reason names fields, never their values)."""

    message: RawMessage
    error_type: str
    """``not_json``, ``contract`` or ``oversize``."""
    reason: str


class DedupeWindow:
    """The ids of the newest ``capacity`` landed events of one partition, to drop client resends."""

    def __init__(self, capacity: int, ids: Sequence[str] = ()) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        for event_id in ids:
            self.add(event_id)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, event_id: str) -> None:
        """Remember an id, forgetting the oldest beyond capacity."""
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)


@dataclass
class ProcessedBatch:
    """What one micro-batch becomes."""

    first_offset: int
    last_offset: int
    rows: list[Anonymised] = field(default_factory=list)
    sources: list[RawMessage] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0

    @property
    def event_ids(self) -> list[str]:
        """Ids of the events that will land, in offset order."""
        return [str(row.event.event_id) for row in self.rows]


class Pipeline:
    """Validation, dedupe and anonymisation of raw messages (pure: no I/O)."""

    def __init__(self, anonymiser: Anonymiser | None, *, max_event_bytes: int) -> None:
        self.anonymiser = anonymiser
        self.max_event_bytes = max_event_bytes

    def decode(self, message: RawMessage) -> Event | DeadLetter:
        """The message's event, or the dead letter saying why there is none."""
        value = message.value
        if value is None:
            return DeadLetter(message, "not_json", "the message has no value (a tombstone)")
        if len(value) > self.max_event_bytes:
            return DeadLetter(
                message, "oversize", f"{len(value)} bytes; the limit is {self.max_event_bytes}"
            )
        try:
            return EVENT_ADAPTER.validate_json(value)
        except ValidationError as exc:
            details = error_details(exc)
            if any(d["type"] == "json_invalid" for d in details):
                return DeadLetter(message, "not_json", "the value is not valid JSON")
            reason = "; ".join(f"{d['path']}: {d['message']}" for d in details[:10])
            return DeadLetter(message, "contract", reason)

    def process(self, messages: Sequence[RawMessage], window: DedupeWindow) -> ProcessedBatch:
        """Validate, drop duplicates and anonymise a batch of one partition, in offset order."""
        batch = ProcessedBatch(first_offset=messages[0].offset, last_offset=messages[-1].offset)
        in_batch: set[str] = set()
        for message in messages:
            decoded = self.decode(message)
            if isinstance(decoded, DeadLetter):
                batch.dead_letters.append(decoded)
                continue
            event_id = str(decoded.event_id)
            if event_id in window or event_id in in_batch:
                batch.duplicates += 1
                continue
            in_batch.add(event_id)
            if self.anonymiser is None:
                row = Anonymised(event=decoded, user_pseudonym="", key_version=0)
            else:
                row = self.anonymiser.anonymise(decoded)
            batch.rows.append(row)
            batch.sources.append(message)
        return batch


def to_frame(batch: ProcessedBatch, *, landed_at: datetime | None = None) -> pl.DataFrame:
    """The lake frame of a processed batch (one row per landed event, lake schema)."""
    import polars as pl

    from warehouse.lake import lake_schema

    schema = lake_schema()
    columns: dict[str, list[Any]] = {name: [] for name in schema}
    landed = landed_at or datetime.now(UTC)
    for row, source in zip(batch.rows, batch.sources, strict=True):
        for name, value in _flatten(row).items():
            columns[name].append(value)
        columns["source_topic"].append(source.topic)
        columns["source_partition"].append(source.partition)
        columns["source_offset"].append(source.offset)
        columns["landed_at"].append(landed)
    return pl.DataFrame(columns, schema=schema)


_TYPE_FIELDS = (
    "response_id", "parent_id", "prompt", "response", "model_id", "model_version", "copy_text",
    "copy_span_start", "copy_span_end", "code_block", "edited_text", "new_response_id",
    "response_a_id", "response_b_id", "choice", "rating_value", "rating_reason",
)  # fmt: skip


def _flatten(row: Anonymised) -> dict[str, Any]:
    """One event as a lake row (without the source columns)."""
    event = row.event
    flat: dict[str, Any] = dict.fromkeys(_TYPE_FIELDS)
    flat.update(
        event_id=str(event.event_id),
        type=event.type,
        occurred_at=event.occurred_at.astimezone(UTC),
        user_pseudonym=row.user_pseudonym,
        pseudonym_key_version=row.key_version,
        conversation_id=event.conversation_id,
        app_name=event.app.name,
        app_version=event.app.version,
        consent_training=event.consent.training if event.consent else None,
        consent_policy_version=event.consent.policy_version if event.consent else None,
        schema_version=event.schema_version,
        scrubbed=[{"kind": kind, "count": count} for kind, count in sorted(row.scrubbed.items())],
    )
    if event.type == "generation":
        flat.update(
            response_id=event.response_id,
            parent_id=event.parent_id,
            prompt=[m.model_dump() for m in event.prompt],
            response=event.response,
            model_id=event.model.id,
            model_version=event.model.version,
        )
    elif event.type == "copy":
        flat.update(
            response_id=event.response_id,
            copy_text=event.text,
            copy_span_start=event.span.start if event.span else None,
            copy_span_end=event.span.end if event.span else None,
            code_block=event.code_block,
        )
    elif event.type == "edit":
        flat.update(response_id=event.response_id, edited_text=event.edited_text)
    elif event.type == "regenerate":
        flat.update(response_id=event.response_id, new_response_id=event.new_response_id)
    elif event.type == "ab_choice":
        flat.update(
            response_a_id=event.response_a_id,
            response_b_id=event.response_b_id,
            choice=event.choice,
        )
    else:
        flat.update(
            response_id=event.response_id, rating_value=event.value, rating_reason=event.reason
        )
    return flat
