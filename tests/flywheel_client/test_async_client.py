"""``AsyncClient`` keeps ``Client``'s rules, from an asyncio task: batching by size and time,
flush and close, retries with ``Retry-After`` and after a cut connection, partial acceptance,
the bounded queue."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from flywheel_client import AsyncClient, DroppedEvent
from tests.helpers.scripted_api import (
    APP,
    FAST_RETRIES,
    KEY,
    Answer,
    ScriptedApi,
    rejecting,
)

pytestmark = pytest.mark.anyio


def make(
    api: ScriptedApi, dropped: list[DroppedEvent] | None = None, **options: Any
) -> AsyncClient:
    on_error = dropped.append if dropped is not None else None
    return AsyncClient(api.url, KEY, app=APP, on_error=on_error, **(FAST_RETRIES | options))


def rate(client: AsyncClient, n: int = 1) -> list[str]:
    return [client.rating(user_id="u1", conversation_id="c1", response_id=f"r{i}", value="up")
            for i in range(n)]  # fmt: skip


async def test_every_helper_queues_and_flush_posts_one_batch(api: ScriptedApi) -> None:
    async with make(api) as client:
        common: dict[str, Any] = {"user_id": "u1", "conversation_id": "c1"}
        ids = [
            client.generation(**common, response_id="r1", parent_id="m1", response="hi",
                              prompt=[{"role": "user", "content": "hello"}], model="m"),
            client.copy(**common, response_id="r1", text="hi"),
            client.edit(**common, response_id="r1", edited_text="hello"),
            client.regenerate(**common, response_id="r1"),
            client.ab_choice(**common, response_a_id="r1", response_b_id="r2", choice="a"),
            client.rating(**common, response_id="r1", value="up", metadata={"exp": "7"}),
        ]  # fmt: skip
        assert await client.flush(10)
    [request] = api.requests
    assert request.event_ids == ids and request.query == "partial=true"
    assert [e["type"] for e in request.events] == [
        "generation", "copy", "edit", "regenerate", "ab_choice", "rating"]  # fmt: skip
    assert request.events[-1]["metadata"] == {"exp": "7"}


async def test_batches_by_size_then_by_time(api: ScriptedApi) -> None:
    async with make(api, batch_size=10, flush_interval=0.3) as client:
        started = time.monotonic()
        ids = rate(client, 23)
        while len(api.requests) < 3:
            await asyncio.sleep(0.01)
            assert time.monotonic() - started < 10
    sizes = [len(r.events) for r in api.requests]
    assert sizes == [10, 10, 3]
    assert api.requests[2].at - started >= 0.3  # the last 3 waited for flush_interval
    assert [i for r in api.requests for i in r.event_ids] == ids


async def test_a_503_waits_for_retry_after_and_a_cut_is_retried(api: ScriptedApi) -> None:
    api.answer_with(Answer(503, headers={"Retry-After": "1"}), Answer(cut=True))
    async with make(api) as client:
        ids = rate(client, 3)
        assert await client.flush(10)
    first, second, third = api.requests
    assert second.at - first.at >= 0.95
    assert first.event_ids == second.event_ids == third.event_ids == ids
    assert (client.stats.accepted, client.stats.retries) == (3, 2)


async def test_a_207_drops_only_the_rejected_event(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    api.answer_with(rejecting(0, 2))
    async with make(api, dropped) as client:
        ids = rate(client, 3)
    assert [(d.event_id, d.reason, d.status_code) for d in dropped] == [
        (ids[0], "rejected", 207), (ids[2], "rejected", 207)]  # fmt: skip
    assert len(api.requests) == 1 and client.stats.accepted == 1


async def test_retries_end_and_4xx_are_final(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    api.answer_with(Answer(401), *[Answer(500)] * 3)
    async with make(api, dropped, max_retries=2) as client:
        refused = rate(client, 1)
        assert await client.flush(10)
        gave_up = rate(client, 1)
        assert await client.flush(10)
    assert [(d.event_id, d.reason, d.status_code) for d in dropped] == [
        (refused[0], "refused", 401), (gave_up[0], "retries_exhausted", 500)]  # fmt: skip
    assert len(api.requests) == 4


async def test_a_full_queue_drops_the_new_event(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    async with make(api, dropped, max_queue_size=2, flush_interval=60) as client:
        ids = rate(client, 3)
    assert [(d.event_id, d.reason) for d in dropped] == [(ids[2], "queue_full")]
    assert [e["event_id"] for e in api.events()] == ids[:2]


async def test_close_with_a_timeout_gives_up_on_a_busy_api(api: ScriptedApi) -> None:
    dropped: list[DroppedEvent] = []
    api.answer_with(default=Answer(503, headers={"Retry-After": "30"}))
    client = make(api, dropped)
    ids = rate(client, 2)
    started = time.monotonic()
    await client.close(timeout=0.5)
    assert time.monotonic() - started < 5
    assert [(d.event_id, d.reason) for d in dropped] == [(i, "closed") for i in ids]


async def test_send_returns_the_outcome(api: ScriptedApi) -> None:
    api.answer_with(rejecting(1))
    async with make(api) as client:
        result = await client.send(
            [{"type": "rating", "user_id": "u1", "conversation_id": "c1",
              "response_id": f"r{i}", "value": "up"} for i in range(3)]
        )  # fmt: skip
    ids = api.requests[0].event_ids
    assert result.accepted == [ids[0], ids[2]]
    assert [(d.event_id, d.reason) for d in result.dropped] == [(ids[1], "rejected")]


def test_queueing_outside_an_event_loop_says_to_use_the_sync_client() -> None:
    client = AsyncClient("http://api.test", KEY, app=APP)
    with pytest.raises(RuntimeError, match="use Client"):
        client.rating(user_id="u1", conversation_id="c1", response_id="r1", value="up")
