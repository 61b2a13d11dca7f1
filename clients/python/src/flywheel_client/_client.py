"""``Client``: events queued by any thread, posted in batches by a background thread."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from flywheel_client._base import BaseClient, monotonic
from flywheel_client._events import PreparedEvent
from flywheel_client._protocol import Delivery, batches, drop
from flywheel_client._results import SendResult


class Client(BaseClient[httpx.Client]):
    """Posts events to a Feedback Flywheel API in batches, from a background thread.

    ``url`` is the API's address (``https://flywheel.example.com``; events go to its
    ``/v1/events``), ``key`` a write key, ``app`` the name and version of the application the
    events come from. The helpers (``generation``, ``copy``, ``edit``, ``regenerate``,
    ``ab_choice``, ``rating``, ``track``) queue an event and return its id at once; they never
    wait and never raise for delivery. They are safe to call from any thread.

    Batches: a batch is posted when ``batch_size`` events (at most 500) or ``max_batch_bytes``
    of JSON are queued, or when its first event waited ``flush_interval`` seconds. Events over
    ``max_event_bytes`` are dropped as ``too_large`` without being sent.

    The queue holds at most ``max_queue_size`` events and ``max_queue_bytes`` of JSON. When it
    is full, the new event is dropped (reported as ``queue_full``) and the queued ones are kept:
    adding never blocks the caller, and events already waiting are never pushed out.

    Retries follow the API protocol (network errors, 408, 429, 5xx but 501 and 505, with
    ``Retry-After`` or exponential backoff with full jitter from ``retry_base`` up to
    ``retry_cap`` seconds, at most ``max_retries`` times). With ``partial`` (the default) the API
    stores a batch's valid events and rejects only the invalid ones. ``gzip`` compresses
    request bodies (an API that accepts ``Content-Encoding: gzip`` is needed).

    ``on_error`` is called once per dropped event, with a ``DroppedEvent`` saying why, on the
    thread that dropped it (the sender thread, or the caller's for ``queue_full`` and
    ``too_large``); without it, drops are logged as counts on the ``flywheel_client`` logger.

    Call ``close()`` (or use ``with``) before the process exits: it sends what is queued.
    ``http_client`` lets you bring your own ``httpx.Client`` (proxies, TLS, transports); it is
    not closed with this client.
    """

    def _new_http(self) -> httpx.Client:
        return httpx.Client()

    def _start_sender(self) -> None:
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flywheel-client", daemon=True)
        self._thread.start()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(self, events: Iterable[Mapping[str, Any] | PreparedEvent]) -> SendResult:
        """Post ``events`` now, in batches, with the same retries, and wait for the outcome.

        For scripts and backfills that want to know what was stored; it does not use the
        queue, and dropped events are returned, not passed to ``on_error``.
        """
        items, too_large = self._prepare_all(events)
        order = [item.event_id for item in items] + [e.event_id for e in too_large]
        deliveries = []
        for batch in batches(items, self._options):
            if self._closed:
                delivery = self._delivery(batch)
                delivery.stop()
            else:
                delivery = self._deliver(batch)
            self._count(delivery)
            deliveries.append(delivery)
        return self._result(deliveries, too_large, order)

    def flush(self, timeout: float | None = None) -> bool:
        """Send every event queued so far without waiting for its batch to fill, and wait until
        each is accepted or dropped; False if ``timeout`` seconds passed first."""
        if threading.current_thread() is self._thread:
            return False  # called from on_error: the sender cannot wait for itself
        deadline = None if timeout is None else monotonic() + timeout
        with self._cond:
            target = self._queue.added
            self._queue.flush_to = max(self._queue.flush_to, target)
            self._cond.notify_all()
            while self._settled < target:
                remaining = None if deadline is None else deadline - monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Flush (for at most ``timeout`` seconds), stop the sender and release the connection.

        What could not be sent by then is dropped as ``closed``; a request in flight is let
        finish (within the request ``timeout`` the client was made with). Later events are
        dropped as ``closed`` too. Closing twice does nothing.
        """
        with self._cond:
            if self._closed:
                return
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._stop.set()
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        with self._cond:
            left = self._queue.drain()
            self._settled += len(left)
            self._cond.notify_all()
        self._report([drop(item, "closed", "the client was closed before the event was sent")
                      for item in left])  # fmt: skip
        self._log_drops(now=True)
        if self._owns_http:
            self._http.close()

    # --- The sender -----------------------------------------------------------------------------

    def _put(self, item: PreparedEvent) -> None:
        with self._cond:
            if self._closed:
                refused = drop(item, "closed", "the client is closed")
            elif not self._queue.put(item, now := monotonic()):
                refused = drop(item, "queue_full", "the queue was full (max_queue_size or "
                               "max_queue_bytes)")  # fmt: skip
            else:
                # Wake the sender only when it waits for nothing (an empty queue before) or a
                # batch became due; a wake-up per event would cost a thread switch each.
                if len(self._queue) == 1 or self._queue.due_in(now) == 0.0:
                    self._cond.notify_all()
                return
        self._report([refused])

    def _queued(self) -> int:
        with self._cond:
            return len(self._queue) + self._in_flight

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stop.is_set():
                        return
                    wait = self._queue.due_in(monotonic())
                    if wait == 0.0:
                        break
                    self._cond.wait(wait)
                batch = self._queue.take()
                self._in_flight = len(batch)
            delivery = self._deliver(batch)
            self._count(delivery)
            self._report(delivery.dropped, counted=True)
            with self._cond:
                self._in_flight = 0
                self._settled += len(batch)
                self._cond.notify_all()

    def _deliver(self, items: list[PreparedEvent]) -> Delivery:
        """Post one batch until every event is accepted or dropped."""
        delivery = self._delivery(items)
        while not delivery.done:
            try:
                response = self._http.post(
                    self._url, content=delivery.content, headers=delivery.headers,
                    timeout=self._options.timeout,
                )  # fmt: skip
            except httpx.TransportError as exc:
                delay = delivery.failed(exc)
            except Exception as exc:  # not the network, not an answer: never kill the sender
                delivery.broken(exc)
                break
            else:
                delay = delivery.answered(response)
            if delay is None:
                break
            self._count_retry()
            if self._stop.wait(delay):
                delivery.stop()
        return delivery
