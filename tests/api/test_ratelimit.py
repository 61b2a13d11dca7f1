"""The publishable keys' rate limit: a token bucket over events, 429 with ``Retry-After``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from api.ratelimit import TokenBucket, retry_after
from api.sink import MemorySink
from flywheel.settings import load_settings
from tests.factories import WRITE_KEY, api_client, make_event
from tests.helpers.keys import ORIGIN, PUBLISHABLE_KEY, Clock, bearer, key_settings
from tests.helpers.metrics import samples

BROWSER = bearer(PUBLISHABLE_KEY)
LIMITED = ("flywheel_api_rate_limited_total", (("key", "web"),))


def test_a_bucket_starts_full_and_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2, burst=5, clock=clock)
    assert bucket.take(5) == 0
    assert bucket.take(1) == pytest.approx(0.5)  # refused: one token comes in half a second
    clock.advance(0.5)
    assert bucket.take(1) == 0
    clock.advance(60)  # never more than the burst
    assert bucket.take(5) == 0
    assert bucket.take(1) > 0


def test_a_request_larger_than_the_burst_waits_for_a_full_bucket_and_leaves_a_debt() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert bucket.take(1) == 0
    assert bucket.take(8) == pytest.approx(0.1)  # needs the full bucket, not 8 tokens
    clock.advance(0.1)
    assert bucket.take(8) == 0  # admitted, 3 tokens short
    assert bucket.wait_s(1) == pytest.approx(0.4)  # the debt, then one token


@pytest.mark.parametrize(("wait", "header"), [(0.001, "1"), (1.0, "1"), (1.01, "2"), (30, "30")])
def test_retry_after_is_whole_seconds_rounded_up(wait: float, header: str) -> None:
    assert retry_after(wait) == header


@pytest.fixture
async def limited(sink: MemorySink, clock: Clock) -> AsyncIterator[httpx.AsyncClient]:
    """A publishable key of 2 events a second in bursts of 5."""
    app = create_app(key_settings(rate_per_second=2, burst=5), sink, clock=clock)
    async with api_client(app) as client:
        yield client


@pytest.mark.anyio
async def test_past_the_burst_a_key_gets_429_with_retry_after_until_the_bucket_refills(
    limited: httpx.AsyncClient, sink: MemorySink, clock: Clock
) -> None:
    first = await limited.post(
        "/v1/events", json={"events": [make_event("copy") for _ in range(5)]}, headers=BROWSER
    )
    assert first.status_code == 202
    refused = await limited.post("/v1/events", json=make_event("rating"), headers=BROWSER)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"  # half a second, in whole seconds
    assert refused.json()["error"] == "rate_limited"
    assert len(sink.events) == 5
    clock.advance(0.5)
    assert (
        await limited.post("/v1/events", json=make_event("rating"), headers=BROWSER)
    ).status_code == 202
    clock.advance(0.5)
    batch = {"events": [make_event("edit") for _ in range(4)]}
    waiting = await limited.post("/v1/events", json=batch, headers=BROWSER)
    # One token, three missing at 2 a second: 1.5 s.
    assert (waiting.status_code, waiting.headers["retry-after"]) == (429, "2")
    clock.advance(1.5)
    assert (await limited.post("/v1/events", json=batch, headers=BROWSER)).status_code == 202
    assert len(sink.events) == 10
    assert samples((await limited.get("/metrics")).text)[LIMITED] == 2


@pytest.mark.anyio
async def test_the_beacon_shares_the_keys_bucket(
    limited: httpx.AsyncClient, sink: MemorySink
) -> None:
    events = json.dumps({"events": [make_event("copy") for _ in range(5)]})
    beacon = {"Origin": ORIGIN, "Content-Type": "text/plain"}
    assert (
        await limited.post(f"/v1/beacon?key={PUBLISHABLE_KEY}", content=events, headers=beacon)
    ).status_code == 202
    in_body = json.dumps({"key": PUBLISHABLE_KEY, "events": [make_event("copy")]})
    refused = await limited.post("/v1/beacon", content=in_body, headers=beacon)
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
    bearer_refused = await limited.post("/v1/events", json=make_event("copy"), headers=BROWSER)
    assert bearer_refused.status_code == 429
    assert len(sink.events) == 5


@pytest.mark.anyio
async def test_events_refused_for_their_content_still_count(
    limited: httpx.AsyncClient, sink: MemorySink
) -> None:
    bad = {"events": [make_event("rating", value="sideways") for _ in range(5)]}
    assert (await limited.post("/v1/events", json=bad, headers=BROWSER)).status_code == 422
    assert (
        await limited.post("/v1/events", json=make_event("copy"), headers=BROWSER)
    ).status_code == 429


@pytest.mark.anyio
async def test_an_empty_bucket_refuses_before_reading_the_body(
    limited: httpx.AsyncClient,
) -> None:
    batch = {"events": [make_event("copy") for _ in range(5)]}
    assert (await limited.post("/v1/events", json=batch, headers=BROWSER)).status_code == 202
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(100):
            sent += 1
            yield b" " * 65536

    headers = {**BROWSER, "Content-Type": "application/json"}
    response = await limited.post("/v1/events", content=body(), headers=headers)
    assert response.status_code == 429
    assert sent <= 1


@pytest.mark.anyio
async def test_write_keys_are_not_limited(limited: httpx.AsyncClient, sink: MemorySink) -> None:
    batch = {"events": [make_event("copy") for _ in range(50)]}
    for _ in range(4):
        response = await limited.post("/v1/events", json=batch, headers=bearer(WRITE_KEY))
        assert response.status_code == 202
    assert len(sink.events) == 200
    assert LIMITED not in samples((await limited.get("/metrics")).text)


@pytest.mark.anyio
async def test_each_publishable_key_has_a_bucket_of_its_own(sink: MemorySink, clock: Clock) -> None:
    other = "pk-other-site-0123456789"
    keys = [
        {"key": PUBLISHABLE_KEY, "name": "web", "origins": [ORIGIN], "burst": 1},
        {"key": other, "name": "docs", "origins": [ORIGIN], "burst": 1},
    ]
    settings = load_settings(api={"publishable_keys": keys})
    async with api_client(create_app(settings, sink, clock=clock)) as client:
        assert (
            await client.post("/v1/events", json=make_event("copy"), headers=BROWSER)
        ).status_code == 202
        assert (
            await client.post("/v1/events", json=make_event("copy"), headers=BROWSER)
        ).status_code == 429
        response = await client.post("/v1/events", json=make_event("copy"), headers=bearer(other))
        assert response.status_code == 202
        scraped = samples((await client.get("/metrics")).text)
    assert scraped[LIMITED] == 1
    assert ("flywheel_api_rate_limited_total", (("key", "docs"),)) not in scraped
