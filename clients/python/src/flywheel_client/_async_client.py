"""``AsyncClient``: the same rules as ``Client``, with an asyncio task as the sender."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import httpx

from flywheel_client._base import BaseClient, monotonic
from flywheel_client._events import PreparedEvent
from flywheel_client._protocol import Delivery, batches, drop
from flywheel_client._results import SendResult


class AsyncClient(BaseClient[httpx.AsyncClient]):
    """Posts events to a Feedback Flywheel API in batches, from an asyncio task.

    Everything ``Client`` says holds (options, batching, the full queue, retries, ``on_error``),
    with these differences: the helpers are plain methods that queue and return at once, and
    must be called on the event loop's thread, inside it (the sender task starts with the first
    event); ``send``, ``flush`` and ``close`` are coroutines; ``http_client`` is an
    ``httpx.AsyncClient``. Use ``async with`` or ``await client.close()`` before the loop ends.
    """

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient()

    def _start_sender(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        """Set when the sender should look at the queue again."""
        self._progress = asyncio.Event()
        """Set whenever events are settled, for flushes waiting."""
        self._stop = asyncio.Event()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def send(self, events: Iterable[Mapping[str, Any] | PreparedEvent]) -> SendResult:
        """Post ``events`` now, in batches, with the same retries, and return the outcome
        (``Client.send`` explains)."""
        items, too_large = self._prepare_all(events)
        order = [item.event_id for item in items] + [e.event_id for e in too_large]
        deliveries = []
        for batch in batches(items, self._options):
            if self._closed:
                delivery = self._delivery(batch)
                delivery.stop()
            else:
                delivery = await self._deliver(batch)
            self._count(delivery)
            deliveries.append(delivery)
        return self._result(deliveries, too_large, order)

    async def flush(self, timeout: float | None = None) -> bool:
        """Send every event queued so far and wait until each is accepted or dropped; False if
        ``timeout`` seconds passed first."""
        if asyncio.current_task() is self._task and self._task is not None:
            return False  # called from on_error: the sender cannot wait for itself
        target = self._queue.added
        self._queue.flush_to = max(self._queue.flush_to, target)
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                while self._settled < target:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, timeout: float | None = None) -> None:
        """Flush (for at most ``timeout`` seconds), stop the sender and release the connection;
        as ``Client.close``."""
        if self._closed:
            return
        await self.flush(timeout)
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._task is not None and self._task is not asyncio.current_task():
            await self._task
        left = self._queue.drain()
        self._settled += len(left)
        self._progress.set()
        self._report([drop(item, "closed", "the client was closed before the event was sent")
                      for item in left])  # fmt: skip
        self._log_drops(now=True)
        if self._owns_http:
            await self._http.aclose()

    # --- The sender -----------------------------------------------------------------------------

    def _put(self, item: PreparedEvent) -> None:
        if self._closed:
            self._report([drop(item, "closed", "the client is closed")])
            return
        if self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "AsyncClient queues events from inside a running event loop; use Client "
                    "from synchronous code"
                ) from None
            self._task = loop.create_task(self._run(), name="flywheel-client")
        if not self._queue.put(item, now := monotonic()):
            self._report([drop(item, "queue_full", "the queue was full (max_queue_size or "
                               "max_queue_bytes)")])  # fmt: skip
            return
        if len(self._queue) == 1 or self._queue.due_in(now) == 0.0:
            self._wake.set()

    def _queued(self) -> int:
        return len(self._queue) + self._in_flight

    async def _run(self) -> None:
        while True:
            while True:
                if self._stop.is_set():
                    return
                wait = self._queue.due_in(monotonic())
                if wait == 0.0:
                    break
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            batch = self._queue.take()
            self._in_flight = len(batch)
            delivery = await self._deliver(batch)
            self._count(delivery)
            self._report(delivery.dropped, counted=True)
            self._in_flight = 0
            self._settled += len(batch)
            self._progress.set()

    async def _deliver(self, items: list[PreparedEvent]) -> Delivery:
        """Post one batch until every event is accepted or dropped."""
        delivery = self._delivery(items)
        while not delivery.done:
            try:
                response = await self._http.post(
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
            if await self._stopped_within(delay):
                delivery.stop()
        return delivery

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait ``seconds``; True at once if the client is closing."""
        try:
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        except TimeoutError:
            return False
        return True
