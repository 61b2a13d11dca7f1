"""Validate, anonymise and flatten one micro-batch of raw messages into a lake frame.

The same code serves the Kafka workers (``ingest.worker``) and embedded mode
(``ingest.embedded``). It never touches Kafka or the disk: it takes raw messages and returns
the frame to land, the dead letters to send and how many duplicates it dropped.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from flywheel.errors import ContractError
from flywheel.settings import Settings
from ingest.anonymiser import Anonymiser, scrubbed_type
from ingest.contract import (
    MAX_TEXT_CHARS,
    Event,
    canonical_metadata,
    parse_event_json,
    uses_extensions,
)
from ingest.fastcheck import check
from privacy.suppression import SuppressionList, suppression_file
from warehouse.lake import Lake, lake_columns

if TYPE_CHECKING:
    import polars as pl

    from privacy.keys import Keyring


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as read from the events topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


ERROR_TYPES = ("not_json", "contract", "oversize", "unstorable")
"""Why a message was dead-lettered (``DeadLetter.error_type``)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that can never land, and why (the reason names fields, never their values)."""

    message: RawMessage
    error_type: str
    """``not_json``, ``contract``, ``oversize`` or ``unstorable``."""
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
    """What one micro-batch becomes: the messages to land, the dead letters, the duplicates."""

    first_offset: int
    last_offset: int
    kept: list[RawMessage] = field(default_factory=list)
    """Valid, new messages, in offset order."""
    event_ids: list[str] = field(default_factory=list)
    """Their event ids (canonical lower-case UUIDs), in the same order."""
    extended: list[bool] = field(default_factory=list)
    """Whether each uses metadata, content parts or tool calls, in the same order (unknown when
    the list is not as long as ``kept``: ``flatten`` then looks for itself)."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    without_consent: int = 0
    """Events dropped because their user did not consent to training."""
    suppressed: int = 0
    """Events dropped because their user was erased (set by ``Pipeline.frame``)."""


class Pipeline:
    """Validation, dedupe and anonymisation of raw messages (pure: no I/O)."""

    def __init__(
        self,
        anonymiser: Anonymiser | None,
        *,
        max_event_bytes: int,
        max_text_chars: int = MAX_TEXT_CHARS,
        drop_without_consent: bool = True,
        suppression: SuppressionList | None = None,
    ) -> None:
        self.anonymiser = anonymiser
        self.max_event_bytes = max_event_bytes
        self.max_text_chars = max_text_chars
        self.drop_without_consent = drop_without_consent
        self.suppression = suppression

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
            return parse_event_json(value, max_text_chars=self.max_text_chars)
        except ContractError as exc:
            reason = "; ".join(f"{d['path']}: {d['message']}" for d in exc.errors[:10])
            return DeadLetter(message, "contract", reason)
        except ValueError:
            return DeadLetter(message, "not_json", "the value is not valid JSON")

    def process(self, messages: Sequence[RawMessage], window: DedupeWindow) -> ProcessedBatch:
        """Validate, drop duplicates (and events without consent) in a batch of one partition."""
        batch = ProcessedBatch(first_offset=messages[0].offset, last_offset=messages[-1].offset)
        in_batch: set[str] = set()
        limit = self.max_event_bytes
        for message in messages:
            value = message.value
            # The native pass settles the common case; the contract decides everything else.
            checked = (
                check(value, max_text_chars=self.max_text_chars)
                if value is not None and len(value) <= limit
                else None
            )
            if checked is not None:
                event_id, consent, extended = checked
            else:
                decoded = self.decode(message)
                if isinstance(decoded, DeadLetter):
                    batch.dead_letters.append(decoded)
                    continue
                event_id = str(decoded.event_id)
                consent = bool(decoded.consent and decoded.consent["training"])
                extended = uses_extensions(decoded)
            if event_id in window or event_id in in_batch:
                batch.duplicates += 1
                continue
            # No consent recorded counts as no consent: training use needs a yes.
            if self.drop_without_consent and not consent:
                batch.without_consent += 1
                continue
            in_batch.add(event_id)
            batch.kept.append(message)
            batch.event_ids.append(event_id)
            batch.extended.append(extended)
        return batch

    def frame_or_dead_letter(
        self, batch: ProcessedBatch, *, landed_at: datetime | None = None
    ) -> pl.DataFrame:
        """``frame``, but an event the contract accepts and the lake's columns cannot hold
        (``schema_version: 1.0``, an integer beyond 64 bits) does not fail the whole batch for
        ever: the batch is framed event by event and those events become dead letters
        (``unstorable``), removed from ``batch``; the rest land."""
        try:
            return self.frame(batch, landed_at=landed_at)
        except Exception:  # noqa: BLE001 - any reader error: find the events that cause it
            pass
        kept, ids, extended = [], [], []
        flags = (
            batch.extended if len(batch.extended) == len(batch.kept) else [True] * len(batch.kept)
        )
        for message, event_id, flag in zip(batch.kept, batch.event_ids, flags, strict=True):
            single = ProcessedBatch(message.offset, message.offset, [message], [event_id], [flag])
            try:
                self.frame(single, landed_at=landed_at)
            except Exception as exc:  # noqa: BLE001
                # The reader's message may quote the value; the reason names only the error.
                reason = ("the event passed the contract but a value does not fit the lake's "
                          f"column types ({type(exc).__name__})")  # fmt: skip
                batch.dead_letters.append(DeadLetter(message, "unstorable", reason))
                continue
            kept.append(message)
            ids.append(event_id)
            extended.append(flag)
        batch.kept, batch.event_ids, batch.extended = kept, ids, extended
        return self.frame(batch, landed_at=landed_at)

    def frame(self, batch: ProcessedBatch, *, landed_at: datetime | None = None) -> pl.DataFrame:
        """The anonymised lake frame of a processed batch (one row per kept event)."""
        import polars as pl

        known = len(batch.extended) == len(batch.kept)
        frame = flatten(batch.kept, extended=batch.extended if known else None)
        if self.anonymiser is not None:
            frame = self.anonymiser.anonymise(frame)
        else:
            frame = frame.drop("user_id").with_columns(
                user_pseudonym=pl.lit(None, pl.String),
                pseudonym_key_version=pl.lit(None, pl.Int32),
                scrubbed=pl.lit([], scrubbed_type()),
            )
        landed = landed_at or datetime.now(UTC)
        frame = frame.with_columns(
            source_topic=pl.lit(batch.kept[0].topic if batch.kept else "", pl.String),
            source_partition=pl.lit(batch.kept[0].partition if batch.kept else 0, pl.Int32),
            source_offset=pl.Series([m.offset for m in batch.kept], dtype=pl.Int64),
            landed_at=pl.lit(landed, pl.Datetime("us", "UTC")),
        )
        suppressed = self.suppression.current() if self.suppression is not None else frozenset()
        if suppressed:
            # Erased users' pseudonyms: their events never land again.
            erased = pl.col("user_pseudonym").is_in(suppressed).fill_null(False)
            batch.suppressed = int(frame.select(erased.sum()).item())
            if batch.suppressed:
                frame = frame.filter(~erased)
        return frame.select(lake_columns())


LATE_SUFFIX = ".suppressing"
"""Added to a temporary batch's name while it is rewritten without users erased since it was
written (so a crash leaves a file ``Lake.remove_temporary_files`` finds)."""


def rename_batch(
    lake: Lake, suppression: SuppressionList | None, temporary: Path, final: Path,
    pseudonyms: frozenset[str],
) -> int:  # fmt: skip
    """Land a written batch (of users ``pseudonyms``) under its final name in the lake
    (``Lake.place``: renamed, or uploaded), without the events of users erased since it was
    prepared; returns how many events that removed. The caller makes it durable
    (``Lake.sync_landed``).

    Under the suppression list's landing lock, so an erasure that lists users either waits for
    this batch to land (and then finds it in the lake) or is seen here
    (``privacy.suppression``)."""
    if suppression is None:
        lake.place(temporary, final)
        return 0
    with suppression.landing() as suppressed:
        erased = pseudonyms & suppressed
        removed = 0
        if erased:
            removed, _ = Lake.rewrite_without_users(
                temporary, set(erased), temporary=temporary.with_name(temporary.name + LATE_SUFFIX)
            )
        lake.place(temporary, final)
    return removed


def frame_users(frame: pl.DataFrame) -> frozenset[str]:
    """The pseudonyms of a lake frame's events."""
    return frozenset(frame["user_pseudonym"].drop_nulls().unique().to_list())


def build_pipeline(settings: Settings, keyring: Keyring) -> Pipeline:
    """The pipeline a configuration asks for: scrubbing with pseudonyms under ``keyring``,
    which must be the lake's (its fingerprint is recorded in the data dir on first use)."""
    from ingest.scrubbing import ScrubbingAnonymiser
    from privacy.keys import check_keyring

    check_keyring(settings.data_dir, keyring, key_file=settings.privacy.hmac_key_file, record=True)
    return Pipeline(
        ScrubbingAnonymiser(keyring, names_model=settings.privacy.names_model),
        max_event_bytes=settings.ingest.max_event_bytes,
        max_text_chars=settings.contract.max_text_chars,
        drop_without_consent=settings.privacy.without_consent == "drop",
        suppression=SuppressionList(suppression_file(settings.data_dir)),
    )


def raw_schema() -> dict[str, Any]:
    """Polars types of every field of every contract v1 event type (all nullable), as
    ``read_events`` reads them: an event using metadata, content parts or tool calls is read in
    the form ``normalised`` gives it."""
    import polars as pl

    from warehouse.lake import lake_schema

    message = pl.Struct({"role": pl.String, "content": pl.String, "response_id": pl.String})
    lake = lake_schema()
    return {
        "event_id": pl.String, "type": pl.String, "occurred_at": pl.String, "user_id": pl.String,
        "conversation_id": pl.String,
        "app": pl.Struct({"name": pl.String, "version": pl.String}),
        "consent": pl.Struct({"training": pl.Boolean, "policy_version": pl.String}),
        "schema_version": pl.Int32, "response_id": pl.String, "parent_id": pl.String,
        "prompt": pl.List(message), "response": pl.String,
        "model": pl.Struct({"id": pl.String, "version": pl.String}),
        "text": pl.String, "span": pl.Struct({"start": pl.Int64, "end": pl.Int64}),
        "code_block": pl.Boolean, "edited_text": pl.String, "new_response_id": pl.String,
        "response_a_id": pl.String, "response_b_id": pl.String, "choice": pl.String,
        "value": pl.String, "reason": pl.String,
        "metadata": lake["metadata"], "prompt_structure": lake["prompt_structure"],
    }  # fmt: skip


def read_events(body: bytes) -> pl.DataFrame:
    """Newline-delimited events as a frame of ``raw_schema`` columns.

    pyarrow's JSON reader (one thread) takes about half the time of polars' on these rows. It
    refuses what polars reads its own way (a key given twice, a number it cannot convert); such
    a batch is read by polars, as before, so the frame never depends on which reader ran.
    """
    import polars as pl
    import pyarrow as pa
    import pyarrow.json as pa_json

    def readable(kind: pa.DataType) -> pa.DataType:
        # The JSON reader builds plain strings and lists; polars' own are the large kinds.
        if pa.types.is_large_string(kind):
            return pa.string()
        if pa.types.is_large_list(kind):
            return pa.list_(readable(kind.value_type))
        if pa.types.is_struct(kind):
            return pa.struct([(f.name, readable(f.type)) for f in kind])
        return kind

    arrow = pl.DataFrame(schema=raw_schema()).to_arrow().schema
    schema = pa.schema([(f.name, readable(f.type)) for f in arrow])
    try:
        table = pa_json.read_json(
            pa.BufferReader(body),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(body) + 1),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowInvalid:
        return pl.read_ndjson(io.BytesIO(body), schema=raw_schema())
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _part(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url") or {}
    return {"type": part["type"], "text": part.get("text"), "image_url": image.get("url"),
            "detail": image.get("detail")}  # fmt: skip


def _call(call: dict[str, Any]) -> dict[str, Any]:
    function = call["function"]
    return {"id": call["id"], "type": call["type"], "name": function["name"],
            "arguments": function["arguments"]}  # fmt: skip


def _structure(message: dict[str, Any]) -> dict[str, Any]:
    """What a message holds beyond its role and text (``prompt_structure``); the message keeps
    its text: the text itself, its text parts joined by a line break, or "" without content."""
    content = message.get("content")
    parts = None
    if isinstance(content, list):
        parts = [_part(part) for part in content]
        message["content"] = "\n".join(p["text"] for p in content if p["type"] == "text")
    elif content is None:
        message["content"] = ""
    calls = message.pop("tool_calls", None)
    return {
        "parts": parts,
        "tool_calls": None if calls is None else [_call(call) for call in calls],
        "tool_call_id": message.pop("tool_call_id", None),
    }


def normalised(value: bytes) -> bytes:
    """An event the contract accepted, in the shape the native reader takes (``raw_schema``):
    ``metadata`` as its canonical JSON text, each prompt message's ``content`` as its text, and
    the content parts and tool calls of the prompt in ``prompt_structure``, one entry per
    message (left out when no message has any)."""
    event = msgspec.json.decode(value)
    metadata = event.pop("metadata", None)
    if metadata is not None:
        event["metadata"] = canonical_metadata(metadata)
    prompt = event.get("prompt")
    if isinstance(prompt, list):
        structure = [_structure(message) for message in prompt]
        if any(any(v is not None for v in entry.values()) for entry in structure):
            event["prompt_structure"] = structure
    return msgspec.json.encode(event)


def _uses_extensions(value: bytes) -> bool:
    """Whether a validated event uses metadata, content parts or tool calls (when the
    validation's own answer is not at hand)."""
    event = msgspec.json.decode(value)
    if event.get("metadata") is not None:
        return True
    return any(
        not isinstance(m.get("content"), str) or m.get("tool_calls") is not None
        or m.get("tool_call_id") is not None
        for m in event.get("prompt") or []
    )  # fmt: skip


def flatten(
    messages: Sequence[RawMessage], *, extended: Sequence[bool] | None = None
) -> pl.DataFrame:
    """Validated messages as lake columns, with the raw ``user_id`` still in (parsed natively).

    The values were validated by the contract already; a native JSON reader turns the batch into
    columns in one call, which is several times faster than building rows in Python. Events
    using metadata, content parts or tool calls (``extended``, one flag per message, as the
    validation found; unset: looked for here) are rewritten by ``normalised`` first.
    """
    import polars as pl

    values = [m.value or b"" for m in messages]
    if extended is None:
        extended = [_uses_extensions(value) for value in values]
    body = b"\n".join(
        normalised(value) if flag else value for value, flag in zip(values, extended, strict=True)
    )
    raw = read_events(body) if messages else pl.DataFrame(schema=raw_schema())
    timestamp = (
        pl.col("occurred_at")
        .str.replace(r"[Zz]$", "+00:00")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="us")
        .dt.convert_time_zone("UTC")
    )
    is_copy = pl.col("type") == "copy"
    return raw.select(
        pl.col("event_id").str.to_lowercase(),
        "type",
        timestamp.alias("occurred_at"),
        "user_id",
        "conversation_id",
        pl.col("app").struct.field("name").alias("app_name"),
        pl.col("app").struct.field("version").alias("app_version"),
        pl.col("consent").struct.field("training").alias("consent_training"),
        pl.col("consent").struct.field("policy_version").alias("consent_policy_version"),
        "schema_version",
        "response_id",
        "parent_id",
        "prompt",
        "response",
        pl.col("model").struct.field("id").alias("model_id"),
        pl.col("model").struct.field("version").alias("model_version"),
        pl.col("text").alias("copy_text"),
        pl.col("span").struct.field("start").alias("copy_span_start"),
        pl.col("span").struct.field("end").alias("copy_span_end"),
        pl.when(is_copy).then(pl.col("code_block").fill_null(False)).alias("code_block"),
        "edited_text",
        "new_response_id",
        "response_a_id",
        "response_b_id",
        "choice",
        pl.col("value").alias("rating_value"),
        pl.col("reason").alias("rating_reason"),
        "metadata",
        "prompt_structure",
    )
