"""The protocol's rules without a server: backoff with full jitter, reading ``Retry-After``,
cutting batches by count and bytes, and what each answer means for a batch's events."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from flywheel_client import PreparedEvent
from flywheel_client._protocol import (
    MAX_RETRY_AFTER_S,
    RETRY_STATUSES,
    Delivery,
    Options,
    backoff,
    batches,
    body,
    retry_after,
)
from tests.helpers.scripted_api import APP, KEY


def options(**changes: Any) -> Options:
    values: dict[str, Any] = {
        "endpoint": "http://api.test/v1/events", "key": KEY, "app": APP, "batch_size": 100,
        "max_batch_bytes": 512 * 1024, "flush_interval": 1.0, "max_queue_size": 10_000,
        "max_queue_bytes": 32 * 1024 * 1024, "max_event_bytes": 64 * 1024, "max_retries": 10,
        "retry_base": 1.0, "retry_cap": 60.0, "timeout": 30.0, "partial": True, "gzip": False,
    }  # fmt: skip
    return Options(**(values | changes))


def queued(n: int, size: int = 100) -> list[PreparedEvent]:
    """``n`` events whose JSON is ``size`` bytes each."""
    items = []
    for i in range(n):
        event = {"event_id": f"e{i}", "pad": ""}
        event["pad"] = "x" * (size - len(json.dumps(event, separators=(",", ":"))))
        items.append(
            PreparedEvent(f"e{i}", event, json.dumps(event, separators=(",", ":")).encode())
        )
    return items


def test_backoff_is_full_jitter_below_an_exponential_bound_with_a_cap() -> None:
    rng = random.Random(5)
    for retry, bound in [(0, 1.0), (1, 2.0), (3, 8.0), (5, 32.0), (6, 60.0), (30, 60.0)]:
        draws = [backoff(retry, base=1.0, cap=60.0, rng=rng) for _ in range(2000)]
        assert all(0.0 <= d <= bound for d in draws)
        # Full jitter: spread over the whole range, not bunched near the bound.
        assert min(draws) < 0.05 * bound and max(draws) > 0.95 * bound
        assert 0.45 * bound < sum(draws) / len(draws) < 0.55 * bound


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(" 1 ") == 1.0
    assert retry_after("0") == 0.0
    assert retry_after("-4") == 0.0
    assert retry_after("86400") == MAX_RETRY_AFTER_S
    assert retry_after(None) is None
    assert retry_after("soon") is None
    assert retry_after("nan") is None
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8.0 <= (retry_after(in_ten) or 0) <= 10.0


def test_batches_keep_the_order_and_both_limits() -> None:
    items = queued(23, size=100)
    by_count = list(batches(items, options(batch_size=10)))
    assert [len(b) for b in by_count] == [10, 10, 3]
    by_bytes = list(batches(items, options(max_batch_bytes=1024, max_event_bytes=900)))
    assert [item for b in by_bytes for item in b] == items
    assert all(len(body(b)) <= 1024 for b in by_bytes)
    assert len(by_bytes[0]) == 10  # 13 + 10 * 100 + 9 commas = 1022 bytes
    assert json.loads(body(by_bytes[0])) == {"events": [i.event for i in by_bytes[0]]}


def delivery(n: int = 3, **changes: Any) -> Delivery:
    return Delivery(queued(n), options(**changes), random.Random(1))


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_a_202_accepts_the_whole_batch() -> None:
    d = delivery()
    assert d.answered(answer(202, {"accepted": 3})) is None
    assert d.done and d.accepted == ["e0", "e1", "e2"] and d.dropped == []


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_busy_answers_are_retried_after_retry_after_or_backoff(status: int) -> None:
    d = delivery(retry_base=1.0)
    assert d.answered(answer(status, headers={"Retry-After": "7"})) == 7.0
    wait = d.answered(answer(status))
    assert wait is not None and 0.0 <= wait <= 2.0  # backoff before the second retry
    assert not d.done and d.retries == 2


def test_retries_end_after_max_retries_with_every_event_reported() -> None:
    d = delivery(max_retries=1)
    assert d.answered(answer(503, headers={"Retry-After": "0"})) == 0.0
    assert d.failed(httpx.ConnectError("refused")) is None
    assert d.done and d.accepted == []
    assert [(e.event_id, e.reason, e.status_code) for e in d.dropped] == [
        ("e0", "retries_exhausted", None), ("e1", "retries_exhausted", None),
        ("e2", "retries_exhausted", None),
    ]  # fmt: skip
    assert "ConnectError" in d.dropped[0].message


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 415, 501, 505])
def test_other_answers_are_final(status: int) -> None:
    d = delivery()
    message = {"error": "x", "message": "the token is not a write key"}
    assert d.answered(answer(status, message)) is None
    assert [(e.reason, e.status_code) for e in d.dropped] == [("refused", status)] * 3
    assert d.dropped[0].message == "the token is not a write key"


def test_a_success_other_than_202_and_207_is_refused_as_a_wrong_url() -> None:
    d = delivery()
    assert d.answered(httpx.Response(200, text="<html>")) is None
    assert {e.reason for e in d.dropped} == {"refused"}
    assert "is the URL" in d.dropped[0].message


def test_a_207_drops_only_the_rejected_events_with_their_errors() -> None:
    d = delivery()
    results = [
        {"index": 0, "status": "accepted", "event_id": "e0"},
        {"index": 1, "status": "rejected", "errors": [
            {"path": "type", "type": "event_type_not_allowed", "message": "not for this key"}]},
        {"index": 2, "status": "accepted", "event_id": "e2"},
    ]  # fmt: skip
    assert d.answered(answer(207, {"accepted": 2, "rejected": 1, "results": results})) is None
    assert d.accepted == ["e0", "e2"]
    [dropped] = d.dropped
    assert (dropped.event_id, dropped.reason, dropped.status_code) == ("e1", "rejected", 207)
    assert [(e.path, e.type) for e in dropped.errors] == [("type", "event_type_not_allowed")]


def test_a_422_rejects_the_named_events_and_refuses_their_batch_mates() -> None:
    d = delivery()
    errors = [{"index": 2, "path": "prompt[0].role", "type": "literal_error", "message": "bad"}]
    d.answered(answer(422, {"error": "invalid_events", "message": "events break the contract",
                            "errors": errors}))  # fmt: skip
    assert [(e.event_id, e.reason) for e in d.dropped] == [
        ("e0", "refused"), ("e1", "refused"), ("e2", "rejected"),
    ]  # fmt: skip
    assert str(d.dropped[2]) == (
        "event e2 dropped (rejected, HTTP 422): prompt[0].role: bad (literal_error)"
    )


def test_the_request_carries_the_key_json_and_partial_and_gzip_when_asked() -> None:
    plain, zipped = delivery(), delivery(gzip=True)
    assert plain.headers["Authorization"] == f"Bearer {KEY}"
    assert plain.headers["Content-Type"] == "application/json"
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.content) == plain.content
    assert str(options().request_url()) == "http://api.test/v1/events?partial=true"
    assert str(options(partial=False).request_url()) == "http://api.test/v1/events"


def test_closing_drops_what_is_pending() -> None:
    d = delivery()
    d.answered(answer(503))
    d.stop()
    assert d.done and {e.reason for e in d.dropped} == {"closed"}
