"""Partial acceptance (``?partial=true``): the valid events are stored, 207 names the others."""

from __future__ import annotations

import json

import httpx
import pytest

from api.sink import MemorySink
from tests.factories import make_event
from tests.helpers.keys import ORIGIN, PUBLISHABLE_KEY, bearer
from tests.helpers.metrics import samples

pytestmark = pytest.mark.anyio

PARTIAL = "/v1/events?partial=true"


def stored_ids(sink: MemorySink) -> list[str]:
    return [str(event.event_id) for event in sink.events]


async def test_mixed_events_store_the_good_ones_and_name_each_bad_one(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    good = [make_event("generation"), make_event("copy"), make_event("rating")]
    bad_role = make_event("generation", prompt=[{"role": "narrator", "content": "x"}])
    bad_value = make_event("rating", value="sideways", reason=None, user_id=None)
    batch = [good[0], bad_role, good[1], bad_value, good[2]]
    response = await client.post(PARTIAL, json={"events": batch})
    assert response.status_code == 207, response.text
    body = response.json()
    ids = [e["event_id"] for e in good]
    assert (body["accepted"], body["rejected"], body["event_ids"]) == (3, 2, ids)
    assert stored_ids(sink) == ids
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [
        "accepted", "rejected", "accepted", "rejected", "accepted",
    ]  # fmt: skip
    assert [r["event_id"] for r in results if r["status"] == "accepted"] == ids
    assert [(e["path"], e["type"]) for e in results[1]["errors"]] == [
        ("prompt[0].role", "literal_error")
    ]
    assert sorted(e["path"] for e in results[3]["errors"]) == ["user_id", "value"]
    assert all(e["message"] for r in results if r["status"] == "rejected" for e in r["errors"])
    assert set(results[1]) == {"index", "status", "errors"}  # no event_id for a refused event


async def test_without_partial_the_same_batch_stores_nothing(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    batch = [make_event("copy"), make_event("rating", value="sideways")]
    for url in ("/v1/events", "/v1/events?partial=false"):
        response = await client.post(url, json={"events": batch})
        assert response.status_code == 422
    assert sink.events == []


async def test_all_good_is_202_with_every_result(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    events = [make_event("edit"), make_event("regenerate")]
    response = await client.post(PARTIAL, json={"events": events})
    assert response.status_code == 202
    ids = [e["event_id"] for e in events]
    assert response.json() == {
        "accepted": 2,
        "rejected": 0,
        "event_ids": ids,
        "results": [
            {"index": 0, "status": "accepted", "event_id": ids[0]},
            {"index": 1, "status": "accepted", "event_id": ids[1]},
        ],
    }
    assert stored_ids(sink) == ids


async def test_all_bad_is_207_and_stores_nothing(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    response = await client.post(PARTIAL, json=make_event("rating", value="sideways"))
    assert response.status_code == 207
    body = response.json()
    assert (body["accepted"], body["rejected"], body["event_ids"]) == (0, 1, [])
    assert body["results"][0]["index"] == 0  # a single event is index 0
    assert sink.events == []


async def test_a_repeated_key_refuses_only_its_event(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    good = make_event("rating")
    repeated = json.dumps(make_event("rating")).replace(
        '"value": "up"', '"value": "up", "value": "down"'
    )
    nested = json.dumps(make_event("copy")).replace('"name": "web"', '"name": "web", "name": "ide"')
    raw = f'{{"events": [{repeated}, {json.dumps(good)}, {nested}]}}'
    response = await client.post(PARTIAL, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 207, response.text
    results = response.json()["results"]
    assert [(e["path"], e["type"]) for e in results[0]["errors"]] == [("value", "duplicate_key")]
    assert results[1]["status"] == "accepted"
    assert [(e["path"], e["type"]) for e in results[2]["errors"]] == [("app.name", "duplicate_key")]
    assert stored_ids(sink) == [good["event_id"]]


async def test_a_key_repeated_in_the_batch_object_refuses_the_request(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    event = json.dumps(make_event())
    raw = f'{{"events": [{event}], "events": [{event}]}}'
    response = await client.post(PARTIAL, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["index"], error["path"], error["type"]) == (None, "events", "duplicate_key")
    assert sink.events == []


async def test_an_event_over_the_size_limit_is_refused_alone(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    small = make_event("copy")
    huge = make_event("generation", response="y" * 65_400)
    response = await client.post(PARTIAL, json={"events": [huge, small]})
    assert response.status_code == 207
    [error] = response.json()["results"][0]["errors"]
    assert (error["path"], error["type"]) == ("(event)", "too_large")
    assert stored_ids(sink) == [small["event_id"]]


async def test_a_publishable_keys_refused_types_are_refused_one_by_one(
    keyed: httpx.AsyncClient, sink: MemorySink
) -> None:
    copy, generation = make_event("copy"), make_event("generation")
    response = await keyed.post(
        PARTIAL, json={"events": [generation, copy]}, headers=bearer(PUBLISHABLE_KEY)
    )
    assert response.status_code == 207
    [error] = response.json()["results"][0]["errors"]
    assert (error["path"], error["type"]) == ("type", "event_type_not_allowed")
    assert stored_ids(sink) == [copy["event_id"]]


async def test_the_beacon_takes_partial_too(keyed: httpx.AsyncClient, sink: MemorySink) -> None:
    good, bad = make_event("copy"), make_event("copy", code_block="yes")
    response = await keyed.post(
        f"/v1/beacon?key={PUBLISHABLE_KEY}&partial=true",
        content=json.dumps({"events": [bad, good]}),
        headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
    )
    assert response.status_code == 207
    assert [e["path"] for e in response.json()["results"][0]["errors"]] == ["code_block"]
    assert stored_ids(sink) == [good["event_id"]]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"events": [', 400),
        (json.dumps([make_event()]).encode(), 422),
        (json.dumps({"events": []}).encode(), 422),
        (json.dumps({"events": [make_event()], "extra": 1}).encode(), 422),
        (json.dumps({"events": [make_event()] * 501}).encode(), 422),
        (b" " * (1024 * 1024 + 1), 413),
    ],
    ids=["not-json", "not-an-object", "empty-batch", "extra-key", "too-many", "too-large"],
)
async def test_errors_of_the_body_are_never_partial(
    client: httpx.AsyncClient, sink: MemorySink, body: bytes, status: int
) -> None:
    response = await client.post(
        PARTIAL, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert "results" not in response.json()
    assert sink.events == []


async def test_a_partial_flag_that_is_not_a_boolean_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/events?partial=maybe", json=make_event())
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["query.partial"]


async def test_metrics_count_accepted_and_rejected_events(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    batch = [make_event(), make_event(value="x"), make_event(value="y"), make_event()]
    await client.post(PARTIAL, json={"events": batch})
    scraped = samples((await client.get("/metrics")).text)
    assert scraped[("flywheel_api_events_total", (("outcome", "accepted"),))] == 2
    assert scraped[("flywheel_api_events_total", (("outcome", "rejected"),))] == 2
    route = (("method", "POST"), ("route", "/v1/events"), ("status", "207"))
    assert scraped[("flywheel_api_requests_total", route)] == 1


async def test_an_unavailable_sink_is_503_for_the_whole_request(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    sink.available = False
    response = await client.post(
        PARTIAL, json={"events": [make_event(), make_event(value="sideways")]}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"]
