"""A browser's requests over real HTTP (uvicorn on a loopback port): the CORS preflight, a
publishable key's gzipped partial batch, a beacon, and the rate limit on the real clock."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from api.server import running_api
from api.sink import MemorySink
from flywheel.settings import load_settings
from tests.factories import WRITE_KEY, make_event
from tests.helpers.keys import ORIGIN, PUBLISHABLE_KEY

TIGHT_KEY = "pk-tight-limit-0123456789"
"""A publishable key of half an event a second, in bursts of 3."""


@pytest.fixture
def served(sink: MemorySink) -> Iterator[httpx.Client]:
    settings = load_settings(
        api={
            "write_keys": [WRITE_KEY],
            "publishable_keys": [
                {"key": PUBLISHABLE_KEY, "name": "web", "origins": [ORIGIN]},
                {"key": TIGHT_KEY, "name": "tight", "origins": [ORIGIN],
                 "rate_per_second": 0.5, "burst": 3},
            ],
        }
    )  # fmt: skip
    with running_api(settings, sink) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_a_browser_posts_through_cors_with_gzip_and_partial_acceptance(
    served: httpx.Client, sink: MemorySink
) -> None:
    preflight = served.options(
        "/v1/events?partial=true",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,content-encoding",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    good, not_allowed = make_event("copy"), make_event("generation")
    response = served.post(
        "/v1/events?partial=true",
        content=gzip.compress(json.dumps({"events": [good, not_allowed]}).encode()),
        headers={
            "Authorization": f"Bearer {PUBLISHABLE_KEY}",
            "Origin": ORIGIN,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 207, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    [error] = response.json()["results"][1]["errors"]
    assert error["type"] == "event_type_not_allowed"
    assert [str(e.event_id) for e in sink.events] == [good["event_id"]]


def test_a_beacon_over_http(served: httpx.Client, sink: MemorySink) -> None:
    event = make_event("rating")
    text = {"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"}
    response = served.post(
        f"/v1/beacon?key={PUBLISHABLE_KEY}", content=json.dumps(event), headers=text
    )
    assert response.status_code == 202, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    secret = served.post(f"/v1/beacon?key={WRITE_KEY}", content=json.dumps(event), headers=text)
    assert secret.status_code == 403
    wrong_origin = served.post(
        f"/v1/beacon?key={PUBLISHABLE_KEY}",
        content=json.dumps(make_event("copy")),
        headers={**text, "Origin": "https://elsewhere.example.net"},
    )
    assert wrong_origin.status_code == 403
    assert [str(e.event_id) for e in sink.events] == [event["event_id"]]


def test_the_rate_limit_answers_429_and_the_bucket_refills_with_time(
    served: httpx.Client, sink: MemorySink
) -> None:
    headers = {"Authorization": f"Bearer {TIGHT_KEY}", "Origin": ORIGIN}
    burst = served.post(
        "/v1/events", json={"events": [make_event("copy") for _ in range(3)]}, headers=headers
    )
    assert burst.status_code == 202
    refused = served.post("/v1/events", json=make_event("copy"), headers=headers)
    assert refused.status_code == 429
    assert refused.headers["access-control-expose-headers"] == "Retry-After"
    wait = int(refused.headers["retry-after"])
    assert wait == 2  # one token at half a token a second
    time.sleep(wait)
    assert served.post("/v1/events", json=make_event("copy"), headers=headers).status_code == 202
    assert len(sink.events) == 4
    scraped = served.get("/metrics").text
    assert 'flywheel_api_rate_limited_total{key="tight"} 1.0' in scraped
    assert TIGHT_KEY not in scraped
