"""Key scopes: which key may call which route, a publishable key's origins and event types,
CORS for the publishable keys' origins, and keys kept out of logs and metrics."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from api.main import create_app
from api.sink import MemorySink
from flywheel.settings import Settings
from tests.factories import make_event
from tests.helpers.keys import (
    ADMIN_KEY,
    KEYS,
    ORIGIN,
    OTHER_ORIGIN,
    PUBLISHABLE_KEY,
    READER_KEY,
    bearer,
    key_settings,
)

pytestmark = pytest.mark.anyio

ERASURE = "/v1/privacy/erasure/" + "0" * 32


async def call(client: httpx.AsyncClient, route: str, key: str | None) -> httpx.Response:
    """One request of the route kind ``route``, sending ``key`` as that route takes keys."""
    headers = bearer(key) if key else {"Origin": ORIGIN}
    if route == "events":
        return await client.post("/v1/events", json=make_event("copy"), headers=headers)
    if route == "beacon":
        query = f"?key={key}" if key else ""
        body = json.dumps(make_event("copy"))
        return await client.post(
            f"/v1/beacon{query}",
            content=body,
            headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
        )
    if route == "datasets":
        return await client.get("/v1/datasets", headers=headers)
    if route == "erasure status":
        return await client.get(ERASURE, headers=headers)
    assert route == "erasure"
    return await client.post("/v1/privacy/erasure", json={"user_ids": ["u1"]}, headers=headers)


# What each key gets on each kind of route: 401 without a key, 403 with a key of another kind.
# An admin key passes the erasure routes' check: 404 for a request the log does not name, 503
# for a new one in an app built without the erasure runner.
EXPECTED = {
    "write": {"events": 202, "beacon": 403, "datasets": 403, "erasure status": 403, "erasure": 403},
    "publishable": {
        "events": 202, "beacon": 202, "datasets": 403, "erasure status": 403, "erasure": 403,
    },
    "reader": {
        "events": 403, "beacon": 403, "datasets": 200, "erasure status": 403, "erasure": 403,
    },
    "admin": {"events": 403, "beacon": 403, "datasets": 200, "erasure status": 404, "erasure": 503},
    None: {"events": 401, "beacon": 401, "datasets": 401, "erasure status": 401, "erasure": 401},
}  # fmt: skip


@pytest.mark.parametrize(
    ("scope", "route"),
    [(scope, route) for scope, routes in EXPECTED.items() for route in routes],
)
async def test_each_scope_on_each_route(
    keyed: httpx.AsyncClient, sink: MemorySink, scope: str | None, route: str
) -> None:
    response = await call(keyed, route, KEYS[scope] if scope else None)
    assert response.status_code == EXPECTED[scope][route], response.text
    assert len(sink.events) == (1 if response.status_code == 202 else 0)


@pytest.mark.parametrize("route", ["events", "beacon"])
@pytest.mark.parametrize(
    ("origin", "status"), [(None, 403), (OTHER_ORIGIN, 403), (ORIGIN + "/", 403), (ORIGIN, 202)]
)
async def test_a_publishable_key_is_accepted_only_from_its_origins(
    keyed: httpx.AsyncClient, sink: MemorySink, route: str, origin: str | None, status: int
) -> None:
    headers = {"Origin": origin} if origin else {}
    event = make_event("rating")
    if route == "events":
        headers["Authorization"] = f"Bearer {PUBLISHABLE_KEY}"
        response = await keyed.post("/v1/events", json=event, headers=headers)
    else:
        response = await keyed.post(
            f"/v1/beacon?key={PUBLISHABLE_KEY}", json=event, headers=headers
        )
    assert response.status_code == status, response.text
    if status == 403:
        assert "origin" in response.json()["message"].lower()
        assert PUBLISHABLE_KEY not in response.text
        assert sink.events == []
    else:
        assert [str(e.event_id) for e in sink.events] == [event["event_id"]]


async def test_a_write_key_needs_no_origin(keyed: httpx.AsyncClient, sink: MemorySink) -> None:
    for origin in (None, OTHER_ORIGIN):
        response = await keyed.post(
            "/v1/events", json=make_event("generation"), headers=bearer(KEYS["write"], origin)
        )
        assert response.status_code == 202
    assert len(sink.events) == 2


async def test_a_publishable_key_may_post_only_its_event_types(
    keyed: httpx.AsyncClient, sink: MemorySink
) -> None:
    events = [make_event("copy"), make_event("generation"), make_event("rating")]
    response = await keyed.post(
        "/v1/events", json={"events": events}, headers=bearer(PUBLISHABLE_KEY)
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["index"], error["path"], error["type"]) == (1, "type", "event_type_not_allowed")
    assert "copy, edit, regenerate, ab_choice, rating" in error["message"]
    assert sink.events == []


async def test_a_type_refusal_comes_with_the_events_other_errors(keyed: httpx.AsyncClient) -> None:
    bad_generation = make_event("generation", prompt=[{"role": "narrator", "content": "x"}])
    response = await keyed.post(
        "/v1/events",
        json={"events": [make_event("rating", value="sideways"), bad_generation]},
        headers=bearer(PUBLISHABLE_KEY),
    )
    assert response.status_code == 422
    found = [(e["index"], e["path"], e["type"]) for e in response.json()["errors"]]
    assert found == [
        (0, "value", "literal_error"),
        (1, "type", "event_type_not_allowed"),
        (1, "prompt[0].role", "literal_error"),
    ]


async def test_the_event_types_of_a_key_are_configurable(
    tmp_path: object, sink: MemorySink
) -> None:
    settings = key_settings(event_types=["generation", "rating"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, sink)), base_url="http://test"
    ) as client:
        generation = await client.post(
            "/v1/events", json=make_event("generation"), headers=bearer(PUBLISHABLE_KEY)
        )
        copy = await client.post(
            "/v1/events", json=make_event("copy"), headers=bearer(PUBLISHABLE_KEY)
        )
    assert generation.status_code == 202
    assert copy.status_code == 422
    assert copy.json()["errors"][0]["message"].endswith("generation, rating")


async def test_cors_allows_the_publishable_keys_origins_and_lets_clients_read_retry_after(
    keyed_settings: Settings, keyed: httpx.AsyncClient
) -> None:
    assert keyed_settings.api.cors_origins == []  # the origin comes from the publishable key
    preflight = await keyed.options(
        "/v1/events",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,content-encoding",
        },
    )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "content-encoding"} <= set(allowed.split(", "))
    beacon = await keyed.post(
        f"/v1/beacon?key={PUBLISHABLE_KEY}",
        content=json.dumps(make_event("copy")),
        headers={"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"},
    )
    assert beacon.status_code == 202
    assert beacon.headers["access-control-allow-origin"] == ORIGIN
    assert beacon.headers["access-control-expose-headers"] == "Retry-After"
    elsewhere = await keyed.options(
        "/v1/events",
        headers={"Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_the_openapi_document_names_the_keys_of_each_route(keyed: httpx.AsyncClient) -> None:
    paths = (await keyed.get("/openapi.json")).json()["paths"]
    security = {
        (method.upper(), path): operation.get("security")
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    assert security[("POST", "/v1/events")] == [{"WriteKey": []}, {"PublishableKey": []}]
    assert security[("POST", "/v1/beacon")] == [{"PublishableKeyQuery": []}]
    for route in ("/v1/datasets", "/v1/datasets/{name}/versions/{version}"):
        assert security[("GET", route)] == [{"ReaderKey": []}, {"AdminKey": []}]
    assert security[("POST", "/v1/privacy/erasure")] == [{"AdminKey": []}]
    assert security[("GET", "/v1/privacy/erasure/{request_id}")] == [{"AdminKey": []}]
    assert security[("GET", "/healthz")] is None


async def test_no_key_reaches_a_log_or_a_metric(
    keyed: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for route in EXPECTED["write"]:
        for key in KEYS.values():
            await call(keyed, route, key)
    # A refused event, and a secret key where only publishable keys belong.
    await keyed.post("/v1/events", json=make_event("generation"), headers=bearer(PUBLISHABLE_KEY))
    await keyed.post(
        f"/v1/beacon?key={ADMIN_KEY}", json=make_event("copy"), headers=bearer(READER_KEY)
    )
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "a secret key was sent to /v1/beacon" in logged
    assert "'key': 'web'" in logged  # the publishable key is named, not given
    # Keys are masked in every record, such as a request line with ?key= (the test client's).
    assert "/v1/beacon?key=**********" in logged
    scraped = (await keyed.get("/metrics")).text
    for key in KEYS.values():
        assert key not in logged
        assert key not in scraped
