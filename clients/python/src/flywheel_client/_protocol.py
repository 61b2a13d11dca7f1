"""The API protocol without I/O: options, the queue, batch bodies, and what an answer means.

Both clients share this module and differ only in how they wait and send (a thread and
``httpx.Client``, or an asyncio task and ``httpx.AsyncClient``). The rules:

- A batch is ``{"events": [...]}`` posted to ``/v1/events`` with ``?partial=true``: the API
  stores the valid events and answers 207 listing the rejected ones, so one bad event never
  blocks the rest. 202 means every event was stored.
- Network errors and 408, 429, 500, 502, 503, 504 are retried: after ``Retry-After`` seconds when
  the answer gives them (at most ``MAX_RETRY_AFTER_S``), else after exponential backoff with full
  jitter (a random wait between 0 and ``min(retry_cap, retry_base * 2**n)`` before the n-th
  retry, n from 0). Event ids make a resend safe: the platform drops an event it already has.
- Any other answer is final: the events it refused are dropped and reported, never retried.
"""

from __future__ import annotations

import gzip
import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from flywheel_client._events import App, PreparedEvent
from flywheel_client._results import DroppedEvent, DropReason, EventError
from flywheel_client._version import __version__

MAX_EVENTS_PER_REQUEST = 500
"""The API's limit on events in one request."""
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers that mean "try again later"; any other is final."""
MAX_RETRY_AFTER_S = 600.0
"""The longest ``Retry-After`` honoured, against a garbled header holding the sender for days."""
USER_AGENT = f"feedback-flywheel-client/{__version__} (python; httpx {httpx.__version__})"
_BODY_START, _BODY_END = b'{"events":[', b"]}"


@dataclass(frozen=True, slots=True)
class Options:
    """A client's settings, checked once (``Client`` documents each)."""

    endpoint: str
    """The events URL, ``<url>/v1/events``."""
    key: str
    app: App
    batch_size: int
    max_batch_bytes: int
    flush_interval: float
    max_queue_size: int
    max_queue_bytes: int
    max_event_bytes: int
    max_retries: int
    retry_base: float
    retry_cap: float
    timeout: float
    partial: bool
    gzip: bool

    def __post_init__(self) -> None:
        if not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("url must be the API's http:// or https:// address")
        if not self.key or not self.key.strip():
            raise ValueError("key must be a write key of the API")
        if not self.app.get("name") or not self.app.get("version"):
            raise ValueError('app needs a name and a version, e.g. {"name": "chat-api", ...}')
        if not 1 <= self.batch_size <= MAX_EVENTS_PER_REQUEST:
            raise ValueError(f"batch_size must be 1 to {MAX_EVENTS_PER_REQUEST}")
        if self.max_event_bytes < 1 or self.max_batch_bytes < self.max_event_bytes + len(
            _BODY_START + _BODY_END
        ):
            raise ValueError("max_batch_bytes must leave room for an event of max_event_bytes")
        if self.max_queue_size < 1 or self.max_queue_bytes < self.max_event_bytes:
            raise ValueError("max_queue_size must be at least 1, max_queue_bytes at least "
                             "max_event_bytes")  # fmt: skip
        if self.flush_interval <= 0 or self.timeout <= 0:
            raise ValueError("flush_interval and timeout must be positive")
        if self.max_retries < 0 or self.retry_base < 0 or self.retry_cap < self.retry_base:
            raise ValueError("max_retries and retry_base must be >= 0, retry_cap >= retry_base")

    def request_url(self) -> httpx.URL:
        """Where batches are posted: the endpoint, with ``?partial=true`` when partial."""
        url = httpx.URL(self.endpoint)
        return url.copy_merge_params({"partial": "true"}) if self.partial else url


def drop(item: PreparedEvent, reason: DropReason, message: str, **details: Any) -> DroppedEvent:
    """The report of ``item`` dropped for ``reason``."""
    return DroppedEvent(item.event_id, reason, message, event=item.event, **details)


class EventQueue:
    """A bounded FIFO of events with the batching rule; no locking (the clients lock).

    A batch is due when the queue holds ``batch_size`` events or ``max_batch_bytes`` of them,
    when its oldest event waited ``flush_interval`` seconds, or when a flush asked for events
    not taken yet.
    """

    def __init__(self, options: Options) -> None:
        self.options = options
        self.items: deque[PreparedEvent] = deque()
        self.times: deque[float] = deque()
        """When each queued event was added."""
        self.bytes = 0
        self.added = 0
        """Events ever added; a flush waits until this many are settled."""
        self.taken = 0
        """Events ever taken out for sending."""
        self.flush_to = 0
        """Send without waiting until this many events were taken (set by a flush)."""

    def __len__(self) -> int:
        return len(self.items)

    def put(self, item: PreparedEvent, now: float) -> bool:
        """Add ``item``; False (and nothing added) if the queue is full."""
        size = len(item.data) + 1
        if (
            len(self.items) >= self.options.max_queue_size
            or self.bytes + size > self.options.max_queue_bytes
        ):
            return False
        self.items.append(item)
        self.times.append(now)
        self.bytes += size
        self.added += 1
        return True

    def due_in(self, now: float) -> float | None:
        """Seconds until a batch is due (0: now); None while the queue is empty."""
        if not self.items:
            return None
        if (
            len(self.items) >= self.options.batch_size
            or self.bytes + len(_BODY_START + _BODY_END) >= self.options.max_batch_bytes
            or self.taken < self.flush_to
        ):
            return 0.0
        return max(0.0, self.times[0] + self.options.flush_interval - now)

    def take(self) -> list[PreparedEvent]:
        """The next batch: as many events as fit ``batch_size`` and ``max_batch_bytes``."""
        batch = list(next(batches(self.items, self.options), []))
        for item in batch:
            self.items.popleft()
            self.times.popleft()
            self.bytes -= len(item.data) + 1
        self.taken += len(batch)
        return batch

    def drain(self) -> list[PreparedEvent]:
        """Everything still queued, emptying the queue."""
        items = list(self.items)
        self.items.clear()
        self.times.clear()
        self.bytes = 0
        self.taken += len(items)
        return items


def batches(items: Iterable[PreparedEvent], options: Options) -> Iterator[list[PreparedEvent]]:
    """``items`` in order, cut into batches of at most ``batch_size`` events whose body stays
    within ``max_batch_bytes``."""
    batch: list[PreparedEvent] = []
    size = len(_BODY_START + _BODY_END) - 1  # n events need n - 1 commas
    for item in items:
        if batch and (
            len(batch) == options.batch_size or size + len(item.data) + 1 > options.max_batch_bytes
        ):
            yield batch
            batch, size = [], len(_BODY_START + _BODY_END) - 1
        batch.append(item)
        size += len(item.data) + 1
    if batch:
        yield batch


def body(items: list[PreparedEvent]) -> bytes:
    """The request body of a batch: ``{"events": [...]}`` from the events' JSON."""
    return _BODY_START + b",".join(item.data for item in items) + _BODY_END


def backoff(retry: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (from 0): full jitter, a uniform draw
    between 0 and ``min(cap, base * 2**retry)``."""
    return rng.uniform(0.0, min(cap, base * 2.0 ** min(retry, 64)))


def retry_after(value: str | None, *, cap: float = MAX_RETRY_AFTER_S) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (at most ``cap``); None if absent or
    unreadable. Whole seconds, as the API sends, or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


def _errors(raw: object) -> list[tuple[int | None, EventError]]:
    """The ``errors`` of an error answer as (index, error) pairs; nothing if malformed."""
    found: list[tuple[int | None, EventError]] = []
    if not isinstance(raw, list):
        return found
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        index = entry.get("index")
        error = EventError(
            path=str(entry.get("path", "")),
            type=str(entry.get("type", "")),
            message=str(entry.get("message", "")),
        )
        found.append((index if isinstance(index, int) else None, error))
    return found


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Delivery:
    """One batch's way to the API, as a state machine: ``request()`` gives what to send,
    ``answered()`` or ``failed()`` take what happened and return how long to wait before
    sending again (None: finished). ``accepted`` and ``dropped`` hold the outcome."""

    def __init__(self, items: list[PreparedEvent], options: Options, rng: random.Random) -> None:
        self.options = options
        self.rng = rng
        self.pending = items
        self.accepted: list[str] = []
        self.dropped: list[DroppedEvent] = []
        self.retries = 0
        content = body(items)
        headers = {
            "Authorization": f"Bearer {options.key}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        if options.gzip:
            # The API counts its size limit on the decompressed body; mtime=0 keeps a resend
            # byte for byte the same.
            content = gzip.compress(content, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self.content = content
        self.headers = headers

    @property
    def done(self) -> bool:
        """True once every event is accepted or dropped."""
        return not self.pending

    def answered(self, response: httpx.Response) -> float | None:
        """Take the API's answer; seconds to wait before resending, or None when finished."""
        status = response.status_code
        if status == 202:
            self.accepted += [item.event_id for item in self.pending]
            self.pending = []
            return None
        if status in RETRY_STATUSES:
            hint = retry_after(response.headers.get("Retry-After"))
            return self._retry(hint, status, f"HTTP {status}")
        data = _json(response)
        if status == 207:
            self._partial(data)
        elif status == 422:
            self._refused_events(data, status)
        else:
            message = str(data.get("message") or f"HTTP {status}")
            if 200 <= status < 300:
                message = f"unexpected HTTP {status}: is the URL the Feedback Flywheel API?"
            self._drop_all("refused", message, status_code=status)
        return None

    def failed(self, error: httpx.TransportError) -> float | None:
        """Take a network error (the request may or may not have arrived); as ``answered``."""
        return self._retry(None, None, f"network error ({type(error).__name__})")

    def broken(self, error: Exception) -> None:
        """Take an error that is neither an answer nor a network error (a URL httpx refuses,
        a bug): the pending events are dropped as ``refused``."""
        self._drop_all("refused", f"the request could not be made ({type(error).__name__})")

    def stop(self) -> None:
        """Drop what is still pending: the client is closing."""
        self._drop_all("closed", "the client was closed before the event was delivered")

    def _retry(self, hint: float | None, status: int | None, what: str) -> float | None:
        if self.retries >= self.options.max_retries:
            self._drop_all(
                "retries_exhausted",
                f"gave up after {self.retries} retries; last: {what}",
                status_code=status,
            )
            return None
        delay = hint
        if delay is None:
            delay = backoff(
                self.retries, base=self.options.retry_base, cap=self.options.retry_cap,
                rng=self.rng,
            )  # fmt: skip
        self.retries += 1
        return delay

    def _partial(self, data: dict[str, Any]) -> None:
        """A 207: the accepted events are stored, the rejected ones are dropped."""
        results = data.get("results")
        by_index = {}
        if isinstance(results, list):
            by_index = {r.get("index"): r for r in results if isinstance(r, dict)}
        for index, item in enumerate(self.pending):
            result = by_index.get(index)
            if result is not None and result.get("status") == "accepted":
                self.accepted.append(item.event_id)
                continue
            errors = tuple(error for _, error in _errors((result or {}).get("errors")))
            message = "the API rejected the event" if result else "the answer did not list it"
            self.dropped.append(drop(item, "rejected", message, status_code=207, errors=errors))
        self.pending = []

    def _refused_events(self, data: dict[str, Any], status: int) -> None:
        """A 422 (no partial acceptance): nothing was stored. Events the errors name are
        ``rejected`` with their errors; the others are ``refused`` with the batch."""
        errors = _errors(data.get("errors"))
        general = tuple(error for index, error in errors if index is None)
        for index, item in enumerate(self.pending):
            own = tuple(error for i, error in errors if i == index)
            if own:
                self.dropped.append(
                    drop(item, "rejected", "the API rejected the event", status_code=status,
                         errors=own)
                )  # fmt: skip
            else:
                message = str(data.get("message") or "refused with its batch")
                self.dropped.append(
                    drop(item, "refused", message, status_code=status, errors=general)
                )
        self.pending = []

    def _drop_all(self, reason: DropReason, message: str, **details: Any) -> None:
        self.dropped += [drop(item, reason, message, **details) for item in self.pending]
        self.pending = []
