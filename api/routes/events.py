"""``POST /v1/events`` and ``POST /v1/beacon``: validate a request's events and hand them to the
sink, all or nothing, or with ``?partial=true`` the valid ones (207 naming each refused event).

Both routes share one path: the body is read (counted as it streams, gzip inflated no further
than the limit), decoded, charged to a publishable key's token bucket, validated against the
contract (and a publishable key's event types), encoded and published. Only the route decides
where the key comes from and which media types it takes.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import time
import zlib
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple, cast
from uuid import UUID

import msgspec
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, Field
from pydantic_core import from_json

from api.deps import (
    BeaconQueryKeyDep,
    EventKeyDep,
    KeysDep,
    MetricsDep,
    SettingsDep,
    SinkDep,
    browser_caller,
)
from api.errors import ApiError, ErrorPublic
from api.keys import Caller
from api.metrics import ApiMetrics
from api.ratelimit import retry_after
from api.sink import EncodedEvent, EventSink
from flywheel.errors import ContractError, SinkUnavailableError
from flywheel.settings import ApiSettings, Settings
from ingest.contract import (
    DUPLICATE_KEY,
    DUPLICATE_KEY_MESSAGE,
    EVENT_TYPES,
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


class EventProblemPublic(BaseModel):
    """One reason an event was refused."""

    path: str
    """Field path inside the event, e.g. ``prompt[0].role``; ``(event)`` for the whole event."""
    type: str
    """Machine-readable error type, e.g. ``missing`` or ``event_type_not_allowed``."""
    message: str
    """What is wrong, for people (never the submitted text)."""


class EventAcceptedPublic(BaseModel):
    """An event of the request that was stored."""

    index: int
    """Its position in the request's ``events`` (0 for a single event)."""
    status: Literal["accepted"]
    event_id: UUID


class EventRejectedPublic(BaseModel):
    """An event of the request that was refused; the client drops it (resending cannot help)."""

    index: int
    """Its position in the request's ``events`` (0 for a single event)."""
    status: Literal["rejected"]
    errors: list[EventProblemPublic]


EventResultPublic = Annotated[
    EventAcceptedPublic | EventRejectedPublic, Field(discriminator="status")
]


class EventsPartialPublic(BaseModel):
    """With ``?partial=true``: the valid events are durably stored, the others refused."""

    accepted: int
    """How many events were stored."""
    rejected: int
    """How many were refused (202 when none, 207 otherwise)."""
    event_ids: list[UUID]
    """The stored events' ids, in request order."""
    results: list[EventResultPublic]
    """Every event of the request, in request order."""


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorPublic, "description": description}


RETRY_AFTER = {
    "Retry-After": {
        "description": "Whole seconds to wait before resending.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}

RESPONSES: dict[int | str, dict[str, Any]] = {
    207: {
        "model": EventsPartialPublic,
        "description": "``?partial=true`` and some events were refused: the others are stored; "
        "``results`` names each refused event's index and problems.",
    },
    400: _error("The body is not valid JSON, or not valid gzip."),
    401: _error("No key."),
    403: _error(
        "Not a key that may post events here, or a publishable key from another origin (or none)."
    ),
    408: _error("The body stalled: no part of it arrived for 30 s."),
    413: _error("The body (once decompressed) or, without ``partial``, one event is too large."),
    415: _error("A media type or a ``Content-Encoding`` the route does not take."),
    422: _error(
        "Over 500 events, not an event nor a batch, or (without ``partial``) any event breaks "
        "the contract or is of a type the publishable key may not post; nothing was stored."
    ),
    429: {
        **_error("The publishable key's rate limit is reached; nothing was stored."),
        "headers": RETRY_AFTER,
    },
    503: {
        **_error("The events could not be stored now; resend later (see ``Retry-After``)."),
        "headers": RETRY_AFTER,
    },
}

ONE_OR_A_BATCH = [
    {"$ref": "#/components/schemas/EventCreate"},
    {"$ref": "#/components/schemas/EventBatchCreate"},
]

REQUEST_BODY = {
    "required": True,
    "description": 'One event, or ``{"events": [...]}`` with up to 500 events; may be sent with '
    "``Content-Encoding: gzip``.",
    "content": {"application/json": {"schema": {"oneOf": ONE_OR_A_BATCH}}},
}

_BEACON_SCHEMA = {"oneOf": [*ONE_OR_A_BATCH, {"$ref": "#/components/schemas/BeaconBatchCreate"}]}
BEACON_BODY = {
    "required": True,
    "description": 'One event, ``{"events": [...]}``, or without ``?key=`` ``{"key": "<publishable '
    'key>", "events": [...]}``; JSON sent as ``text/plain`` (what ``navigator.sendBeacon`` sends '
    "for a string), ``application/json``, or with no content type; may be gzip-encoded.",
    "content": {
        "text/plain": {"schema": _BEACON_SCHEMA},
        "application/json": {"schema": _BEACON_SCHEMA},
    },
}

PartialParam = Annotated[
    bool,
    Query(
        description="Store the valid events and refuse the others one by one (202, or 207 "
        "when any was refused), instead of refusing the whole request (422)."
    ),
]


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


async def read_event_body(request: Request, limit: int) -> bytes:
    """The body, inflated if it is gzip-encoded; either way no more than ``limit`` bytes of it
    are read, and no more than ``limit`` inflated (413). 415 for another ``Content-Encoding``."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return await read_body(request, limit)
    if encoding != "gzip":
        raise ApiError(
            415, "the Content-Encoding must be gzip, or none", code="unsupported_encoding"
        )
    return inflate(await read_body(request, limit), limit)


def inflate(data: bytes, limit: int) -> bytes:
    """A gzip body inflated, refused with 413 once it passes ``limit`` bytes: a small body that
    would inflate to gigabytes (a gzip bomb) costs no more than ``limit`` bytes."""
    try:
        # GzipFile inflates only as much as is read (several members too, as gzip allows).
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            body = stream.read(limit + 1)
    except (OSError, EOFError, zlib.error):
        # Their messages may quote bytes of the body; say what is wrong without them.
        raise ApiError(
            400,
            "the Content-Encoding is gzip, but the body is not complete gzip data",
            code="malformed_gzip",
        ) from None
    if len(body) > limit:
        raise ApiError(413, f"the body is over the limit of {limit} bytes once decompressed")
    return body


def _keys_surely_unique(body: bytes, data: object) -> bool:
    """True only if no object of the body gives a key twice (``data`` keeps one copy of a
    repeated key, so encoding it again tells in C whether anything was dropped)."""
    try:
        canonical = _ENCODER.encode(data)
    except (TypeError, ValueError, OverflowError):
        return False
    return keys_surely_unique(body, canonical)


def refuse_repeated_keys(body: bytes, data: object, *, is_batch: bool) -> None:
    """422 naming the path if an object of the body gives a key twice.

    Only when ``_keys_surely_unique`` cannot be sure is the body parsed again to find the key.
    """
    if _keys_surely_unique(body, data):
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


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key-value pairs in order, repeated keys kept."""


def _as_json(node: object) -> str:
    """JSON text of a tree of ``_Pairs``, its repeated keys written again."""
    if isinstance(node, _Pairs):
        return "{" + ",".join(f"{json.dumps(key)}:{_as_json(value)}" for key, value in node) + "}"
    if isinstance(node, list):
        return "[" + ",".join(_as_json(item) for item in node) + "]"
    return json.dumps(node)


def repeated_keys_by_event(body: bytes, *, is_batch: bool) -> dict[int, list[dict[str, object]]]:
    """For partial acceptance: each event that gives a key twice, with its error (the path as
    ``ingest.contract.duplicate_key`` names it). A key given twice in the batch object itself is
    an error of the body: 422."""
    tree = json.loads(body, object_pairs_hook=_Pairs)
    events: list[object] = [tree]
    if is_batch and isinstance(tree, _Pairs):
        keys = [key for key, _ in tree]
        if repeated := [key for position, key in enumerate(keys) if key in keys[:position]]:
            path = repeated[0] if repeated[0] in ("events", "key") else "<unknown field>"
            raise ContractError(
                "events break the contract",
                errors=[
                    {
                        "index": None,
                        "path": path,
                        "type": DUPLICATE_KEY,
                        "message": DUPLICATE_KEY_MESSAGE,
                    }
                ],
            )
        events = dict(tree)["events"]
        if not isinstance(events, list):
            return {}  # not a batch: decode_items refuses it
    found: dict[int, list[dict[str, object]]] = {}
    for index, event in enumerate(events):
        if (loc := duplicate_key(_as_json(event))) is not None:
            found[index] = [
                {
                    "index": index,
                    "path": format_path(loc),
                    "type": DUPLICATE_KEY,
                    "message": DUPLICATE_KEY_MESSAGE,
                }
            ]
    return found


class DecodedBody(NamedTuple):
    """A request body decoded: its events as JSON values, not validated yet."""

    items: list[object]
    is_batch: bool
    """Whether the body was ``{"events": [...]}`` (else one event)."""
    key: str | None
    """The publishable key a beacon's batch carries (``{"key": ..., "events": [...]}``)."""
    repeated: dict[int, list[dict[str, object]]]
    """With ``partial``: the events that give a key twice, by index, with their error."""


def decode_items(
    body: bytes, *, max_events: int, partial: bool = False, with_key: bool = False
) -> DecodedBody:
    """The request's events as decoded JSON values. ``with_key``: a batch may carry a ``key``."""
    try:
        # pydantic's Rust JSON parser: 2.5x faster than the json module on event batches.
        data = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        # Its messages say where parsing stopped ("EOF while parsing a list at line 1 column 12")
        # and never quote the body.
        raise ApiError(400, f"the body is not valid JSON ({exc})", code="malformed_json") from None
    is_batch = isinstance(data, dict) and "events" in data and "type" not in data
    repeated: dict[int, list[dict[str, object]]] = {}
    if not partial:
        refuse_repeated_keys(body, data, is_batch=is_batch)
    elif not _keys_surely_unique(body, data):
        repeated = repeated_keys_by_event(body, is_batch=is_batch)
    key = None
    if isinstance(data, dict) and is_batch and with_key and "key" in data:
        key = data.pop("key")
        if not isinstance(key, str) or not key:
            raise ContractError(
                "the key in the body must be a non-empty string",
                errors=[
                    {
                        "index": None,
                        "path": "key",
                        "type": "string_type",
                        "message": "expected the publishable key, a non-empty string",
                    }
                ],
            )
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
        return DecodedBody(items, True, key, repeated)
    if isinstance(data, dict):
        return DecodedBody([data], False, key, repeated)
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


def encode_one(event: Event) -> EncodedEvent:
    """The event as the sink takes it: keyed by conversation, valued by its compact JSON
    (``encode_all`` does the same inline, on the hot path)."""
    key = event.conversation_id.encode()
    return EncodedEvent(event_id=event.event_id, key=key, value=encode_event(event))


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


def _refuse_rate(caller: Caller, wait_s: float, metrics: ApiMetrics) -> None:
    assert caller.browser is not None
    bucket = caller.browser.bucket
    metrics.rate_limited.labels(caller.browser.name).inc()
    raise ApiError(
        429,
        f"the key's rate limit ({bucket.rate:g} events/s, bursts of {bucket.burst}) is reached; "
        "nothing was stored, resend after Retry-After seconds",
        code="rate_limited",
        headers={"Retry-After": retry_after(wait_s)},
    )


def refuse_if_limited(caller: Caller, metrics: ApiMetrics) -> None:
    """429 before the body is read when a publishable key's bucket cannot pay for one event."""
    if caller.browser is not None and (wait := caller.browser.bucket.wait_s(1)) > 0:
        _refuse_rate(caller, wait, metrics)


def charge(caller: Caller, events: int, metrics: ApiMetrics) -> None:
    """Take ``events`` tokens from a publishable key's bucket, or answer 429 with
    ``Retry-After``; write keys are not limited."""
    if caller.browser is not None and (wait := caller.browser.bucket.take(events)) > 0:
        _refuse_rate(caller, wait, metrics)


def types_not_allowed(items: list[object], caller: Caller) -> dict[int, list[dict[str, object]]]:
    """The events of a type the publishable key may not post, by index, with their error."""
    browser = caller.browser
    if browser is None or browser.event_types.issuperset(EVENT_TYPES):
        return {}
    allowed = ", ".join(kind for kind in EVENT_TYPES if kind in browser.event_types)
    refused: dict[int, list[dict[str, object]]] = {}
    for index, item in enumerate(items):
        kind = item.get("type") if isinstance(item, dict) else None
        # Types outside the contract are left to it: it names the valid ones.
        if kind in EVENT_TYPES and kind not in browser.event_types:
            refused[index] = [
                {
                    "index": index,
                    "path": "type",
                    "type": "event_type_not_allowed",
                    "message": f"this key may post only these event types: {allowed}",
                }
            ]
    return refused


def _rejected(metrics: ApiMetrics, caller: Caller, *, events: int, errors: int) -> None:
    metrics.events.labels("rejected").inc(events)
    fields: dict[str, object] = {"events": events, "errors": errors}
    if caller.browser is not None:
        fields["key"] = caller.browser.name
    log.info("rejected events", extra={"fields": fields})


def validate_all(
    decoded: DecodedBody, caller: Caller, metrics: ApiMetrics, *, max_text_chars: int
) -> list[Event]:
    """Every event of the request, or 422 listing each bad event's problems."""
    refused = types_not_allowed(decoded.items, caller)
    try:
        events = parse_events(decoded.items, max_text_chars=max_text_chars)
        if not refused:
            return events
        errors: list[dict[str, object]] = []
    except ContractError as exc:
        errors = exc.errors
    # A stable sort keeps an event's type refusal before its contract errors.
    found = [error for problems in refused.values() for error in problems] + errors
    found.sort(key=lambda error: error["index"])  # type: ignore[arg-type, return-value]
    if not decoded.is_batch:
        for error in found:
            error["index"] = None
    _rejected(metrics, caller, events=len(decoded.items), errors=len(found))
    raise ContractError("events break the contract", errors=found)


def validate_each(
    decoded: DecodedBody, caller: Caller, *, max_text_chars: int
) -> tuple[dict[int, Event], dict[int, list[dict[str, object]]]]:
    """The valid events and the refused ones' problems, both by index (partial acceptance)."""
    refused = types_not_allowed(decoded.items, caller)
    for index, problems in decoded.repeated.items():
        refused.setdefault(index, []).extend(problems)
    candidates = [index for index in range(len(decoded.items)) if index not in refused]
    try:
        parsed = parse_events(
            [decoded.items[index] for index in candidates], max_text_chars=max_text_chars
        )
    except ContractError as exc:
        for error in exc.errors:
            index = candidates[cast(int, error["index"])]
            refused.setdefault(index, []).append({**error, "index": index})
        # Events of a list are validated one by one: those without an error pass alone.
        candidates = [index for index in candidates if index not in refused]
        parsed = parse_events(
            [decoded.items[index] for index in candidates], max_text_chars=max_text_chars
        )
    return dict(zip(candidates, parsed, strict=True)), refused


async def publish(encoded: list[EncodedEvent], *, sink: EventSink, metrics: ApiMetrics) -> None:
    """Hand the events to the sink and wait for its acknowledgement (503 if it cannot)."""
    started = time.perf_counter()
    try:
        await sink.publish(encoded)
    except SinkUnavailableError:
        metrics.events.labels("unavailable").inc(len(encoded))
        raise
    metrics.produce_seconds.observe(time.perf_counter() - started)
    metrics.events.labels("accepted").inc(len(encoded))


async def accept(
    decoded: DecodedBody,
    *,
    caller: Caller,
    partial: bool,
    limits: ApiSettings,
    max_text_chars: int,
    sink: EventSink,
    metrics: ApiMetrics,
    response: Response,
) -> EventsAcceptedPublic | EventsPartialPublic:
    """Charge the key's rate, validate, encode and publish a request's events: all of them or
    none (422, 413), or with ``partial`` the valid ones (202, or 207 naming the others)."""
    charge(caller, len(decoded.items), metrics)
    if not partial:
        events = validate_all(decoded, caller, metrics, max_text_chars=max_text_chars)
        encoded = encode_all(events, max_event_bytes=limits.max_event_bytes)
        await publish(encoded, sink=sink, metrics=metrics)
        return EventsAcceptedPublic(accepted=len(encoded), event_ids=[e.event_id for e in encoded])
    valid, refused = validate_each(decoded, caller, max_text_chars=max_text_chars)
    stored: dict[int, EncodedEvent] = {}
    for index, event in valid.items():
        one = encode_one(event)
        if len(one.value) > limits.max_event_bytes:
            refused[index] = [
                {
                    "index": index,
                    "path": "(event)",
                    "type": "too_large",
                    "message": f"the event is {len(one.value)} bytes as compact JSON; the limit "
                    f"is {limits.max_event_bytes}",
                }
            ]
        else:
            stored[index] = one
    if stored:
        await publish(list(stored.values()), sink=sink, metrics=metrics)
    if refused:
        problems = sum(len(errors) for errors in refused.values())
        _rejected(metrics, caller, events=len(refused), errors=problems)
        response.status_code = status.HTTP_207_MULTI_STATUS
    results: list[EventAcceptedPublic | EventRejectedPublic] = []
    for index in range(len(decoded.items)):
        if index in stored:
            results.append(
                EventAcceptedPublic(index=index, status="accepted", event_id=stored[index].event_id)
            )
        else:
            errors = [EventProblemPublic.model_validate(e) for e in refused[index]]
            results.append(EventRejectedPublic(index=index, status="rejected", errors=errors))
    return EventsPartialPublic(
        accepted=len(stored),
        rejected=len(refused),
        event_ids=[one.event_id for one in stored.values()],
        results=results,
    )


class Intake(NamedTuple):
    """What both routes hand a request's events to once they know its key (a dependency)."""

    settings: Settings
    sink: EventSink
    metrics: ApiMetrics
    response: Response
    """Its status becomes 207 when ``partial`` refused an event."""
    partial: bool

    async def answer(
        self, decoded: DecodedBody, caller: Caller
    ) -> EventsAcceptedPublic | EventsPartialPublic:
        """The answer both routes give: ``accept`` the request's events."""
        return await accept(
            decoded, caller=caller, partial=self.partial, limits=self.settings.api,
            max_text_chars=self.settings.contract.max_text_chars, sink=self.sink,
            metrics=self.metrics, response=self.response,
        )  # fmt: skip


async def get_intake(
    settings: SettingsDep,
    sink: SinkDep,
    metrics: MetricsDep,
    response: Response,
    partial: PartialParam = False,
) -> Intake:
    """The request's ``Intake``; ``?partial`` is a query parameter of both routes."""
    return Intake(settings, sink, metrics, response, partial)


IntakeDep = Annotated[Intake, Depends(get_intake)]


def events_route(
    path: str, responses: dict[int | str, dict[str, Any]], body: dict[str, Any], summary: str
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """Declare one of the two routes: 202 once the events are stored, the same answers."""
    return router.post(
        path,
        status_code=status.HTTP_202_ACCEPTED,
        responses=responses,
        openapi_extra={"requestBody": body},
        summary=summary,
    )


def media_type(request: Request) -> str:
    """The request's ``Content-Type`` without parameters, lower case ("" when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


@events_route("/v1/events", RESPONSES, REQUEST_BODY, "Post one event or a batch")
async def post_events(
    request: Request, caller: EventKeyDep, intake: IntakeDep
) -> EventsAcceptedPublic | EventsPartialPublic:
    """Accept events: 202 only once the sink (Kafka) acknowledged every one of them. A write key
    posts any event; a publishable key only from its origins, only its event types, within its
    rate (429 with ``Retry-After`` beyond it)."""
    if media_type(request) != "application/json":
        raise ApiError(415, "send the events as application/json", code="unsupported_media_type")
    limits = intake.settings.api
    refuse_if_limited(caller, intake.metrics)
    body = await read_event_body(request, limits.max_request_bytes)
    decoded = decode_items(body, max_events=limits.max_events_per_request, partial=intake.partial)
    return await intake.answer(decoded, caller)


BEACON_MEDIA_TYPES = frozenset({"text/plain", "application/json", ""})
"""What ``POST /v1/beacon`` takes: ``sendBeacon`` sends a string as ``text/plain``, and a
cross-origin request with these types (or none) needs no preflight."""

BEACON_RESPONSES: dict[int | str, dict[str, Any]] = {
    **RESPONSES,
    400: _error(
        "The body is not valid JSON or not valid gzip, or the key is both in the query and in "
        "the body."
    ),
    401: _error("No key, neither in the query (``?key=``) nor in the body."),
    403: _error(
        "Not a publishable key (a write, reader or admin key is refused here), or sent from "
        "another origin (or none)."
    ),
    415: _error(
        "Neither ``text/plain``, ``application/json`` nor no content type, or a "
        "``Content-Encoding`` other than gzip."
    ),
}


@events_route(
    "/v1/beacon",
    BEACON_RESPONSES,
    BEACON_BODY,
    "Post events as a page is left (navigator.sendBeacon, fetch keepalive)",
)
async def post_beacon(
    request: Request, query_key: BeaconQueryKeyDep, keys: KeysDep, intake: IntakeDep
) -> EventsAcceptedPublic | EventsPartialPublic:
    """The events of ``POST /v1/events``, sent the way a browser can while a page closes: no
    ``Authorization`` header and no JSON content type, so no CORS preflight. Only publishable
    keys, in the query (``?key=``) or in the body; the same answers as ``POST /v1/events``."""
    if media_type(request) not in BEACON_MEDIA_TYPES:
        raise ApiError(
            415,
            "send the events as text/plain or application/json (or with no content type)",
            code="unsupported_media_type",
        )
    limits = intake.settings.api
    caller = None
    if query_key is not None:
        # Checked before the body is read, as the bearer keys are.
        caller = browser_caller(request, keys, query_key)
        refuse_if_limited(caller, intake.metrics)
    body = await read_event_body(request, limits.max_request_bytes)
    decoded = decode_items(
        body, max_events=limits.max_events_per_request, partial=intake.partial, with_key=True
    )
    if decoded.key is not None:
        if caller is not None:
            raise ApiError(
                400,
                "the key is both in the query and in the body; give it once",
                code="key_given_twice",
            )
        caller = browser_caller(request, keys, decoded.key)
    if caller is None:
        raise ApiError(
            401,
            'no key: send ?key=<publishable key>, or the body {"key": "<publishable key>", '
            '"events": [...]}',
            code="unauthorized",
        )
    return await intake.answer(decoded, caller)
