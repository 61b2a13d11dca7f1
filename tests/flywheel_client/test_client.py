"""``Client`` against a scripted API over real HTTP: batching by size, bytes and time, flush and
close, retries by the protocol (``Retry-After``, backoff, network cuts), partial acceptance, the
error callback, gzip, the bounded queue, and nothing private in its logs."""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from typing import Any

import pytest

from flywheel_client import Client, DroppedEvent
from tests.helpers.scripted_api import (
    APP,
    FAST_RETRIES,
    KEY,
    Answer,
    ScriptedApi,
    rejecting,
)

USER = "alice@example.com"
SECRET_TEXT = "the secret plan is 42"


def make(api: ScriptedApi, dropped: list[DroppedEvent] | None = None, **options: Any) -> Client:
    """A client of ``api`` with near-instant backoff, collecting what it drops."""
    on_error = dropped.append if dropped is not None else None
    return Client(api.url, KEY, app=APP, on_error=on_error, **(FAST_RETRIES | options))


def rate(client: Client, n: int = 1, **fields: Any) -> list[str]:
    return [
        client.rating(user_id=USER, conversation_id="c1", response_id=f"r{i}", value="up",
                      reason=SECRET_TEXT, **fields)
        for i in range(n)
    ]  # fmt: skip


def test_events_are_posted_as_a_batch_with_the_key_and_partial(api: ScriptedApi) -> None:
    with make(api) as client:
        ids = rate(client, 3)
        assert client.flush(10)
    [request] = api.requests
    assert request.event_ids == ids
    assert request.query == "partial=true"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("feedback-flywheel-client/")
    assert client.stats.accepted == 3 and client.stats.queued == 0


def test_a_batch_goes_when_it_holds_batch_size_events(api: ScriptedApi) -> None:
    with make(api, batch_size=10, flush_interval=60) as client:
        ids = rate(client, 25)
        first, second = api.wait_for_requests(2)
        time.sleep(0.2)
        assert len(api.requests) == 2  # the last 5 wait for their batch to fill or a flush
        assert client.stats.queued == 5
        assert client.flush(10)
    assert [len(r.events) for r in api.requests] == [10, 10, 5]
    assert [event_id for r in api.requests for event_id in r.event_ids] == ids


def test_a_batch_goes_when_its_first_event_waited_flush_interval(api: ScriptedApi) -> None:
    with make(api, flush_interval=0.3) as client:
        started = time.monotonic()
        rate(client, 2)
        [request] = api.wait_for_requests(1)
    assert request.at - started >= 0.3
    assert len(request.events) == 2


def test_batches_stay_within_max_batch_bytes(api: ScriptedApi) -> None:
    with make(api, max_batch_bytes=4096, max_event_bytes=2048) as client:
        ids = [client.edit(user_id=USER, conversation_id="c1", response_id=f"r{i}",
                           edited_text="y" * 900) for i in range(12)]  # fmt: skip
        assert client.flush(10)
    assert len(api.requests) >= 3
    assert all(len(r.raw) <= 4096 for r in api.requests)
    assert [event_id for r in api.requests for event_id in r.event_ids] == ids


def test_an_event_over_max_event_bytes_is_dropped_without_blocking_the_others(
    api: ScriptedApi,
) -> None:
    dropped: list[DroppedEvent] = []
    with make(api, dropped, max_event_bytes=2048) as client:
        big = client.edit(user_id=USER, conversation_id="c1", response_id="r1",
                          edited_text="y" * 4000)  # fmt: skip
        small = rate(client, 1)
    assert [(d.event_id, d.reason) for d in dropped] == [(big, "too_large")]
    assert api.events() and [e["event_id"] for e in api.events()] == small


def test_a_503_is_sent_again_after_its_retry_after(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    api.answer_with(Answer(503, headers={"Retry-After": "1"}))
    with make(api, dropped) as client:  # backoff alone would resend within 0.05 s
        ids = rate(client, 3)
        assert client.flush(10)
    first, second = api.requests
    assert second.at - first.at >= 0.95
    assert first.raw == second.raw and second.event_ids == ids  # the same events, same ids
    assert dropped == []
    assert (client.stats.accepted, client.stats.retries) == (3, 1)


def test_a_429_is_sent_again_after_its_retry_after(api: ScriptedApi) -> None:
    api.answer_with(Answer(429, headers={"Retry-After": "1"}, body={"error": "rate_limited"}))
    with make(api) as client:
        rate(client, 2)
        assert client.flush(10)
    first, second = api.requests
    assert second.at - first.at >= 0.95 and second.raw == first.raw
    assert client.stats.accepted == 2


def test_5xx_and_408_without_retry_after_are_retried_with_backoff(api: ScriptedApi) -> None:
    api.answer_with(Answer(500), Answer(502), Answer(504), Answer(408))
    with make(api, retry_base=0.05, retry_cap=0.2) as client:
        ids = rate(client, 2)
        assert client.flush(10)
    assert len(api.requests) == 5
    assert all(r.event_ids == ids for r in api.requests)
    assert client.stats.retries == 4 and client.stats.accepted == 2


def test_a_connection_cut_before_the_answer_is_retried_with_the_same_event_ids(
    api: ScriptedApi,
) -> None:
    api.answer_with(Answer(cut=True), Answer(cut=True))
    with make(api) as client:
        ids = rate(client, 4)
        assert client.flush(10)
    assert len(api.requests) == 3
    assert all(r.event_ids == ids for r in api.requests)  # a resend is safe: same ids
    assert client.stats.accepted == 4


def test_an_api_that_cannot_be_reached_exhausts_the_retries_and_reports(
    api: ScriptedApi,
) -> None:
    dropped: list[DroppedEvent] = []
    unreachable = ScriptedApi()
    unreachable.url = "http://127.0.0.1:9"  # discard port: nothing listens
    with make(unreachable, dropped, max_retries=2) as client:
        ids = rate(client, 2)
        assert client.flush(10)
    assert [(d.event_id, d.reason, d.status_code) for d in dropped] == [
        (ids[0], "retries_exhausted", None), (ids[1], "retries_exhausted", None),
    ]  # fmt: skip
    assert "network error" in dropped[0].message
    assert client.stats.retries == 2


def test_retries_end_after_max_retries(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    api.answer_with(default=Answer(503, headers={"Retry-After": "0"}))
    with make(api, dropped, max_retries=3) as client:
        rate(client, 2)
        assert client.flush(10)
    assert len(api.requests) == 4
    assert [(d.reason, d.status_code) for d in dropped] == [("retries_exhausted", 503)] * 2


@pytest.mark.parametrize("status", [400, 401, 403, 413, 415])
def test_other_4xx_are_not_retried_and_every_event_is_reported(
    api: ScriptedApi, status: int
) -> None:
    dropped: list[DroppedEvent] = []
    api.answer_with(Answer(status, body={"error": "x", "message": "the token is not a write key"}))
    with make(api, dropped) as client:
        ids = rate(client, 3)
        assert client.flush(10)
        rate(client, 1)  # the client carries on with the next batch
        assert client.flush(10)
    assert len(api.requests) == 2
    assert [(d.event_id, d.reason, d.status_code) for d in dropped] == [
        (event_id, "refused", status) for event_id in ids
    ]
    assert client.stats.accepted == 1


def test_a_207_drops_only_the_rejected_event_and_resends_nothing(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    api.answer_with(rejecting(1))
    with make(api, dropped) as client:
        ids = rate(client, 3)
        assert client.flush(10)
    assert len(api.requests) == 1
    [bad] = dropped
    assert (bad.event_id, bad.reason, bad.status_code) == (ids[1], "rejected", 207)
    assert [(e.path, e.type) for e in bad.errors] == [("type", "event_type_not_allowed")]
    assert bad.event["event_id"] == ids[1]  # the event itself, to fix and send again
    assert (client.stats.accepted, client.stats.dropped) == (2, 1)


def test_a_422_without_partial_acceptance_reports_which_events_were_bad(
    api: ScriptedApi,
) -> None:
    dropped: list[DroppedEvent] = []
    errors = [{"index": 0, "path": "value", "type": "literal_error", "message": "up or down"}]
    api.answer_with(Answer(422, body={"error": "invalid_events", "errors": errors}))
    with make(api, dropped, partial=False) as client:
        ids = rate(client, 2)
        assert client.flush(10)
    assert api.requests[0].query == ""
    assert [(d.event_id, d.reason) for d in dropped] == [(ids[0], "rejected"), (ids[1], "refused")]
    assert [e.path for e in dropped[0].errors] == ["value"]


def test_gzip_compresses_the_body(api: ScriptedApi) -> None:
    with make(api, gzip=True) as client:
        ids = rate(client, 20)
        assert client.flush(10)
    [request] = api.requests
    assert request.headers["content-encoding"] == "gzip"
    plain = gzip.decompress(request.raw)
    assert [e["event_id"] for e in json.loads(plain)["events"]] == ids
    assert len(request.raw) < len(plain) / 3


def test_a_full_queue_drops_the_new_events_and_keeps_the_queued(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    with make(api, dropped, max_queue_size=3, flush_interval=60) as client:
        ids = rate(client, 5)
        assert [(d.event_id, d.reason) for d in dropped] == [
            (ids[3], "queue_full"), (ids[4], "queue_full"),
        ]  # fmt: skip
        assert client.flush(10)
    assert [e["event_id"] for e in api.events()] == ids[:3]


def test_close_sends_what_is_queued(api: ScriptedApi) -> None:
    client = make(api, flush_interval=60)
    ids = rate(client, 7)
    assert api.requests == []
    client.close()
    assert [e["event_id"] for e in api.events()] == ids
    dropped: list[DroppedEvent] = []
    client._on_error = dropped.append
    late = rate(client, 1)
    client.close()  # a second close does nothing
    assert [(d.event_id, d.reason) for d in dropped] == [(late[0], "closed")]


def test_close_with_a_timeout_gives_up_on_an_api_that_stays_busy(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    api.answer_with(default=Answer(503, headers={"Retry-After": "30"}))
    client = make(api, dropped, flush_interval=60)
    ids = rate(client, 2)
    started = time.monotonic()
    client.close(timeout=0.5)
    assert time.monotonic() - started < 5
    assert [(d.event_id, d.reason) for d in dropped] == [(i, "closed") for i in ids]


def test_a_raising_callback_does_not_stop_the_sender(
    api: ScriptedApi, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: DroppedEvent) -> None:
        raise RuntimeError(f"cannot handle {event.event}")

    api.answer_with(Answer(400))
    with Client(api.url, KEY, app=APP, on_error=broken, **FAST_RETRIES) as client:
        rate(client, 1)
        assert client.flush(10)
        later = rate(client, 1)
        assert client.flush(10)
    assert api.requests[-1].event_ids == later
    assert "on_error callback raised RuntimeError" in caplog.text
    assert SECRET_TEXT not in caplog.text


def test_dropped_events_are_logged_without_text_user_or_key(
    api: ScriptedApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    error = {"index": 0, "path": "value", "type": "literal_error", "message": "up or down"}
    api.answer_with(Answer(422, body={"errors": [error]}))
    with make(api) as client:  # no on_error: a summary is logged
        rate(client, 2)
        assert client.flush(10)
    assert "dropped 2 events (refused: 1, rejected: 1; HTTP 422)" in caplog.text
    for private in (USER, SECRET_TEXT, KEY):
        assert private not in caplog.text


def test_a_dropped_events_str_and_repr_leave_out_the_event(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    api.answer_with(Answer(403))
    with make(api, dropped) as client:
        rate(client, 1)
    shown = str(dropped[0]) + repr(dropped[0])
    assert dropped[0].event_id in shown and "refused" in shown
    assert USER not in shown and SECRET_TEXT not in shown


def test_send_posts_now_and_returns_the_outcome(api: ScriptedApi) -> None:
    api.answer_with(Answer(503, headers={"Retry-After": "0"}), rejecting(0))
    events = [
        {"type": "rating", "user_id": USER, "conversation_id": "c1", "response_id": f"r{i}",
         "value": "up"}
        for i in range(3)
    ]  # fmt: skip
    with make(api, batch_size=2) as client:
        result = client.send(events)
    assert [len(r.events) for r in api.requests] == [2, 2, 1]
    sent = [r.event_ids for r in api.requests]
    assert result.accepted == [sent[1][1], sent[2][0]]
    assert [(d.event_id, d.reason) for d in result.dropped] == [(sent[1][0], "rejected")]
    assert result.retries == 1


def test_events_from_many_threads_arrive_once_each(api: ScriptedApi) -> None:
    with make(api, batch_size=50, flush_interval=0.05) as client:
        ids: list[str] = []
        lock = threading.Lock()

        def post() -> None:
            mine = rate(client, 100)
            with lock:
                ids.extend(mine)

        threads = [threading.Thread(target=post) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert client.flush(10)
    received = [e["event_id"] for e in api.events()]
    assert sorted(received) == sorted(ids) and len(set(received)) == 800


def test_a_prepared_event_is_sent_as_prepared(api: ScriptedApi) -> None:
    with make(api) as client:
        prepared = client.prepare({"type": "rating", "user_id": USER, "conversation_id": "c1",
                                   "response_id": "r1", "value": "up"})  # fmt: skip
        assert api.requests == []  # preparing queues nothing
        assert client.track(prepared) == prepared.event_id
        assert client.flush(10)
        result = client.send([prepared])  # the same bytes again: a resend
    first, second = api.requests
    assert first.raw == second.raw == b'{"events":[' + prepared.data + b"]}"
    assert result.accepted == [prepared.event_id]
    assert USER not in repr(prepared)


def test_a_full_queue_without_a_callback_logs_counts_not_a_line_per_event(
    api: ScriptedApi, caplog: pytest.LogCaptureFixture
) -> None:
    with make(api, max_queue_size=1, flush_interval=60) as client:
        rate(client, 50)
    lines = [r.getMessage() for r in caplog.records if r.name == "flywheel_client"]
    # The first drop at once, the rest summed up when the client closed.
    assert lines == [
        "dropped 1 events (queue_full: 1); pass on_error to handle them",
        "dropped 48 events (queue_full: 48); pass on_error to handle them",
    ]
    assert client.stats.dropped == 49 and client.stats.accepted == 1
