"""What ``Client`` and ``AsyncClient`` share: the constructor (its options checked once), one
helper per event type, preparing and queueing events, reporting dropped ones, counters. Adding
an event never waits and never does I/O."""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import httpx

from flywheel_client._events import (
    App,
    Choice,
    Consent,
    PreparedEvent,
    Scalar,
    envelope,
    prepare,
    prompt_messages,
)
from flywheel_client._protocol import Delivery, EventQueue, Options, drop
from flywheel_client._results import DroppedEvent, SendResult, Stats

log = logging.getLogger("flywheel_client")

ErrorCallback = Callable[[DroppedEvent], object]
"""Called once per dropped event (on the thread or task that dropped it)."""
DEFAULT_MAX_BATCH_BYTES = 512 * 1024
"""Half the API's default request limit (1 MiB), so a batch never meets it."""
DEFAULT_MAX_EVENT_BYTES = 64 * 1024
"""The API's default limit on one event."""
DEFAULT_MAX_QUEUE_BYTES = 32 * 1024 * 1024
HttpClient = TypeVar("HttpClient", httpx.Client, httpx.AsyncClient)
"""``httpx.Client`` for ``Client``, ``httpx.AsyncClient`` for ``AsyncClient``."""
LOG_EVERY_S = 10.0
"""Without ``on_error``, drops are logged as counts at most this often (a full queue drops
every new event), and once more when the client is closed."""


class BaseClient(ABC, Generic[HttpClient]):
    """The options, the event helpers and the bookkeeping both clients share."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        app: App,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        max_queue_size: int = 10_000,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        max_retries: int = 10,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        timeout: float = 30.0,
        partial: bool = True,
        gzip: bool = False,
        on_error: ErrorCallback | None = None,
        http_client: HttpClient | None = None,
    ) -> None:
        """Check the options (``ValueError``; ``Client`` documents each), make the queue and an
        HTTP client unless given one, then start the sender (``_start_sender``)."""
        options = Options(
            endpoint=url.rstrip("/") + "/v1/events", key=key, app=app, batch_size=batch_size,
            max_batch_bytes=max_batch_bytes, flush_interval=flush_interval,
            max_queue_size=max_queue_size, max_queue_bytes=max_queue_bytes,
            max_event_bytes=max_event_bytes, max_retries=max_retries, retry_base=retry_base,
            retry_cap=retry_cap, timeout=timeout, partial=partial, gzip=gzip,
        )  # fmt: skip
        self._options = options
        self._on_error = on_error
        self._rng = random.Random()
        self._count_lock = threading.Lock()
        self._accepted = self._dropped = self._retries = 0
        self._unlogged: Counter[str] = Counter()
        self._unlogged_statuses: set[int] = set()
        self._logged_at = -LOG_EVERY_S
        self._http: HttpClient = http_client if http_client is not None else self._new_http()
        self._owns_http = http_client is None
        self._queue = EventQueue(options)
        self._url = options.request_url()  # parsed once: httpx parses a string per request
        self._in_flight = 0
        self._settled = 0
        self._closed = False
        self._start_sender()

    def __repr__(self) -> str:
        # Never the key.
        return f"<{type(self).__name__} {self._options.endpoint}>"

    # --- One helper per event type --------------------------------------------------------------

    def generation(
        self,
        *,
        user_id: str,
        conversation_id: str,
        response_id: str,
        parent_id: str,
        prompt: Sequence[Mapping[str, Any]],
        response: str,
        model: str,
        model_version: str | None = None,
        consent: Consent | None = None,
        metadata: Mapping[str, Scalar] | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue a ``generation``: a response was shown, with the prompt the model saw.

        ``prompt`` is the messages, oldest first (``role``, ``content`` as a string or as
        content parts, ``tool_calls``, ``tool_call_id``); ``parent_id`` is the user message
        answered (regenerations share it). Returns the event id.
        """
        event = self._envelope("generation", user_id, conversation_id, consent, metadata,
                               occurred_at, event_id)  # fmt: skip
        event |= {
            "response_id": response_id,
            "parent_id": parent_id,
            "prompt": prompt_messages(prompt),
            "response": response,
            "model": {"id": model} if model_version is None else {
                "id": model, "version": model_version},
        }  # fmt: skip
        return self.track(event)

    def copy(
        self,
        *,
        user_id: str,
        conversation_id: str,
        response_id: str,
        text: str | None = None,
        span: tuple[int, int] | None = None,
        code_block: bool = False,
        consent: Consent | None = None,
        metadata: Mapping[str, Scalar] | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue a ``copy``: the user copied ``text``, or the characters ``span`` (start, end
        exclusive) of the response; ``code_block`` if it came from a code block's button."""
        if text is None and span is None:
            raise ValueError("a copy needs the copied text or its span")
        event = self._envelope("copy", user_id, conversation_id, consent, metadata,
                               occurred_at, event_id)  # fmt: skip
        event |= {"response_id": response_id, "code_block": code_block}
        if text is not None:
            event["text"] = text
        if span is not None:
            event["span"] = {"start": span[0], "end": span[1]}
        return self.track(event)

    def edit(
        self,
        *,
        user_id: str,
        conversation_id: str,
        response_id: str,
        edited_text: str,
        consent: Consent | None = None,
        metadata: Mapping[str, Scalar] | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue an ``edit``: ``edited_text`` is the whole response after the user's edit."""
        event = self._envelope("edit", user_id, conversation_id, consent, metadata,
                               occurred_at, event_id)  # fmt: skip
        event |= {"response_id": response_id, "edited_text": edited_text}
        return self.track(event)

    def regenerate(
        self,
        *,
        user_id: str,
        conversation_id: str,
        response_id: str,
        new_response_id: str | None = None,
        consent: Consent | None = None,
        metadata: Mapping[str, Scalar] | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue a ``regenerate``: ``response_id`` is replaced (by ``new_response_id``)."""
        event = self._envelope("regenerate", user_id, conversation_id, consent, metadata,
                               occurred_at, event_id)  # fmt: skip
        event["response_id"] = response_id
        if new_response_id is not None:
            event["new_response_id"] = new_response_id
        return self.track(event)

    def ab_choice(
        self,
        *,
        user_id: str,
        conversation_id: str,
        response_a_id: str,
        response_b_id: str,
        choice: Choice,
        consent: Consent | None = None,
        metadata: Mapping[str, Scalar] | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue an ``ab_choice``: two responses side by side and the user's ``choice``
        (``a``, ``b``, ``tie`` or ``both_bad``)."""
        event = self._envelope("ab_choice", user_id, conversation_id, consent, metadata,
                               occurred_at, event_id)  # fmt: skip
        event |= {"response_a_id": response_a_id, "response_b_id": response_b_id,
                  "choice": choice}  # fmt: skip
        return self.track(event)

    def rating(
        self,
        *,
        user_id: str,
        conversation_id: str,
        response_id: str,
        value: Literal["up", "down"],
        reason: str | None = None,
        consent: Consent | None = None,
        metadata: Mapping[str, Scalar] | None = None,
        occurred_at: datetime | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue a ``rating``: thumbs ``up`` or ``down``, with the user's ``reason`` if any."""
        event = self._envelope("rating", user_id, conversation_id, consent, metadata,
                               occurred_at, event_id)  # fmt: skip
        event |= {"response_id": response_id, "value": value}
        if reason is not None:
            event["reason"] = reason
        return self.track(event)

    def track(self, event: Mapping[str, Any] | PreparedEvent) -> str:
        """Queue an event built by the caller (a JSON-ready mapping of contract v1); a missing
        ``event_id``, ``occurred_at``, ``app`` or ``schema_version`` is filled in. Returns the
        event id. Never waits: a full queue drops the event (reported as ``queue_full``)."""
        item, refused = self._prepare(event)
        if refused is not None:
            self._report([refused])
        else:
            self._put(item)
        return item.event_id

    def prepare(self, event: Mapping[str, Any] | PreparedEvent) -> PreparedEvent:
        """Complete an event as ``track`` does and encode it once, without queueing it: for
        ``track`` or ``send`` later, to send the same bytes again, or to keep events made ahead
        of time (an outbox) out of the time they are sent in. ``TypeError`` or ``ValueError``
        if JSON cannot carry a value."""
        return prepare(event, app=self._options.app)

    @property
    def stats(self) -> Stats:
        """Counters since the client was made."""
        with self._count_lock:
            return Stats(queued=self._queued(), accepted=self._accepted,
                         dropped=self._dropped, retries=self._retries)  # fmt: skip

    # --- For the subclasses ---------------------------------------------------------------------

    @abstractmethod
    def _new_http(self) -> HttpClient:
        """The HTTP client made when none is given (closed with this client)."""

    @abstractmethod
    def _start_sender(self) -> None:
        """Set up (or start) what sends the queued batches; the last step of ``__init__``."""

    @abstractmethod
    def _put(self, item: PreparedEvent) -> None:
        """Add a prepared event to the queue, or report it dropped."""

    @abstractmethod
    def _queued(self) -> int:
        """Events queued or being sent now."""

    def _envelope(
        self,
        type_: str,
        user_id: str,
        conversation_id: str,
        consent: Consent | None,
        metadata: Mapping[str, Scalar] | None,
        occurred_at: datetime | None,
        event_id: str | None,
    ) -> dict[str, Any]:
        return envelope(
            type_, app=self._options.app, user_id=user_id, conversation_id=conversation_id,
            consent=consent, metadata=metadata, occurred_at=occurred_at, event_id=event_id,
        )  # fmt: skip

    def _prepare(
        self, event: Mapping[str, Any] | PreparedEvent
    ) -> tuple[PreparedEvent, DroppedEvent | None]:
        """The event completed and encoded, and its drop if it is too large to send."""
        item = prepare(event, app=self._options.app)
        if len(item.data) > self._options.max_event_bytes:
            return item, drop(
                item, "too_large",
                f"the event is {len(item.data)} bytes as JSON; the limit is "
                f"{self._options.max_event_bytes} (max_event_bytes)",
            )  # fmt: skip
        return item, None

    def _prepare_all(
        self, events: Iterable[Mapping[str, Any] | PreparedEvent]
    ) -> tuple[list[PreparedEvent], list[DroppedEvent]]:
        """For ``send``: the events to send, and those too large to."""
        items: list[PreparedEvent] = []
        too_large: list[DroppedEvent] = []
        for event in events:
            item, refused = self._prepare(event)
            if refused is None:
                items.append(item)
            else:
                too_large.append(refused)
        return items, too_large

    def _delivery(self, items: list[PreparedEvent]) -> Delivery:
        return Delivery(items, self._options, self._rng)

    def _count(self, delivery: Delivery) -> None:
        """Count a finished delivery's events (its retries were counted as they happened)."""
        with self._count_lock:
            self._accepted += len(delivery.accepted)
            self._dropped += len(delivery.dropped)

    def _count_retry(self) -> None:
        with self._count_lock:
            self._retries += 1

    def _result(
        self, deliveries: list[Delivery], too_large: list[DroppedEvent], order: list[str]
    ) -> SendResult:
        """``send``'s result, its lists in the order the events were given."""
        position = {event_id: index for index, event_id in enumerate(order)}
        accepted = [event_id for d in deliveries for event_id in d.accepted]
        dropped = too_large + [dropped for d in deliveries for dropped in d.dropped]
        with self._count_lock:
            self._dropped += len(too_large)
        dropped.sort(key=lambda event: position.get(event.event_id, 0))
        return SendResult(accepted=accepted, dropped=dropped,
                          retries=sum(d.retries for d in deliveries))  # fmt: skip

    def _report(self, dropped: list[DroppedEvent], *, counted: bool = False) -> None:
        """Hand each dropped event to ``on_error`` (or log a summary without it)."""
        if not dropped:
            return
        if not counted:
            with self._count_lock:
                self._dropped += len(dropped)
        if self._on_error is None:
            with self._count_lock:
                self._unlogged.update(event.reason for event in dropped)
                self._unlogged_statuses |= {e.status_code for e in dropped if e.status_code}
            self._log_drops()
            return
        for event in dropped:
            try:
                self._on_error(event)
            except Exception as exc:  # a broken callback must not stop the sender
                # The exception's type only: its message may quote the event.
                log.error("the on_error callback raised %s", type(exc).__name__)

    def _log_drops(self, *, now: bool = False) -> None:
        """Log the drops not logged yet, as counts by reason and status: at once with ``now``,
        else if the last such line is ``LOG_EVERY_S`` old."""
        with self._count_lock:
            if not self._unlogged or (not now and monotonic() - self._logged_at < LOG_EVERY_S):
                return
            reasons, statuses = self._unlogged, sorted(self._unlogged_statuses)
            self._unlogged, self._unlogged_statuses = Counter(), set()
            self._logged_at = monotonic()
        log.warning(
            "dropped %d events (%s%s); pass on_error to handle them",
            sum(reasons.values()),
            ", ".join(f"{reason}: {n}" for reason, n in sorted(reasons.items())),
            f"; HTTP {', '.join(map(str, statuses))}" if statuses else "",
        )


def monotonic() -> float:
    """The clock batches are timed with."""
    return time.monotonic()
