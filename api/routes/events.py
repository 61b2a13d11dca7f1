"""``POST /v1/events``: validate a request's events and hand them to the sink, all or nothing."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from uuid import UUID

import msgspec
from fastapi import APIRouter, Request, status
from pydantic import BaseModel
from pydantic_core import from_json

from api.deps import MetricsDep, SettingsDep, SinkDep, WriteKeyDep
from api.errors import ApiError, ErrorPublic
from api.sink import EncodedEvent
from flywheel.errors import ContractError, SinkUnavailableError
from ingest.contract import (
    DUPLICATE_KEY,
    DUPLICATE_KEY_MESSAGE,
    Event,
    duplicate_key,
    encode_event,
    format_path,
    parse_events,
)
from ingest.fastcheck import keys_surely_unique

_ENCODER = msgspec.json.Encoder()

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])


class EventsAcceptedPublic(BaseModel):
    """The events of the request are durably stored."""

    accepted: int
    """How many events were accepted (all of the request's)."""
    event_ids: list[UUID]
    """Their ids, in request order."""


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorPublic, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The body is not valid JSON."),
    401: _error("No bearer token."),
    403: _error("The bearer token is not a write key."),
    408: _error("The body stalled: no part of it arrived for 30 s."),
    413: _error("The body or one event is too large."),
    415: _error("The body is not ``application/json``."),
    422: _error("One or more events break the contract, or over 500; nothing was stored."),
    503: _error("The events could not be stored now; resend later (see ``Retry-After``)."),
}

REQUEST_BODY = {
    "required": True,
    "description": 'One event, or ``{"events": [...]}`` with up to 500 events.',
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/EventCreate"},
                    {"$ref": "#/components/schemas/EventBatchCreate"},
                ]
            }
        }
    },
}


BODY_READ_TIMEOUT_S = 30.0
"""The longest wait for the next chunk of a request body before answering 408."""


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, stopping with 413 as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    stream = request.stream().__aiter__()
    while True:
        # A client that stops sending mid-body would hold the connection (and its buffer) for
        # ever; each chunk must arrive within the timeout.
        try:
            async with asyncio.timeout(BODY_READ_TIMEOUT_S):
                chunk = await anext(stream)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise ApiError(
                408, f"the body stalled: nothing arrived for {BODY_READ_TIMEOUT_S} s"
            ) from None
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def refuse_repeated_keys(body: bytes, data: object, *, is_batch: bool) -> None:
    """422 naming the path if an object of the body gives a key twice.

    ``data`` keeps one copy of a repeated key, so encoding it again tells in C whether anything
    was dropped (``keys_surely_unique``); only when that cannot be sure is the body parsed
    again to find the key.
    """
    try:
        canonical = _ENCODER.encode(data)
    except (TypeError, ValueError, OverflowError):
        canonical = b""
    if canonical and keys_surely_unique(body, canonical):
        return
    loc = duplicate_key(body)
    if loc is None:
        return
    index = None
    if is_batch and len(loc) >= 2 and loc[0] == "events" and isinstance(loc[1], int):
        index, loc = loc[1], loc[2:]
    raise ContractError(
        "events break the contract",
        errors=[
            {
                "index": index,
                "path": format_path(loc),
                "type": DUPLICATE_KEY,
                "message": DUPLICATE_KEY_MESSAGE,
            }
        ],
    )


def decode_items(body: bytes, *, max_events: int) -> tuple[list[object], bool]:
    """The request's events as decoded JSON values, and whether the body was a batch."""
    try:
        # pydantic's Rust JSON parser: 2.5x faster than the json module on event batches.
        data = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        # Its messages say where parsing stopped ("EOF while parsing a list at line 1 column 12")
        # and never quote the body.
        raise ApiError(400, f"the body is not valid JSON ({exc})", code="malformed_json") from None
    is_batch = isinstance(data, dict) and "events" in data and "type" not in data
    refuse_repeated_keys(body, data, is_batch=is_batch)
    if isinstance(data, dict) and is_batch:
        extra = sorted(set(data) - {"events"})
        items = data["events"]
        if extra or not isinstance(items, list) or not items:
            raise ContractError(
                "a batch is an object with one key, events: a non-empty list of events",
                errors=[
                    {
                        "index": None,
                        "path": "events" if not extra else extra[0],
                        "type": "invalid_batch",
                        "message": 'expected {"events": [event, ...]} with at least one event',
                    }
                ],
            )
        if len(items) > max_events:
            # The OpenAPI document states the limit as the batch's maxItems: a schema violation,
            # answered like the others (413 stays for bytes).
            raise ContractError(
                f"{len(items)} events in one request; the limit is {max_events}",
                errors=[
                    {
                        "index": None,
                        "path": "events",
                        "type": "too_long",
                        "message": f"at most {max_events} events in one request",
                    }
                ],
            )
        return items, True
    if isinstance(data, dict):
        return [data], False
    raise ContractError(
        'the body must be an event object or {"events": [...]}',
        errors=[
            {
                "index": None,
                "path": "(body)",
                "type": "invalid_body",
                "message": "expected an object",
            }
        ],
    )


def encode_all(events: list[Event], *, max_event_bytes: int) -> list[EncodedEvent]:
    """Encode each event for the sink, refusing any over the per-event size limit."""
    encoded = []
    for index, event in enumerate(events):
        value = encode_event(event)
        if len(value) > max_event_bytes:
            raise ApiError(
                413, f"event {index} is {len(value)} bytes; the limit is {max_event_bytes}"
            )
        key = event.conversation_id.encode()
        encoded.append(EncodedEvent(event_id=event.event_id, key=key, value=value))
    return encoded


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    responses=RESPONSES,
    openapi_extra={"requestBody": REQUEST_BODY},
    summary="Post one event or a batch",
)
async def post_events(
    request: Request,
    _auth: WriteKeyDep,
    settings: SettingsDep,
    sink: SinkDep,
    metrics: MetricsDep,
) -> EventsAcceptedPublic:
    """Accept events: 202 only once the sink (Kafka) acknowledged every one of them."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "send the events as application/json", code="unsupported_media_type")
    limits = settings.api
    body = await read_body(request, limits.max_request_bytes)
    items, is_batch = decode_items(body, max_events=limits.max_events_per_request)
    try:
        events = parse_events(items, max_text_chars=settings.contract.max_text_chars)
    except ContractError as exc:
        if not is_batch:
            for error in exc.errors:
                error["index"] = None
        metrics.events.labels("rejected").inc(len(items))
        log.info(
            "rejected events", extra={"fields": {"events": len(items), "errors": len(exc.errors)}}
        )
        raise
    encoded = encode_all(events, max_event_bytes=limits.max_event_bytes)
    started = time.perf_counter()
    try:
        await sink.publish(encoded)
    except SinkUnavailableError:
        metrics.events.labels("unavailable").inc(len(encoded))
        raise
    metrics.produce_seconds.observe(time.perf_counter() - started)
    metrics.events.labels("accepted").inc(len(encoded))
    return EventsAcceptedPublic(accepted=len(encoded), event_ids=[e.event_id for e in encoded])
