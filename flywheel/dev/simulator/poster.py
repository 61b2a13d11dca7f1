"""Posting simulated events to the API in batches, resending a batch the API could not take."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from flywheel.errors import FlywheelError

RETRY_AFTER_CAP_S = 10.0


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


def _retry_after(response: httpx.Response) -> float:
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:  # an HTTP-date: not worth parsing for a local simulator
        seconds = 1.0
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


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
    """POST events in batches to ``url``; resend a batch after a 503, raise on other errors."""
    summary = PostSummary()
    started = time.monotonic()
    http = client if client is not None else httpx.Client(timeout=30.0)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        for index, batch in enumerate(iter_batches(events, batch_size)):
            summary.batches += 1
            summary.events += len(batch)
            summary.retries += _send(http, url, headers, batch, index, max_retries)
            summary.accepted += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        if client is None:
            http.close()
        summary.seconds = time.monotonic() - started
    return summary


def _send(
    http: httpx.Client,
    url: str,
    headers: dict[str, str],
    batch: list[dict[str, Any]],
    index: int,
    max_retries: int,
) -> int:
    """Send one batch until the API answers 202; returns how many retries that took."""
    # Resending is always safe: the API drops events whose event_id it already has.
    attempt = 0
    while True:
        try:
            response = http.post(url, json={"events": batch}, headers=headers)
        except httpx.TransportError as exc:
            if attempt >= max_retries:
                raise SimulatorPostError(
                    f"batch {index} could not be sent to {url} ({type(exc).__name__})",
                    status_code=None,
                    batch_index=index,
                ) from None
            delay = min(0.1 * 2**attempt, RETRY_AFTER_CAP_S)
        else:
            status = response.status_code
            if status == 202:
                return attempt
            # Anything but 202 and 503 is final; a 200 would mean the URL is not the events API.
            if status != 503 or attempt >= max_retries:
                tried = f" after {attempt} retries" if attempt else ""
                raise SimulatorPostError(
                    f"batch {index} was refused with HTTP {status}{tried}",
                    status_code=status,
                    batch_index=index,
                )
            delay = _retry_after(response)
        if delay > 0:
            time.sleep(delay)
        attempt += 1
