"""Posting simulated events to the API in batches with the Python client (``flywheel_client``),
as a chat backend would: its retries resend a batch the API could not take."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from flywheel.errors import FlywheelError
from flywheel_client import App, Client, DroppedEvent

EVENTS_PATH = "/v1/events"
SIMULATOR_APP: App = {"name": "flywheel-simulator", "version": "1"}
"""The client's ``app``; unused while every simulated event carries its own."""


def iter_batches(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Group events into lists of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class SimulatorPostError(FlywheelError):
    """The API refused a batch of simulated events; names the status and batch, never the text."""

    def __init__(self, message: str, *, status_code: int | None, batch_index: int) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.batch_index = batch_index


@dataclass
class PostSummary:
    """What ``post_events`` did."""

    batches: int = 0
    events: int = 0
    accepted: int = 0
    retries: int = 0
    seconds: float = 0.0


def api_base(url: str) -> str:
    """The API's base URL from the events URL the commands take (``.../v1/events``)."""
    url = url.rstrip("/")
    return url.removesuffix(EVENTS_PATH)


def post_events(
    events: Iterable[dict[str, Any]],
    *,
    url: str,
    key: str,
    batch_size: int = 100,
    client: httpx.Client | None = None,
    on_batch: Callable[[int], None] | None = None,
    max_retries: int = 5,
) -> PostSummary:
    """POST events in batches to ``url`` (the API's ``/v1/events``) and stop at the first batch
    the API does not store in full. Network errors and busy answers (503, 429, ...) are retried
    up to ``max_retries`` times by the client's rules. ``client`` is the HTTP client to post
    with (kept open)."""
    summary = PostSummary()
    started = time.monotonic()
    poster = Client(
        api_base(url), key, app=SIMULATOR_APP, batch_size=batch_size, max_retries=max_retries,
        http_client=client,
    )  # fmt: skip
    try:
        for index, batch in enumerate(iter_batches(events, batch_size)):
            summary.batches += 1
            summary.events += len(batch)
            result = poster.send(batch)
            summary.retries += result.retries
            summary.accepted += len(result.accepted)
            if result.dropped:
                raise _refused(result.dropped[0], index=index, url=url, retries=result.retries)
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        poster.close()
        summary.seconds = time.monotonic() - started
    return summary


def _refused(dropped: DroppedEvent, *, index: int, url: str, retries: int) -> SimulatorPostError:
    """The error for a batch the API did not store; its status and reason, never event text."""
    status = dropped.status_code
    if status is None:
        message = f"batch {index} could not be sent to {url} ({dropped.message})"
    else:
        tried = f" after {retries} retries" if retries else ""
        message = f"batch {index} was refused with HTTP {status}{tried} ({dropped.reason})"
    return SimulatorPostError(message, status_code=status, batch_index=index)
