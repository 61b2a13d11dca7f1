from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from api.sink import MemorySink
from flywheel.errors import KafkaAuthError
from flywheel.settings import Settings
from tests.factories import api_client, make_event

pytestmark = pytest.mark.anyio


async def test_single_event_is_accepted_and_handed_to_the_sink(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    event = make_event("generation", conversation_id="conv-42")
    response = await client.post("/v1/events", json=event)
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "event_ids": [event["event_id"]]}
    [stored] = sink.events
    assert stored.key == b"conv-42"
    assert json.loads(stored.value)["response"] == event["response"]


async def test_batch_is_accepted_in_order(client: httpx.AsyncClient, sink: MemorySink) -> None:
    events = [make_event(t) for t in ("generation", "copy", "edit", "rating")]
    response = await client.post("/v1/events", json={"events": events})
    assert response.status_code == 202
    assert [str(e.event_id) for e in sink.events] == [e["event_id"] for e in events]


async def test_missing_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/events", json=make_event(), headers={"Authorization": ""})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Bearer "])
async def test_malformed_authorization_is_401(client: httpx.AsyncClient, header: str) -> None:
    response = await client.post("/v1/events", json=make_event(), headers={"Authorization": header})
    assert response.status_code == 401


async def test_wrong_key_is_403_and_stores_nothing(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    response = await client.post(
        "/v1/events", json=make_event(), headers={"Authorization": "Bearer not-a-key-at-all-000"}
    )
    assert response.status_code == 403
    assert sink.events == []


async def test_one_invalid_event_rejects_the_whole_batch_with_index_and_path(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    good = make_event("generation")
    bad = make_event("generation", prompt=[{"role": "narrator", "content": "x"}])
    worse = make_event("rating", value="sideways")
    response = await client.post("/v1/events", json={"events": [good, bad, good, worse]})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_events"
    assert [(e["index"], e["path"]) for e in body["errors"]] == [
        (1, "prompt[0].role"),
        (3, "value"),
    ]
    assert all(e["message"] for e in body["errors"])
    assert sink.events == []


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events", content=b'{"events": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


async def test_non_utf8_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events", content=b"\xff\xfe{}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_wrong_content_type_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events",
        content=json.dumps(make_event()).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"events": []}, "events"),
        ({"events": {"a": 1}}, "events"),
        ({"events": [], "extra": 1}, "extra"),
    ],
)
async def test_bad_batch_shapes_are_422(client: httpx.AsyncClient, body: object, path: str) -> None:
    response = await client.post("/v1/events", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == path


async def test_json_that_is_not_an_object_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/events", json=[make_event()])
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "(body)"


async def test_more_than_500_events_is_422_as_the_schema_says(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    event = make_event()
    response = await client.post("/v1/events", json={"events": [event] * 501})
    assert response.status_code == 422
    assert "501 events" in response.json()["message"]
    [error] = response.json()["errors"]
    assert (error["path"], error["type"]) == ("events", "too_long")
    assert sink.events == []


async def test_500_events_are_fine(client: httpx.AsyncClient, sink: MemorySink) -> None:
    response = await client.post("/v1/events", json={"events": [make_event()] * 500})
    assert response.status_code == 202
    assert len(sink.events) == 500


async def test_declared_oversize_body_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/events",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(2 * 1024 * 1024)},
    )
    assert response.status_code == 413


async def test_chunked_oversize_body_is_413_without_reading_it_whole(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    chunk = b" " * 64 * 1024
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(160):  # 10 MiB if read whole
            sent += 1
            yield chunk

    response = await client.post(
        "/v1/events", content=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    # The limit is 1 MiB = 16 chunks; reading stops at the 17th.
    assert sent == 17
    assert sink.events == []


async def test_event_over_64_kib_is_413(client: httpx.AsyncClient, sink: MemorySink) -> None:
    big = make_event("edit", edited_text="x" * 60_000, user_id="u" * 200)
    big["app"] = {"name": "n" * 100, "version": "v" * 50}
    big["conversation_id"] = "c" * 200
    huge = make_event("generation", response="y" * 65_400)
    response = await client.post("/v1/events", json={"events": [big, huge]})
    assert response.status_code == 413
    assert response.json()["message"].startswith("event 1 is")
    assert sink.events == []


async def test_unavailable_sink_is_503_with_retry_after_and_a_resend_succeeds(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    events = [make_event(), make_event()]
    sink.available = False
    response = await client.post("/v1/events", json={"events": events})
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    sink.available = True
    response = await client.post("/v1/events", json={"events": events})
    assert response.status_code == 202
    assert len(sink.events) == 2


async def test_a_broker_refusing_the_api_is_503_without_the_reason_and_nothing_is_stored(
    client: httpx.AsyncClient,
    sink: MemorySink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def refuse(events: object) -> None:
        raise KafkaAuthError("Kafka refused the sign-in of user flywheel-app (SCRAM-SHA-512)")

    monkeypatch.setattr(sink, "publish", refuse)
    response = await client.post("/v1/events", json={"events": [make_event()]})
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    assert response.headers["retry-after"] == "30"
    assert "flywheel-app" not in response.text  # for the operators' log, not the client
    [logged] = [r for r in caplog.records if r.getMessage() == "Kafka refused the API's producer"]
    assert "refused the sign-in of user flywheel-app" in logged.fields["reason"]  # type: ignore[attr-defined]
    assert sink.events == []


async def test_readyz_follows_the_sink_within_the_cache_time(
    settings: Settings, sink: MemorySink
) -> None:
    settings.api.ready_cache_s = 0.3
    async with api_client(create_app(settings, sink)) as client:
        assert (await client.get("/readyz")).status_code == 200
        sink.available = False
        assert (await client.get("/readyz")).status_code == 200  # the cached answer
        await asyncio.sleep(0.35)
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "error": "not_ready",
            "message": "not ready: the event sink is unavailable",
            "errors": [],
        }
        assert (await client.get("/healthz")).status_code == 200


async def test_readyz_is_503_when_the_sink_does_not_answer_in_time(
    settings: Settings, sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stuck() -> str | None:
        await asyncio.sleep(30)
        return None

    settings.api.ready_timeout_s = 0.2
    monkeypatch.setattr(sink, "readiness", stuck)
    async with api_client(create_app(settings, sink)) as client:
        started = time.monotonic()
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert "did not answer within 0.2 s" in response.json()["message"]
    assert time.monotonic() - started < 2


async def test_schema_endpoint_serves_the_contract(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/v1/schema")).json()
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["discriminator"]["mapping"]) == {
        "generation", "copy", "edit", "regenerate", "ab_choice", "rating",
    }  # fmt: skip


async def test_metrics_count_requests_events_and_latency(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    await client.post("/v1/events", json={"events": [make_event(), make_event()]})
    await client.post("/v1/events", json={"events": [make_event(value="x")]})
    sink.available = False
    await client.post("/v1/events", json=make_event())
    text = (await client.get("/metrics")).text
    assert 'flywheel_api_events_total{outcome="accepted"} 2.0' in text
    assert 'flywheel_api_events_total{outcome="rejected"} 1.0' in text
    assert 'flywheel_api_events_total{outcome="unavailable"} 1.0' in text
    assert 'flywheel_api_requests_total{method="POST",route="/v1/events",status="202"} 1.0' in text
    assert 'flywheel_api_requests_total{method="POST",route="/v1/events",status="422"} 1.0' in text
    assert "flywheel_api_produce_seconds_count 1.0" in text


async def test_cors_allows_listed_origin_only(client: httpx.AsyncClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = await client.options(
        "/v1/events", headers={**preflight, "Origin": "https://chat.example.com"}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example.com"
    assert "access-control-allow-credentials" not in allowed.headers
    denied = await client.options(
        "/v1/events", headers={**preflight, "Origin": "https://evil.example.net"}
    )
    assert "access-control-allow-origin" not in denied.headers


async def test_logs_never_carry_event_text(
    client: httpx.AsyncClient, sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    planted = "call me at +44 20 7946 0958, jane.doe@example.com"
    await client.post("/v1/events", json=make_event("generation", response=planted))
    await client.post("/v1/events", json=make_event("rating", reason=planted, value="meh"))
    sink.available = False
    await client.post("/v1/events", json=make_event("edit", edited_text=planted))
    assert caplog.records, "the API logged nothing, so this test checks nothing"
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')}" for r in caplog.records)
    assert "jane.doe" not in logged
    assert "7946" not in logged


async def test_single_event_errors_have_no_index(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/events", json=make_event(value="sideways"))
    assert response.status_code == 422
    assert [(e["index"], e["path"]) for e in response.json()["errors"]] == [(None, "value")]


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ({"consent": {"training": "yes"}}, "consent.training"),
        ({"consent": {"training": 0}}, "consent.training"),
        ({"occurred_at": 0}, "occurred_at"),
        ({"occurred_at": "1700000000"}, "occurred_at"),
        ({"occurred_at": "2026-01-05 09:00"}, "occurred_at"),
        ({"event_id": "0b7c6c1e5d0b4b8e9d7e3f9d2b1a6c11"}, "event_id"),
        ({"schema_version": True}, "schema_version"),
    ],
)
async def test_values_of_the_wrong_json_type_are_refused(
    client: httpx.AsyncClient, override: dict[str, object], path: str
) -> None:
    response = await client.post("/v1/events", json=make_event(**override))
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == [path]


@pytest.mark.parametrize(
    ("body", "index", "path"),
    [
        (b'{"value": null, ', None, "value"),
        (b'{"events": [{"consent": {"training": false}, ', 0, "consent"),
        (b'{"events": [{}], "events": [{"app": {"name": "a", "name": "b"}, ', None, "events"),
    ],
)
async def test_a_repeated_key_is_422_naming_its_path(
    client: httpx.AsyncClient, sink: MemorySink, body: bytes, index: int | None, path: str
) -> None:
    event = json.dumps(make_event("rating", consent={"training": True})).encode()
    raw = body + event[1:] + (b"]}" if body.startswith(b'{"events"') else b"")
    response = await client.post(
        "/v1/events", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert (error["index"], error["path"], error["type"]) == (index, path, "duplicate_key")
    assert sink.events == []


async def test_a_batch_with_a_repeated_key_in_its_second_event_names_it(
    client: httpx.AsyncClient,
) -> None:
    good = json.dumps(make_event("rating")).encode()
    bad = b'{"user_id": "x", ' + good[1:]
    response = await client.post(
        "/v1/events",
        content=b'{"events": [' + good + b", " + bad + b"]}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["index"], error["path"]) == (1, "user_id")


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"span": {"start": 0, "end": 2**64 + 1}}, "span.end"),
        ({"occurred_at": "9999-12-31T23:59:59-23:59"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),
    ],
)
async def test_values_the_lake_cannot_hold_are_422(
    client: httpx.AsyncClient, sink: MemorySink, change: dict[str, object], path: str
) -> None:
    response = await client.post("/v1/events", json=make_event("copy", **change))
    assert response.status_code == 422, response.text
    assert path in {e["path"] for e in response.json()["errors"]}
    assert sink.events == []
