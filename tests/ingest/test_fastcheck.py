"""The native first pass never accepts what the contract refuses, and accepts everyday events.

``check`` may pass any message on to the pydantic contract, but whatever it accepts must be
valid under the contract, with the same event id and consent. The property tests generate
events field by field from the contract's rules, near its limits, and then break them: wrong
JSON types, unknown and missing fields, lengths one past a limit, malformed timestamps and
UUIDs, duplicated keys, damaged bytes.
"""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.errors import ContractError
from ingest.contract import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    event_json_schema,
    parse_event_json,
    uses_extensions,
)
from ingest.fastcheck import check
from tests.factories import make_event
from tests.helpers.strategies import CHARS, timestamps, uuid_strings, valid_events

JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([0.0, 1.0, 2.0, -1.0]),
        st.text(max_size=8),
        st.sampled_from(list(EVENT_TYPES) + ["up", "a", "user", "1"]),
        uuid_strings(),
        timestamps(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside a JSON value, the value itself first."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def container(event: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        event = event[part]
    return event


@st.composite
def broken_events(draw: st.DrawFn) -> bytes:
    """A valid event with one to three changes, most of which break it."""
    event = draw(valid_events())
    for _ in range(draw(st.integers(1, 3))):
        located = [p for p in paths(event) if p]
        path = draw(st.sampled_from(located))
        parent = container(event, path)
        action = draw(st.sampled_from(["replace", "replace", "delete", "add", "nudge"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON_VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add":
            objects = [p for p in paths(event) if isinstance(container(event, (*p, None)), dict)]
            target = container(event, (*draw(st.sampled_from(objects)), None))
            target[draw(st.text(string.ascii_lowercase + "_", min_size=1, max_size=12))] = draw(
                JSON_VALUES
            )
        else:  # a string one character past (or below) its limit, or an int off by one
            current = parent[path[-1]]
            if isinstance(current, str):
                parent[path[-1]] = current + draw(CHARS) if draw(st.booleans()) else current[:-1]
            elif isinstance(current, int) and not isinstance(current, bool):
                parent[path[-1]] = current + draw(st.sampled_from([-1, 1]))
    raw = json.dumps(event, ensure_ascii=draw(st.booleans())).encode()
    damage = draw(st.sampled_from(["none", "none", "duplicate", "byte", "surrogate"]))
    if damage == "duplicate" and isinstance(event, dict) and event:
        # The same key again at the end: the contract reads the last copy.
        key = draw(st.sampled_from(sorted(event)))
        raw = (
            raw[:-1]
            + b", "
            + json.dumps(key).encode()
            + b": "
            + json.dumps(draw(JSON_VALUES)).encode()
            + b"}"
        )
    elif damage == "byte" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    elif damage == "surrogate":
        escape = draw(st.sampled_from([b"\\ud800", b"\\udc00", b"\\ud83d\\ude00", b"\\u0000"]))
        raw = (
            raw.replace(b'"', b'"' + escape, 1)
            if draw(st.booleans())
            else raw.replace(b'": "', b'": "' + escape, 1)
        )
    return raw


def assert_agrees_with_the_contract(raw: bytes, *, max_text_chars: int = 64 * 1024) -> bool:
    """If ``check`` accepts, the contract accepts with the same id, consent and use of the
    extensions; True if it did."""
    checked = check(raw, max_text_chars=max_text_chars)
    if checked is None:
        return False
    # Raises if the fast path accepted a broken event.
    event = parse_event_json(raw, max_text_chars=max_text_chars)
    assert checked.event_id == str(event.event_id)
    assert checked.training_consent == bool(event.consent and event.consent["training"])
    assert checked.extended == uses_extensions(event)
    return True


QUICK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(valid_events(), st.booleans())
def test_valid_events_pass_both_ways(event: dict[str, Any], ascii_only: bool) -> None:
    raw = json.dumps(event, ensure_ascii=ascii_only).encode()
    EVENT_ADAPTER.validate_json(raw)  # the generator makes valid events
    if event["occurred_at"][4:10] == "-02-29" or abs(int(event["occurred_at"][-6:-3])) > 13:
        return  # valid, but left to the contract
    assert assert_agrees_with_the_contract(raw), "the fast path refused a plain valid event"


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_events())
def test_the_fast_path_never_accepts_what_the_contract_refuses(raw: bytes) -> None:
    assert_agrees_with_the_contract(raw)


@QUICK
@given(timestamps())
def test_timestamps_it_accepts_are_valid(timestamp: str) -> None:
    assert_agrees_with_the_contract(
        json.dumps(make_event("rating", occurred_at=timestamp)).encode()
    )


@QUICK
@given(uuid_strings())
def test_event_ids_it_accepts_are_valid_and_canonical(event_id: str) -> None:
    assert_agrees_with_the_contract(json.dumps(make_event("edit", event_id=event_id)).encode())


@QUICK
@given(st.binary(max_size=64))
def test_arbitrary_bytes(raw: bytes) -> None:
    assert_agrees_with_the_contract(raw)


def test_every_simulated_event_takes_the_fast_path() -> None:
    events = list(simulate(SimulationConfig(events=2000, seed=3)))
    for event in events:
        assert assert_agrees_with_the_contract(json.dumps(event).encode())


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        ({}, True),
        ({"occurred_at": "2024-02-29T09:00:00Z"}, False),  # valid, but left to the contract
        ({"occurred_at": "2023-02-29T09:00:00Z"}, False),
        ({"occurred_at": "2026-01-05T09:00:00"}, False),
        ({"occurred_at": "2026-01-05T09:00:00.123456789Z"}, False),
        ({"schema_version": 1.0}, False),  # valid: JSON Schema's integer
        ({"schema_version": True}, False),
        ({"span": {"start": 3, "end": 3}, "text": None}, False),
        ({"span": {"start": 0, "end": 2.0}, "text": None}, False),
        ({"span": {"start": 0, "end": 10**30}, "text": None}, False),
        ({"span": {"start": 0, "end": 2**63 - 1}, "text": None}, True),
        ({"span": {"start": 0, "end": 2**63}, "text": None}, False),
        ({"occurred_at": "1999-12-31T23:59:59-13:59"}, True),
        ({"text": None}, False),
        ({"code_block": None}, False),
        ({"event_id": "6F9619FF-8B86-D011-B42D-00C04FC964FF"}, True),
        ({"extra": 1}, False),
        ({"app": {"name": "web", "version": "1", "build": 7}}, False),
        ({"consent": None}, True),
        ({"consent": {"training": "true"}}, False),
        ({"text": "\U0001f600" * 64 * 1024}, True),  # the limit counts characters
        ({"text": "\U0001f600" * (64 * 1024 + 1)}, False),
        ({"response_id": ""}, False),
        ({"response_id": "r" * 200}, True),
        ({"response_id": "r" * 201}, False),
    ],
)
def test_examples(change: dict[str, Any], accepted: bool) -> None:
    raw = json.dumps(make_event("copy", **change)).encode()
    assert assert_agrees_with_the_contract(raw) is accepted


@pytest.mark.parametrize(
    "raw",
    [
        # The same value twice, a later copy overriding consent, a nested and a listed repeat.
        b'{"type": "rating", "type": "rating"',
        b'{"consent": {"training": true}, "consent": {"training": false}',
        b'{"app": {"name": "web", "name": "web", "version": "1"}',
        b'{"span": {"start": 0, "end": 3, "end": 4}',
        b'{"text" :"a", "text"\n:"b"',
        # A repeat hidden beside a colon spelled as an escape.
        b'{"text": "\\"\\u003a", "text": "b"',
    ],
)
def test_a_repeated_key_is_never_accepted(raw: bytes) -> None:
    event = make_event("copy", span={"start": 0, "end": 4})
    body = json.dumps(event).encode()
    raw = raw + b", " + body[1:]
    assert check(raw) is None
    with pytest.raises(ContractError) as caught:
        parse_event_json(raw)
    assert caught.value.errors[0]["type"] == "duplicate_key"


def test_text_that_looks_like_keys_still_takes_the_fast_path() -> None:
    raw = json.dumps(make_event("copy", text='{"a": 1, "a" : 2} \\": x')).encode()
    assert assert_agrees_with_the_contract(raw)


# Every rule the contract's JSON Schema states, tried at and just past its boundary: the fast
# path must agree with the contract on each side (and accept the valid side, so it is not idle).

FULL_EVENTS: dict[str, dict[str, Any]] = {
    "generation": make_event(
        "generation",
        consent={"training": True, "policy_version": "v1"},
        prompt=[{"role": "assistant", "content": "hello", "response_id": "resp-0"}],
        model={"id": "chat-small", "version": "2026-09"},
    ),
    "copy": make_event("copy", span={"start": 0, "end": 4}),
    "edit": make_event("edit"),
    "regenerate": make_event("regenerate"),
    "ab_choice": make_event("ab_choice"),
    "rating": make_event("rating", reason="too long"),
}


def schema_rules() -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    """(event type, path, schema of the value) for every leaf value of every event type."""
    schema = event_json_schema()
    defs = schema["$defs"]
    found: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def walk(type_: str, path: tuple[Any, ...], node: dict[str, Any]) -> None:
        # CopyEvent's own anyOf (text or span) sits beside its properties: not a union.
        union = node.get("anyOf", [node]) if "properties" not in node else [node]
        options = [o for o in union if o.get("type") != "null"]
        # A message's content: its text's rules here; content parts have cases of their own.
        options = [a for o in options for a in o.get("oneOf", [o]) if a.get("type") != "array"]
        for option in options:
            if "$ref" in option:
                option = defs[option["$ref"].rsplit("/", 1)[1]]
            if option.get("type") == "object" and "properties" in option:
                found.append((type_, path, option))
                for name, child in option["properties"].items():
                    walk(type_, (*path, name), child)
            elif option.get("type") == "array":
                found.append((type_, path, option))
                walk(type_, (*path, 0), option["items"])
            else:
                found.append((type_, path, option))

    for member in schema["oneOf"]:
        definition = defs[member["$ref"].rsplit("/", 1)[1]]
        walk(definition["properties"]["type"]["const"], (), definition)
    return found


RULES = schema_rules()


def with_value(type_: str, path: tuple[Any, ...], value: Any) -> bytes:
    event = json.loads(json.dumps(FULL_EVENTS[type_]))
    container(event, path)[path[-1]] = value
    return json.dumps(event, ensure_ascii=False).encode()


def boundary_cases() -> list[tuple[str, tuple[Any, ...], Any, bool]]:
    """(type, path, value, valid) around every length, minimum, enum and constant rule."""
    cases: list[tuple[str, tuple[Any, ...], Any, bool]] = []
    for type_, path, rule in RULES:
        if not path or path == ("type",):
            continue
        if rule.get("type") == "string" and ("maxLength" in rule or "minLength" in rule):
            low, high = rule.get("minLength", 0), rule.get("maxLength", 10**6)
            for char in ("a", "é", "\U0001f600"):
                for length in {low - 1, low, high, high + 1} - {-1}:
                    cases.append((type_, path, char * length, low <= length <= high))
        if rule.get("type") == "integer" and "minimum" in rule:
            minimum = rule["minimum"]
            cases += [(type_, path, minimum - 1, False), (type_, path, minimum + 10**20, None)]
        if rule.get("type") == "integer" and "maximum" in rule:
            cases += [
                (type_, path, rule["maximum"], None),
                (type_, path, rule["maximum"] + 1, False),
            ]
        if "enum" in rule or "const" in rule:
            allowed = rule.get("enum", [rule.get("const")])
            cases += [(type_, path, value, True) for value in allowed]
            cases += [(type_, path, str(allowed[0]).upper() + "x", False)]
        if rule.get("type") == "array":
            lengths = (rule.get("minItems", 0) - 1, rule.get("maxItems", 0), rule["maxItems"] + 1)
            item = container(FULL_EVENTS[type_], (*path, 0))[0]
            cases += [(type_, path, [item] * n, None) for n in lengths if n >= 0]
        if rule.get("type") == "object" and rule.get("additionalProperties") is False:
            cases.append((type_, (*path, "unknown_field"), 1, False))
        # A value of every other JSON type.
        for other in (None, True, 1, 1.5, "x", [], {}):
            cases.append((type_, path, other, None))
    return cases


@pytest.mark.parametrize(("type_", "path", "value", "valid"), boundary_cases())
def test_every_schema_rule_at_its_boundary(
    type_: str, path: tuple[Any, ...], value: Any, valid: bool | None
) -> None:
    raw = with_value(type_, path, value)
    accepted = assert_agrees_with_the_contract(raw)
    if valid is not None:
        assert accepted is valid


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_every_missing_field(type_: str) -> None:
    for path in paths(FULL_EVENTS[type_]):
        if path:
            event = json.loads(json.dumps(FULL_EVENTS[type_]))
            del container(event, path)[path[-1]]
            assert_agrees_with_the_contract(json.dumps(event).encode())


def test_every_calendar_day_and_clock_boundary() -> None:
    for year in (1999, 2000, 2023, 2024, 2100):
        for month in range(0, 14):
            for day in (0, 1, 28, 29, 30, 31, 32):
                stamp = f"{year}-{month:02d}-{day:02d}T12:00:00Z"
                assert_agrees_with_the_contract(with_value("rating", ("occurred_at",), stamp))
    for clock in ("23:59:59", "24:00:00", "00:60:00", "00:00:60", "09:00:00.", "9:00:00"):
        for zone in ("Z", "+13:59", "-13:59", "+14:00", "+24:00", "+01:60", "+01"):
            stamp = f"2026-01-05T{clock}{zone}"
            assert_agrees_with_the_contract(with_value("rating", ("occurred_at",), stamp))


# Metadata, content parts and tool calls: each limit at and past its boundary, each rule of the
# roles, on both passes.

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
IMAGE = {"type": "image_url", "image_url": {"url": "https://img.example.com/a.png"}}


def _prompt(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": list(messages)}


def _metadata_of_bytes(size: int) -> dict[str, str]:
    """Seventeen string values whose sorted compact JSON is ``size`` bytes (4090 to 4100)."""
    metadata = {f"k{i:02d}": "x" * 232 for i in range(16)} | {"k16": "x" * (size - 3866)}
    assert len(json.dumps(metadata, separators=(",", ":")).encode()) == size
    return metadata


@pytest.mark.parametrize(
    ("change", "accepted"),
    [
        ({"metadata": {"experiment": "exp-7", "n": 3, "x": 0.5, "b": False, "z": None}}, True),
        ({"metadata": None}, True),
        ({"metadata": {}}, True),
        ({"metadata": {f"k{i}": i for i in range(32)}}, True),
        ({"metadata": {f"k{i}": i for i in range(33)}}, False),
        ({"metadata": {"k" * 64: 1}}, True),
        ({"metadata": {"k" * 65: 1}}, False),
        ({"metadata": {"9k": 1}}, False),
        ({"metadata": {"a-b": 1}}, False),
        ({"metadata": {"a\n": 1}}, False),
        ({"metadata": {"s": "é" * 256}}, True),
        ({"metadata": {"s": "é" * 257}}, False),
        ({"metadata": {"n": 2**63 - 1}}, True),
        ({"metadata": {"n": 2**63}}, False),
        ({"metadata": {"n": -(2**63) - 1}}, False),
        ({"metadata": {"o": {"a": 1}}}, False),
        ({"metadata": {"o": [1]}}, False),
        ({"metadata": [["a", 1]]}, False),
        ({"metadata": "a=1"}, False),
        # The byte limit: 4096 bytes of sorted compact JSON (the fast path leaves the larger
        # half to the contract, None: valid, taken by the contract only).
        ({"metadata": {f"k{i:02d}": "x" * 100 for i in range(16)}}, True),
        ({"metadata": {f"k{i:02d}": "x" * 200 for i in range(16)}}, None),
        ({"metadata": _metadata_of_bytes(4096)}, None),
        ({"metadata": _metadata_of_bytes(4097)}, False),
        (_prompt({"role": "user", "content": [{"type": "text", "text": "a"}, IMAGE]}), True),
        (_prompt({"role": "system", "content": [{"type": "text", "text": "a"}]}), True),
        (_prompt({"role": "assistant", "content": [IMAGE]}), False),
        (_prompt({"role": "user", "content": []}), False),
        (_prompt({"role": "user", "content": [{"type": "text", "text": "a"}] * 100}), True),
        (_prompt({"role": "user", "content": [{"type": "text", "text": "a"}] * 101}), False),
        (_prompt({"role": "user", "content": [{"type": "audio", "data": "AAAA"}]}), False),
        (_prompt({"role": "user", "content": [{"text": "a"}]}), False),
        (_prompt({"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}), False),
        (_prompt({"role": "user", "content": [{"type": "text", "text": "😀" * 65536}]}), True),
        (_prompt({"role": "user", "content": [{"type": "text", "text": "😀" * 65537}]}), False),
        (_prompt({"role": "user", "content": [{**IMAGE, "image_url": {"url": "data:,A"}}]}), False),
        (_prompt({"role": "user", "content": [{**IMAGE, "image_url": {"url": "ftp://a"}}]}), False),
        (_prompt({"role": "user", "content": [{**IMAGE, "image_url": {"url": ""}}]}), False),
        (
            _prompt({"role": "user", "content": [{**IMAGE, "image_url": {"url": "https://"
                                                                        + "u" * 2040}}]}),
            True,
        ),
        (
            _prompt({"role": "user", "content": [{**IMAGE, "image_url": {"url": "https://"
                                                                        + "u" * 2041}}]}),
            False,
        ),
        (
            _prompt({"role": "user", "content": [{**IMAGE, "image_url": {
                "url": "https://a", "detail": "low"}}]}),
            True,
        ),
        (
            _prompt({"role": "user", "content": [{**IMAGE, "image_url": {
                "url": "https://a", "detail": "max"}}]}),
            False,
        ),
        (_prompt({"role": "assistant", "tool_calls": [TOOL_CALL]}), True),
        (_prompt({"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}), True),
        (_prompt({"role": "assistant", "content": "x", "tool_calls": [TOOL_CALL] * 128}), True),
        (_prompt({"role": "assistant", "content": "x", "tool_calls": [TOOL_CALL] * 129}), False),
        (_prompt({"role": "assistant", "content": "x", "tool_calls": []}), False),
        (_prompt({"role": "assistant", "tool_calls": None}), False),
        (_prompt({"role": "assistant"}), False),
        (_prompt({"role": "user", "tool_calls": [TOOL_CALL]}), False),
        (_prompt({"role": "tool", "content": "sunny", "tool_call_id": "call_1"}), True),
        (_prompt({"role": "tool", "content": "sunny", "tool_call_id": None}), True),
        (_prompt({"role": "assistant", "content": "x", "tool_call_id": "call_1"}), False),
        (_prompt({"role": "tool", "content": "x", "tool_call_id": ""}), False),
        (
            _prompt({"role": "assistant", "tool_calls": [{**TOOL_CALL, "type": "retrieval"}]}),
            False,
        ),
        *(
            (
                _prompt({"role": "assistant", "tool_calls": [
                    {**TOOL_CALL, "function": {"name": name, "arguments": "{}"}}]}),
                accepted,
            )
            for name, accepted in [("a" * 64, True), ("a" * 65, False), ("", False),
                                   ("mcp.search-v2_x", True), ("get weather", False),
                                   ("f\n", False)]
        ),
        (
            _prompt({"role": "assistant", "tool_calls": [
                {**TOOL_CALL, "function": {"name": "f", "arguments": "😀" * 65537}}]}),
            False,
        ),
        (
            _prompt({"role": "assistant", "tool_calls": [
                {**TOOL_CALL, "function": {"name": "f", "arguments": {"a": 1}}}]}),
            False,
        ),
    ],
)  # fmt: skip
def test_extension_examples(change: dict[str, Any], accepted: bool | None) -> None:
    raw = json.dumps(make_event("generation", **change)).encode()
    assert assert_agrees_with_the_contract(raw) is bool(accepted)
    if accepted is None:
        parse_event_json(raw)
    elif not accepted:
        with pytest.raises(ContractError):
            parse_event_json(raw)


def test_a_lower_text_limit_is_the_contracts_to_apply() -> None:
    raw = json.dumps(make_event("edit", edited_text="x" * 100)).encode()
    assert assert_agrees_with_the_contract(raw, max_text_chars=100) is False  # left to it
    parse_event_json(raw, max_text_chars=100)
    with pytest.raises(ContractError):
        parse_event_json(raw, max_text_chars=99)
    assert assert_agrees_with_the_contract(raw, max_text_chars=1000)
