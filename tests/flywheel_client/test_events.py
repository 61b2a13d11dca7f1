"""The event helpers build events of contract v1: checked by the platform's own contract, with
client-side ids and UTC times, and the mistakes a caller can make refused at the call."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from flywheel_client import Client, utc_timestamp
from ingest.contract import EVENT_TYPES, parse_event
from tests.helpers.scripted_api import APP, KEY

PROMPT = [
    {"role": "system", "content": "You are a helpful coding assistant."},
    {"role": "user", "content": "How do I reverse a list in Python?"},
]
COMMON: dict[str, Any] = {"user_id": "user-42", "conversation_id": "conv-7"}


def queued_client() -> tuple[Client, list[dict[str, Any]]]:
    """A client whose events are captured as sent (an in-memory transport answering 202)."""
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.extend(json.loads(request.content)["events"])
        return httpx.Response(202)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Client("http://api.test", KEY, app=APP, http_client=http), sent


def one_of_each(client: Client) -> list[str]:
    consent = {"training": True, "policy_version": "2025-11"}
    return [
        client.generation(**COMMON, response_id="r1", parent_id="m1", prompt=PROMPT,
                          response="Use xs[::-1].", model="chat-small", model_version="2026-09",
                          consent=consent),
        client.copy(**COMMON, response_id="r1", text="xs[::-1]", code_block=True),
        client.edit(**COMMON, response_id="r1", edited_text="Use xs.reverse()."),
        client.regenerate(**COMMON, response_id="r1", new_response_id="r2"),
        client.ab_choice(**COMMON, response_a_id="r1", response_b_id="r2", choice="both_bad"),
        client.rating(**COMMON, response_id="r2", value="down", reason="too short"),
    ]  # fmt: skip


def test_every_helper_builds_an_event_the_contract_accepts() -> None:
    client, sent = queued_client()
    with client:
        ids = one_of_each(client)
    assert [event["type"] for event in sent] == list(EVENT_TYPES)
    assert [event["event_id"] for event in sent] == ids
    for event in sent:
        parsed = parse_event(event)  # the platform's contract, as the API applies it
        assert str(parsed.event_id) == event["event_id"]
        assert event["app"] == APP and event["schema_version"] == 1
    assert sent[0]["consent"] == {"training": True, "policy_version": "2025-11"}
    assert sent[0]["model"] == {"id": "chat-small", "version": "2026-09"}
    assert "consent" not in sent[1] and "metadata" not in sent[1]


def test_event_ids_are_fresh_uuid4_and_times_are_utc() -> None:
    client, sent = queued_client()
    before = datetime.now(UTC)
    with client:
        ids = [client.rating(**COMMON, response_id="r1", value="up") for _ in range(50)]
    after = datetime.now(UTC)
    assert len(set(ids)) == 50
    assert all(uuid.UUID(event_id).version == 4 for event_id in ids)
    for event in sent:
        assert event["occurred_at"].endswith("Z")
        when = datetime.fromisoformat(event["occurred_at"])
        assert before - timedelta(milliseconds=1) <= when <= after


def test_a_given_time_is_sent_in_utc_and_a_naive_one_is_refused() -> None:
    paris_winter = timezone(timedelta(hours=1))
    assert utc_timestamp(datetime(2026, 1, 5, 10, 0, 0, 123456, paris_winter)) == (
        "2026-01-05T09:00:00.123Z"
    )
    client, sent = queued_client()
    with client:
        client.rating(**COMMON, response_id="r1", value="up",
                      occurred_at=datetime(2026, 1, 5, 10, 0, tzinfo=paris_winter))  # fmt: skip
        with pytest.raises(ValueError, match="timezone"):
            client.rating(**COMMON, response_id="r1", value="up",
                          occurred_at=datetime(2026, 1, 5, 10, 0))  # fmt: skip
    assert [event["occurred_at"] for event in sent] == ["2026-01-05T09:00:00.000Z"]


def test_metadata_is_sent_flat_and_anything_else_is_refused_at_the_call() -> None:
    client, sent = queued_client()
    metadata = {"experiment": "exp-7", "prompt_version": "v3", "temperature": 0.2,
                "streamed": True, "seed": 11, "variant": None}  # fmt: skip
    with client:
        client.rating(**COMMON, response_id="r1", value="up", metadata=metadata)
        for bad, error in [
            ({"tags": ["a", "b"]}, TypeError),
            ({"nested": {"a": 1}}, TypeError),
            ({1: "x"}, TypeError),
            ({"score": float("nan")}, ValueError),
        ]:
            with pytest.raises(error):
                client.rating(**COMMON, response_id="r1", value="up", metadata=bad)  # type: ignore[arg-type]
    assert len(sent) == 1 and sent[0]["metadata"] == metadata


def test_prompts_keep_content_parts_and_tool_calls() -> None:
    prompt = [
        {"role": "user", "content": [{"type": "text", "text": "What is in this file?"}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call-1", "type": "function",
             "function": {"name": "read_file", "arguments": "{\"path\": \"a.py\"}"}}]},
        {"role": "tool", "tool_call_id": "call-1", "content": "print('hi')"},
    ]  # fmt: skip
    client, sent = queued_client()
    with client:
        client.generation(**COMMON, response_id="r1", parent_id="m1", prompt=prompt,
                          response="It prints hi.", model="chat-small")  # fmt: skip
    assert sent[0]["prompt"] == prompt


def test_a_copy_needs_text_or_span_and_a_span_is_sent_as_start_and_end() -> None:
    client, sent = queued_client()
    with client:
        with pytest.raises(ValueError, match="text or its span"):
            client.copy(**COMMON, response_id="r1")
        client.copy(**COMMON, response_id="r1", span=(4, 12))
    assert sent[0]["span"] == {"start": 4, "end": 12} and "text" not in sent[0]
    parse_event(sent[0])


@pytest.mark.parametrize("prompt", [[], "How do I reverse a list?", [{"content": "no role"}]])
def test_a_prompt_must_be_a_list_of_messages(prompt: Any) -> None:
    client, _ = queued_client()
    with client, pytest.raises(ValueError, match="prompt"):
        client.generation(**COMMON, response_id="r1", parent_id="m1", prompt=prompt,
                          response="x", model="chat-small")  # fmt: skip


def test_track_fills_in_the_envelope_and_keeps_what_is_given() -> None:
    client, sent = queued_client()
    given = {"type": "rating", **COMMON, "response_id": "r1", "value": "up",
             "consent": {"training": False}}  # fmt: skip
    own_id = str(uuid.uuid4())
    with client:
        first = client.track(given)
        assert own_id == client.track(
            {**given, "event_id": own_id, "app": {"name": "x", "version": "2"}}
        )
        with pytest.raises(TypeError):
            client.track({**given, "when": datetime.now(UTC)})  # JSON cannot carry it
    assert "event_id" not in given  # the caller's dict is left alone
    assert [event["event_id"] for event in sent] == [first, own_id]
    assert sent[0]["app"] == APP and sent[1]["app"] == {"name": "x", "version": "2"}
    for event in sent:
        parse_event(event)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "flywheel.example.com"}, "http"),
        ({"key": " "}, "key"),
        ({"app": {"name": "chat-api"}}, "version"),
        ({"batch_size": 501}, "batch_size"),
        ({"max_batch_bytes": 1000, "max_event_bytes": 1000}, "max_batch_bytes"),
        ({"flush_interval": 0}, "flush_interval"),
        ({"retry_base": 2.0, "retry_cap": 1.0}, "retry_cap"),
    ],
)
def test_wrong_options_are_refused_when_the_client_is_made(
    options: dict[str, Any], message: str
) -> None:
    arguments = {"url": "http://api.test", "key": KEY, "app": APP} | options
    with pytest.raises(ValueError, match=message):
        Client(arguments.pop("url"), arguments.pop("key"), **arguments)


def test_the_key_is_not_in_the_clients_repr() -> None:
    client, _ = queued_client()
    with client:
        assert KEY not in repr(client) and "http://api.test/v1/events" in repr(client)
