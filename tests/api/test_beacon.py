"""``POST /v1/beacon``: events as ``navigator.sendBeacon`` and ``fetch(..., {keepalive: true})``
send them, with a publishable key in the query or in the body."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from api.sink import MemorySink
from tests.factories import WRITE_KEY, make_event
from tests.helpers.keys import ADMIN_KEY, ORIGIN, PUBLISHABLE_KEY, READER_KEY

pytestmark = pytest.mark.anyio

BEACON = f"/v1/beacon?key={PUBLISHABLE_KEY}"


def plain(**headers: str) -> dict[str, str]:
    """What sendBeacon sends with a string body: text/plain, from the page's origin."""
    return {"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8", **headers}


@pytest.mark.parametrize(
    "content_type", ["text/plain;charset=UTF-8", "text/plain", "application/json", None]
)
async def test_a_beacon_is_accepted_as_text_json_or_without_a_content_type(
    keyed: httpx.AsyncClient, sink: MemorySink, content_type: str | None
) -> None:
    events = [make_event("copy"), make_event("rating")]
    headers = {"Origin": ORIGIN, **({"Content-Type": content_type} if content_type else {})}
    response = await keyed.post(BEACON, content=json.dumps({"events": events}), headers=headers)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "event_ids": [e["event_id"] for e in events]}
    assert [str(e.event_id) for e in sink.events] == [e["event_id"] for e in events]


async def test_a_single_event_is_accepted(keyed: httpx.AsyncClient, sink: MemorySink) -> None:
    event = make_event("edit")
    response = await keyed.post(BEACON, content=json.dumps(event), headers=plain())
    assert response.status_code == 202
    assert json.loads(sink.events[0].value)["edited_text"] == event["edited_text"]


async def test_the_key_may_travel_in_the_body_and_is_not_stored(
    keyed: httpx.AsyncClient, sink: MemorySink
) -> None:
    events = [make_event("regenerate"), make_event("ab_choice")]
    body = json.dumps({"key": PUBLISHABLE_KEY, "events": events})
    response = await keyed.post("/v1/beacon", content=body, headers=plain())
    assert response.status_code == 202, response.text
    assert len(sink.events) == 2
    assert all(PUBLISHABLE_KEY.encode() not in e.value for e in sink.events)


async def test_a_key_both_in_the_query_and_in_the_body_is_400(
    keyed: httpx.AsyncClient, sink: MemorySink
) -> None:
    body = json.dumps({"key": PUBLISHABLE_KEY, "events": [make_event("copy")]})
    response = await keyed.post(BEACON, content=body, headers=plain())
    assert response.status_code == 400
    assert response.json()["error"] == "key_given_twice"
    assert sink.events == []


@pytest.mark.parametrize(
    "body",
    [json.dumps({"events": [make_event("copy")]}), json.dumps(make_event("copy", key="x" * 20))],
    ids=["batch-without-key", "event-with-a-key-field"],
)
async def test_no_key_is_401_saying_where_it_goes(
    keyed: httpx.AsyncClient, sink: MemorySink, body: str
) -> None:
    headers = plain(Authorization=f"Bearer {PUBLISHABLE_KEY}")  # a header is not where it goes
    response = await keyed.post("/v1/beacon", content=body, headers=headers)
    assert response.status_code == 401
    assert "?key=" in response.json()["message"]
    assert sink.events == []


@pytest.mark.parametrize("key", [WRITE_KEY, READER_KEY, ADMIN_KEY])
@pytest.mark.parametrize("where", ["query", "body"])
async def test_a_secret_key_is_refused_and_the_log_asks_to_replace_it(
    keyed: httpx.AsyncClient,
    sink: MemorySink,
    caplog: pytest.LogCaptureFixture,
    key: str,
    where: str,
) -> None:
    events = [make_event("copy")]
    if where == "query":
        response = await keyed.post(
            f"/v1/beacon?key={key}", content=json.dumps({"events": events}), headers=plain()
        )
    else:
        body = json.dumps({"key": key, "events": events})
        response = await keyed.post("/v1/beacon", content=body, headers=plain())
    assert response.status_code == 403
    assert "never belongs in a URL" in response.json()["message"]
    assert sink.events == []
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "replace it" in warning.getMessage()
    assert key not in f"{warning.getMessage()} {getattr(warning, 'fields', '')}"


async def test_an_unknown_key_is_403(keyed: httpx.AsyncClient) -> None:
    response = await keyed.post(
        "/v1/beacon?key=not-a-key-of-ours-000000", content=json.dumps(make_event()), headers=plain()
    )
    assert response.status_code == 403
    assert response.json()["message"] == "this is not a publishable key"


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
async def test_other_media_types_are_415(
    keyed: httpx.AsyncClient, sink: MemorySink, content_type: str
) -> None:
    response = await keyed.post(
        BEACON, content=json.dumps(make_event()), headers=plain(**{"Content-Type": content_type})
    )
    assert response.status_code == 415
    assert sink.events == []


async def test_a_key_in_the_body_must_be_a_string(keyed: httpx.AsyncClient) -> None:
    body = json.dumps({"key": 12345, "events": [make_event("copy")]})
    response = await keyed.post("/v1/beacon", content=body, headers=plain())
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["key"]


async def test_a_beacon_answers_as_post_events_does(
    keyed: httpx.AsyncClient, sink: MemorySink
) -> None:
    bad = make_event("rating", value="sideways")
    whole = await keyed.post(BEACON, content=json.dumps({"events": [bad]}), headers=plain())
    assert whole.status_code == 422
    assert [(e["index"], e["path"]) for e in whole.json()["errors"]] == [(0, "value")]
    not_json = await keyed.post(BEACON, content=b'{"events": [', headers=plain())
    assert not_json.status_code == 400
    sink.available = False
    unavailable = await keyed.post(BEACON, content=json.dumps(make_event()), headers=plain())
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"]
