from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flywheel.errors import ContractError
from ingest.contract import (
    EVENT_TYPES,
    encode_event,
    event_json_schema,
    format_path,
    parse_event,
    parse_events,
)
from tests.factories import make_event


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_every_type_validates_and_round_trips(type_: str) -> None:
    raw = make_event(type_)
    event = parse_event(raw)
    assert event.type == type_
    assert parse_event(json.loads(encode_event(event))) == event


def errors_of(raw: Any) -> list[dict[str, Any]]:
    with pytest.raises(ContractError) as caught:
        parse_event(raw)
    return caught.value.errors


def test_error_names_nested_field_path_without_the_union_tag() -> None:
    raw = make_event(
        "generation", prompt=[{"role": "user", "content": "hi"}, {"role": "robot", "content": 7}]
    )
    paths = {e["path"] for e in errors_of(raw)}
    assert paths == {"prompt[1].role", "prompt[1].content"}


def test_a_message_without_content_is_refused_once_its_role_is_known() -> None:
    # Content may be left out beside tool calls, so its absence is judged with the role.
    [error] = errors_of(make_event("generation", prompt=[{"role": "robot"}]))
    assert error["path"] == "prompt[0].role"
    [error] = errors_of(make_event("generation", prompt=[{"role": "user"}]))
    assert (error["path"], error["type"]) == ("prompt[0].content", "missing")


def test_unknown_type_points_at_type() -> None:
    [error] = errors_of(make_event("rating", type="thumbs"))
    assert error["path"] == "type"
    assert error["type"] == "union_tag_invalid"


def test_unknown_fields_are_refused() -> None:
    [error] = errors_of(make_event("rating", stars=5))
    assert (error["path"], error["type"]) == ("stars", "extra_forbidden")


def test_naive_timestamp_is_refused() -> None:
    [error] = errors_of(make_event("rating", occurred_at="2026-01-05T09:00:00"))
    assert error["path"] == "occurred_at"


def test_schema_version_must_be_1() -> None:
    [error] = errors_of(make_event("rating", schema_version=2))
    assert error["path"] == "schema_version"


def test_copy_needs_text_or_span() -> None:
    raw = make_event("copy")
    del raw["text"]
    [error] = errors_of(raw)
    assert "text or its span" in error["message"]
    assert parse_event({**raw, "span": {"start": 3, "end": 9}}).type == "copy"


def test_span_must_be_ordered() -> None:
    [error] = errors_of(make_event("copy", span={"start": 9, "end": 3}))
    assert error["path"] == "span"


def test_ab_choice_needs_two_different_responses() -> None:
    [error] = errors_of(make_event("ab_choice", response_b_id="resp-1"))
    assert "must differ" in error["message"]


def test_errors_never_echo_the_input_text() -> None:
    secret = "my email is jane.doe@example.com"
    errors = errors_of(make_event("rating", value=secret, reason=42))
    assert secret not in json.dumps(errors)


def test_batch_errors_carry_each_bad_events_index() -> None:
    items: list[object] = [make_event(), make_event(value="meh"), make_event(), "not an event"]
    with pytest.raises(ContractError) as caught:
        parse_events(items)
    assert [(e["index"], e["path"]) for e in caught.value.errors] == [(1, "value"), (3, "(event)")]


def test_published_schema_accepts_valid_and_rejects_invalid_events() -> None:
    validator = jsonschema.Draft202012Validator(event_json_schema())
    for type_ in EVENT_TYPES:
        validator.validate(make_event(type_))
    assert not validator.is_valid(make_event("rating", value="sideways"))
    assert not validator.is_valid(make_event("rating", type="nope"))


@pytest.mark.parametrize(
    ("loc", "path"),
    [((), "(event)"), (("prompt", 0, "role"), "prompt[0].role"), (("app", "name"), "app.name")],
)
def test_format_path(loc: tuple[int | str, ...], path: str) -> None:
    assert format_path(loc) == path


texts = st.text(max_size=200)


@given(
    response=texts,
    prompt=st.lists(texts, min_size=1, max_size=5),
    user=st.text(min_size=1, max_size=50),
)
def test_any_text_survives_encoding(response: str, prompt: list[str], user: str) -> None:
    raw = make_event(
        "generation",
        response=response,
        user_id=user,
        prompt=[{"role": "user", "content": text} for text in prompt],
    )
    event = parse_event(raw)
    decoded = json.loads(encode_event(event))
    assert decoded["response"] == response
    assert [m["content"] for m in decoded["prompt"]] == prompt
    assert decoded["user_id"] == user


@pytest.mark.parametrize(
    "occurred_at",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"],
)
def test_a_time_outside_years_1_to_9999_in_utc_is_refused(occurred_at: str) -> None:
    [error] = errors_of(make_event("rating", occurred_at=occurred_at))
    assert error["path"] == "occurred_at"
    assert "years 1 to 9999" in error["message"]


def test_the_edges_of_the_utc_range_are_accepted() -> None:
    for occurred_at in (
        "9999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00-01:00",
    ):
        assert parse_event(make_event("rating", occurred_at=occurred_at)).type == "rating"


@pytest.mark.parametrize(
    ("span", "path"),
    [
        ({"start": 0, "end": 2**64 + 1}, "span.end"),
        ({"start": 2**63, "end": 2**63 + 1}, "span.start"),
    ],
)
def test_integers_beyond_64_bits_are_refused(span: dict[str, int], path: str) -> None:
    errors = errors_of(make_event("copy", span=span))
    assert path in {e["path"] for e in errors}


def test_the_json_schema_bounds_the_span() -> None:
    span = event_json_schema()["$defs"]["Span"]["properties"]
    assert span["start"]["maximum"] == 2**63 - 2
    assert (span["end"]["minimum"], span["end"]["maximum"]) == (1, 2**63 - 1)
    assert "greater than" in span["end"]["description"]


# Metadata, content parts and tool calls (contract v1, extended).

TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
RICH_PROMPT = [
    {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is on this picture?"},
            {"type": "image_url", "image_url": {"url": "https://img.example.com/a.png"}},
        ],
    },
    {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
    {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
]


def test_metadata_content_parts_and_tool_calls_round_trip() -> None:
    raw = make_event(
        "generation", prompt=RICH_PROMPT, metadata={"experiment": "exp-7", "temperature": 0.7}
    )
    event = parse_event(raw)
    assert event.metadata == {"experiment": "exp-7", "temperature": 0.7}
    assert parse_event(json.loads(encode_event(event))) == event


def test_an_event_without_metadata_is_encoded_as_before() -> None:
    encoded = encode_event(parse_event(make_event("rating")))
    assert b"metadata" not in encoded


@pytest.mark.parametrize(
    ("metadata", "path", "type_"),
    [
        ({"experiment": {"id": 7}}, "metadata.experiment", "metadata_value_type"),
        ({"variants": ["a", "b"]}, "metadata.variants", "metadata_value_type"),
        ({"note": "x" * 257}, "metadata.note", "string_too_long"),
        ({"seed": 2**64}, "metadata.seed", "value_error"),
        ({f"k{i}": i for i in range(33)}, "metadata", "too_long"),
        ({f"k{i}": "x" * 250 for i in range(17)}, "metadata", "metadata_too_large"),
        (["experiment", "exp-7"], "metadata", "dict_type"),
        ({"prompt-version": "v3"}, "metadata.<key>", "string_pattern_mismatch"),
    ],
)
def test_metadata_errors_name_the_field(metadata: Any, path: str, type_: str) -> None:
    [error] = errors_of(make_event("copy", metadata=metadata))
    assert (error["path"], error["type"]) == (path, type_)


def test_a_metadata_key_that_is_not_an_identifier_is_not_echoed() -> None:
    [error] = errors_of(make_event("copy", metadata={"jane.doe@example.com": 1}))
    assert "jane" not in json.dumps(error)
    assert error["path"] == "metadata.<key>"


@pytest.mark.parametrize(
    ("message", "path", "type_"),
    [
        ({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]},
         "prompt[0].content[0]", "content_part_type"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {
            "url": "data:image/png;base64,iVBORw0KGgo="}}]},
         "prompt[0].content[0].image_url.url", "value_error"),
        ({"role": "assistant", "content": [{"type": "text", "text": "a"}, {
            "type": "image_url", "image_url": {"url": "https://a.example/b.png"}}]},
         "prompt[0].content[1]", "image_not_allowed"),
        ({"role": "user", "content": []}, "prompt[0].content", "too_short"),
        ({"role": "user", "content": {"text": "hi"}}, "prompt[0].content", "content_type"),
        ({"role": "user", "tool_calls": [TOOL_CALL]}, "prompt[0].tool_calls",
         "tool_calls_not_allowed"),
        ({"role": "assistant", "content": "ok", "tool_call_id": "call_1"},
         "prompt[0].tool_call_id", "tool_call_id_not_allowed"),
        ({"role": "assistant", "content": None}, "prompt[0].content", "missing"),
        ({"role": "assistant", "tool_calls": [{**TOOL_CALL, "type": "code"}]},
         "prompt[0].tool_calls[0].type", "literal_error"),
        ({"role": "assistant", "tool_calls": [{**TOOL_CALL, "function": {"name": "f"}}]},
         "prompt[0].tool_calls[0].function.arguments", "missing"),
    ],
)  # fmt: skip
def test_content_part_and_tool_call_errors_name_the_field(
    message: dict[str, Any], path: str, type_: str
) -> None:
    [error] = errors_of(make_event("generation", prompt=[message]))
    assert (error["path"], error["type"]) == (path, type_)


def test_the_text_limit_is_the_callers_and_covers_every_text() -> None:
    long = "x" * 11
    short = {"response": "r", "prompt": [{"role": "user", "content": "p"}]}
    call = {**TOOL_CALL, "function": {"name": "f", "arguments": long}}
    texts = {
        "response": make_event("generation", **{**short, "response": long}),
        "prompt[0].content": make_event(
            "generation", **{**short, "prompt": [{"role": "user", "content": long}]}
        ),
        "prompt[0].content[0].text": make_event(
            "generation",
            **{**short, "prompt": [{"role": "user", "content": [{"type": "text", "text": long}]}]},
        ),
        "prompt[0].tool_calls[0].function.arguments": make_event(
            "generation", **{**short, "prompt": [{"role": "assistant", "tool_calls": [call]}]}
        ),
        "edited_text": make_event("edit", edited_text=long),
        "text": make_event("copy", text=long),
    }
    for path, raw in texts.items():
        parse_event(raw, max_text_chars=11)
        with pytest.raises(ContractError) as caught:
            parse_events([raw], max_text_chars=10)
        assert [(e["path"], e["type"]) for e in caught.value.errors] == [(path, "string_too_long")]
        assert "10 characters" in caught.value.errors[0]["message"]


def test_the_published_schema_states_the_configured_text_limit() -> None:
    schema = event_json_schema(max_text_chars=1234)
    validator = jsonschema.Draft202012Validator(schema)
    assert schema["$defs"]["EditEvent"]["properties"]["edited_text"]["maxLength"] == 1234
    assert schema["$defs"]["TextPart"]["properties"]["text"]["maxLength"] == 1234
    assert validator.is_valid(make_event("edit", edited_text="x" * 1234))
    assert not validator.is_valid(make_event("edit", edited_text="x" * 1235))
    assert event_json_schema()["$defs"]["EditEvent"]["properties"]["edited_text"]["maxLength"] == (
        64 * 1024
    )


def test_the_published_schema_states_the_new_rules() -> None:
    validator = jsonschema.Draft202012Validator(event_json_schema())
    assert validator.is_valid(make_event("generation", prompt=RICH_PROMPT, metadata={"a": 1}))
    refused = [
        make_event("rating", metadata={"a": {"b": 1}}),
        make_event("rating", metadata={"a-b": 1}),
        make_event("rating", metadata={f"k{i}": i for i in range(33)}),
        make_event("generation", prompt=[{"role": "user"}]),
        make_event("generation", prompt=[{"role": "user", "tool_calls": [TOOL_CALL]}]),
        make_event("generation", prompt=[{"role": "user", "content": "a", "tool_call_id": "c"}]),
        make_event("generation", prompt=[{"role": "system", "content": RICH_PROMPT[1]["content"]}]),
        make_event("generation", prompt=[{"role": "user", "content": [{"type": "audio"}]}]),
    ]
    for raw in refused:
        assert not validator.is_valid(raw), raw
        with pytest.raises(ContractError):
            parse_event(raw)
