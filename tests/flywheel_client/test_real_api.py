"""Both clients against the platform's own API (``running_api``, uvicorn on a loopback port,
over real HTTP): what it does today. Every helper's event is stored, a 503 from a sink that is
down is waited out, a cut network is retried until it is back, a wrong key and an invalid event
are reported, never retried."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from api.server import running_api
from api.sink import MemorySink
from flywheel.settings import load_settings
from flywheel_client import AsyncClient, Client, DroppedEvent
from tests.factories import WRITE_KEY
from tests.helpers.proxy import CuttableProxy
from tests.helpers.scripted_api import APP, FAST_RETRIES

COMMON: dict[str, Any] = {"user_id": "user-42", "conversation_id": "conv-7",
                          "consent": {"training": True}}  # fmt: skip


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def url(sink: MemorySink) -> Iterator[str]:
    settings = load_settings(api={"write_keys": [WRITE_KEY]})
    with running_api(settings, sink) as base:
        yield base


def one_of_each(client: Client | AsyncClient) -> list[str]:
    prompt = [{"role": "system", "content": "Be brief."},
              {"role": "user", "content": "How do I reverse a list?"}]  # fmt: skip
    return [
        client.generation(**COMMON, response_id="r1", parent_id="m1", prompt=prompt,
                          response="xs[::-1]", model="chat-small", model_version="2026-09"),
        client.copy(**COMMON, response_id="r1", span=(0, 8), code_block=True),
        client.edit(**COMMON, response_id="r1", edited_text="list(reversed(xs))"),
        client.regenerate(**COMMON, response_id="r1", new_response_id="r2"),
        client.ab_choice(**COMMON, response_a_id="r1", response_b_id="r2", choice="tie"),
        client.rating(**COMMON, response_id="r2", value="up"),
    ]  # fmt: skip


def stored(sink: MemorySink) -> list[str]:
    return [str(event.event_id) for event in sink.events]


def test_every_helpers_event_is_stored(url: str, sink: MemorySink) -> None:
    dropped: list[DroppedEvent] = []
    with Client(url, WRITE_KEY, app=APP, on_error=dropped.append) as client:
        ids = one_of_each(client)
    assert dropped == [] and stored(sink) == ids
    values = [json.loads(event.value) for event in sink.events]
    assert values[0]["prompt"][1] == {"role": "user", "content": "How do I reverse a list?"}
    assert client.stats.accepted == 6


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_async_clients_events_are_stored(url: str, sink: MemorySink) -> None:
    async with AsyncClient(url, WRITE_KEY, app=APP) as client:
        ids = one_of_each(client)
        assert await client.flush(10)
        assert stored(sink) == ids


def test_a_503_from_a_sink_that_is_down_is_waited_out(url: str, sink: MemorySink) -> None:
    sink.available = False  # the API answers 503 with Retry-After: 1
    with Client(url, WRITE_KEY, app=APP, **FAST_RETRIES) as client:
        ids = one_of_each(client)
        client.flush(timeout=0.3)
        assert sink.events == [] and client.stats.retries >= 1
        sink.available = True
        assert client.flush(10)
    assert stored(sink) == ids


def test_a_cut_network_is_retried_until_it_is_back(url: str, sink: MemorySink) -> None:
    address = urlsplit(url)
    proxy = CuttableProxy((address.hostname or "", address.port or 0))
    try:
        proxy.cut()
        with Client(proxy.url, WRITE_KEY, app=APP, retry_base=0.05, retry_cap=0.2,
                    max_retries=100) as client:  # fmt: skip
            ids = one_of_each(client)
            deadline = time.monotonic() + 10
            while client.stats.retries < 2:  # refused connections, retried
                assert time.monotonic() < deadline
                time.sleep(0.01)
            proxy.restore()
            assert client.flush(10)
        assert stored(sink) == ids
    finally:
        proxy.close()


def test_a_wrong_key_is_reported_and_not_retried(url: str, sink: MemorySink) -> None:
    dropped: list[DroppedEvent] = []
    with Client(url, "not-a-write-key-0123456789", app=APP, on_error=dropped.append) as client:
        ids = one_of_each(client)
    assert [(d.event_id, d.reason, d.status_code) for d in dropped] == [
        (event_id, "refused", 403) for event_id in ids
    ]
    assert client.stats.retries == 0 and sink.events == []


def test_an_invalid_event_is_reported_with_its_path_and_the_others_are_stored(
    url: str, sink: MemorySink
) -> None:
    dropped: list[DroppedEvent] = []
    with Client(url, WRITE_KEY, app=APP, on_error=dropped.append) as client:
        good = client.rating(**COMMON, response_id="r1", value="up")
        bad = client.track({"type": "rating", **COMMON, "response_id": "r1", "value": "sideways"})
        assert client.flush(10)
        later = client.rating(**COMMON, response_id="r1", value="down")
    # Partial acceptance (?partial=true, the default): a 207 names the bad event, the batch's
    # good one is stored.
    [only] = dropped
    assert (only.event_id, only.reason, only.status_code) == (bad, "rejected", 207)
    assert [e.path for e in only.errors] == ["value"]
    assert stored(sink) == [good, later]
    assert client.stats.retries == 0


def test_without_partial_acceptance_a_bad_event_refuses_its_whole_batch(
    url: str, sink: MemorySink
) -> None:
    dropped: list[DroppedEvent] = []
    with Client(url, WRITE_KEY, app=APP, on_error=dropped.append, partial=False) as client:
        good = client.rating(**COMMON, response_id="r1", value="up")
        bad = client.track({"type": "rating", **COMMON, "response_id": "r1", "value": "sideways"})
        assert client.flush(10)
        later = client.rating(**COMMON, response_id="r1", value="down")
    by_id = {d.event_id: d for d in dropped}
    assert by_id[bad].reason == "rejected" and by_id[bad].status_code == 422
    assert [e.path for e in by_id[bad].errors] == ["value"]
    # All or nothing: the good event of that batch is refused with it, not retried.
    assert by_id[good].reason == "refused"
    assert stored(sink) == [later]
    assert client.stats.retries == 0


def test_many_threads_posting_through_one_client(url: str, sink: MemorySink) -> None:
    with Client(url, WRITE_KEY, app=APP, batch_size=100, flush_interval=0.05) as client:

        def post() -> None:
            for i in range(200):
                client.rating(**COMMON, response_id=f"r{i}", value="up")

        threads = [threading.Thread(target=post) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(set(stored(sink))) == 1000
