"""The pure pipeline: decode or dead-letter, drop duplicates, pseudonymise, flatten to the lake."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.contract import EVENT_TYPES
from ingest.pipeline import (
    DeadLetter,
    DedupeWindow,
    Pipeline,
    ProcessedBatch,
    RawMessage,
)
from privacy.keys import Keyring
from tests.factories import make_event
from warehouse.lake import lake_schema

TOPIC = "flywheel.events.v1"
KEYRING = Keyring(current=2, keys={1: b"\x01" * 32, 2: b"\x02" * 32})
LIMIT = 4096
RAW_USER = "raw-user-7f3a9c@example.com"


def message(value: bytes | None, offset: int = 0, *, partition: int = 0) -> RawMessage:
    return RawMessage(TOPIC, partition, offset, b"conv-1", value)


def encoded(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def messages_of(values: list[bytes | None], start: int = 0) -> list[RawMessage]:
    return [message(value, start + i) for i, value in enumerate(values)]


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=LIMIT)


def dead_letter(pipeline: Pipeline, value: bytes | None) -> DeadLetter:
    decoded = pipeline.decode(message(value))
    assert isinstance(decoded, DeadLetter)
    return decoded


# decode


def test_decode_returns_the_event(pipeline: Pipeline) -> None:
    raw = make_event("generation")
    event = pipeline.decode(message(encoded(raw)))
    assert not isinstance(event, DeadLetter)
    assert str(event.event_id) == raw["event_id"]
    assert event.type == "generation"


def test_a_tombstone_is_a_dead_letter(pipeline: Pipeline) -> None:
    tombstone = message(None, 7)
    letter = pipeline.decode(tombstone)
    assert isinstance(letter, DeadLetter)
    assert letter.message is tombstone
    assert letter.error_type == "not_json"
    assert "tombstone" in letter.reason


@pytest.mark.parametrize("value", [b"", b"not json", b'{"event_id": ', b"\xff\xfe{}", b"{}}"])
def test_a_value_that_is_not_json_is_a_dead_letter(pipeline: Pipeline, value: bytes) -> None:
    letter = dead_letter(pipeline, value)
    assert (letter.error_type, letter.reason) == ("not_json", "the value is not valid JSON")


def test_a_value_over_the_limit_is_oversize_and_the_limit_itself_is_not(
    pipeline: Pipeline,
) -> None:
    value = encoded(make_event("rating"))
    exactly = value + b" " * (LIMIT - len(value))  # trailing whitespace is still valid JSON
    assert len(exactly) == LIMIT
    assert not isinstance(pipeline.decode(message(exactly)), DeadLetter)

    letter = dead_letter(pipeline, exactly + b" ")
    assert letter.error_type == "oversize"
    assert letter.reason == f"{LIMIT + 1} bytes; the limit is {LIMIT}"


def test_oversize_is_checked_before_parsing(pipeline: Pipeline) -> None:
    assert dead_letter(pipeline, b"x" * (LIMIT + 1)).error_type == "oversize"


def test_a_contract_breach_names_field_paths_and_never_the_events_text(
    pipeline: Pipeline,
) -> None:
    email = "alice.secret@example.com"
    raw = make_event(
        "generation",
        prompt=[{"role": "robot", "content": f"mail {email}"}],
        response=f"Sure, write to {email}",
        schema_version=2,
        user_id=email,
    )
    del raw["model"]
    letter = dead_letter(pipeline, encoded(raw))

    assert letter.error_type == "contract"
    for path in ("prompt[0].role", "schema_version", "model"):
        assert f"{path}: " in letter.reason
    assert email not in letter.reason
    assert "robot" not in letter.reason


@pytest.mark.parametrize(("value", "path"), [(b"[]", "(event)"), (b"null", "(event)")])
def test_json_that_is_not_an_object_is_a_contract_breach(
    pipeline: Pipeline, value: bytes, path: str
) -> None:
    letter = dead_letter(pipeline, value)
    assert letter.error_type == "contract"
    assert letter.reason.startswith(f"{path}: ")


def test_an_unknown_type_is_named_without_echoing_its_value(pipeline: Pipeline) -> None:
    email = "alice.secret@example.com"
    letter = dead_letter(pipeline, encoded(make_event("rating", type=email)))
    assert letter.error_type == "contract"
    assert letter.reason.startswith("type: ")
    assert email not in letter.reason


# process


def test_process_drops_events_already_in_the_window(pipeline: Pipeline) -> None:
    landed, new = make_event("rating"), make_event("copy")
    window = DedupeWindow(10, [landed["event_id"]])

    batch = pipeline.process(messages_of([encoded(landed), encoded(new)], 5), window)

    assert batch.event_ids == [new["event_id"]]
    assert batch.duplicates == 1
    assert [m.offset for m in batch.kept] == [6]
    assert (batch.first_offset, batch.last_offset) == (5, 6)


def test_process_drops_resends_within_the_batch_keeping_the_first(pipeline: Pipeline) -> None:
    first, second = make_event("rating", value="up"), make_event("edit")
    resend = {**first, "value": "down"}  # same event id
    window = DedupeWindow(10)

    batch = pipeline.process(
        messages_of([encoded(first), encoded(second), encoded(resend), encoded(second)]), window
    )

    assert batch.event_ids == [first["event_id"], second["event_id"]]
    assert batch.duplicates == 2
    assert [m.offset for m in batch.kept] == [0, 1]
    assert json.loads(batch.kept[0].value or b"")["value"] == "up"


def test_process_leaves_the_window_to_the_caller(pipeline: Pipeline) -> None:
    window = DedupeWindow(10, ["kept"])
    pipeline.process(messages_of([encoded(make_event())]), window)
    assert len(window) == 1  # ids are remembered only once their batch landed


def test_the_offset_range_covers_dead_letters_at_both_ends(pipeline: Pipeline) -> None:
    event = make_event("rating")
    batch = pipeline.process(
        messages_of([None, b"nope", encoded(event), encoded(make_event(schema_version=3))], 40),
        DedupeWindow(10),
    )

    assert (batch.first_offset, batch.last_offset) == (40, 43)
    assert [d.message.offset for d in batch.dead_letters] == [40, 41, 43]
    assert [d.error_type for d in batch.dead_letters] == ["not_json", "not_json", "contract"]
    assert batch.event_ids == [event["event_id"]]
    assert [m.offset for m in batch.kept] == [42]
    assert batch.duplicates == 0


def test_a_batch_of_only_dead_letters_still_covers_its_offsets(pipeline: Pipeline) -> None:
    batch = pipeline.process(messages_of([None, None], 9), DedupeWindow(10))
    assert (batch.first_offset, batch.last_offset, batch.kept) == (9, 10, [])
    assert pipeline.frame(batch).height == 0


# DedupeWindow


def test_dedupe_window_forgets_the_oldest_beyond_capacity() -> None:
    window = DedupeWindow(3)
    for event_id in ("a", "b", "c", "d"):
        window.add(event_id)
    assert len(window) == 3
    assert "a" not in window
    assert all(event_id in window for event_id in ("b", "c", "d"))
    window.add("e")
    assert "b" not in window and "e" in window


def test_dedupe_window_seeded_with_too_many_ids_keeps_the_newest() -> None:
    window = DedupeWindow(2, ["a", "b", "c"])
    assert ("a" in window, "b" in window, "c" in window) == (False, True, True)


def test_a_zero_dedupe_window_remembers_nothing() -> None:
    window = DedupeWindow(0, ["a"])
    window.add("b")
    assert len(window) == 0 and "b" not in window


# anonymisation


def all_strings(value: object) -> list[str]:
    """Every string inside nested dicts and lists."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *all_strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in all_strings(item)]
    return []


def test_pseudonymising_replaces_user_ids_and_records_the_key_version(
    pipeline: Pipeline,
) -> None:
    events = [make_event(type_, user_id=RAW_USER) for type_ in EVENT_TYPES]
    events.append(make_event("rating", user_id="someone-else"))
    batch = pipeline.process(messages_of([encoded(e) for e in events]), DedupeWindow(10))

    frame = pipeline.frame(batch)

    assert frame["user_pseudonym"].to_list() == [KEYRING.pseudonym(RAW_USER)] * 6 + [
        KEYRING.pseudonym("someone-else")
    ]
    assert frame["pseudonym_key_version"].to_list() == [2] * 7
    assert frame["user_pseudonym"][0] != KEYRING.pseudonym(RAW_USER, version=1)  # current key
    assert frame["prompt"].drop_nulls().len() == 1
    strings = all_strings(frame.to_dicts())
    assert strings  # the walk found the texts, prompt contents included
    assert "How do I reverse a list in Python?" in strings
    assert not [s for s in strings if RAW_USER in s]


def test_without_an_anonymiser_user_ids_are_dropped_not_pseudonymised() -> None:
    pipeline = Pipeline(None, max_event_bytes=LIMIT)
    batch = pipeline.process(messages_of([encoded(make_event(user_id=RAW_USER))]), DedupeWindow(1))
    [row] = pipeline.frame(batch).to_dicts()
    assert (row["user_pseudonym"], row["pseudonym_key_version"]) == (None, None)
    assert RAW_USER not in all_strings(row)


# the lake frame


def frame_of(*events: dict[str, Any], landed_at: datetime | None = None) -> pl.DataFrame:
    # Keep events without consent too: these tests are about the columns.
    pipeline = Pipeline(
        PseudonymisingAnonymiser(KEYRING), max_event_bytes=LIMIT, drop_without_consent=False
    )
    batch = pipeline.process(messages_of([encoded(e) for e in events], 100), DedupeWindow(10))
    return pipeline.frame(batch, landed_at=landed_at)


def test_frame_has_exactly_the_lake_schema() -> None:
    frame = frame_of(*(make_event(type_) for type_ in EVENT_TYPES))
    assert list(frame.schema.items()) == list(lake_schema().items())
    assert frame.height == len(EVENT_TYPES)
    assert frame["type"].to_list() == list(EVENT_TYPES)


def test_frame_of_no_rows_has_the_lake_schema() -> None:
    pipeline = Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=LIMIT)
    frame = pipeline.frame(ProcessedBatch(first_offset=0, last_offset=0))
    assert frame.height == 0
    assert list(frame.schema.items()) == list(lake_schema().items())


def test_frame_has_one_row_per_landed_event_with_its_source(pipeline: Pipeline) -> None:
    a, b = make_event("rating"), make_event("edit")
    landed_at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    batch = pipeline.process(
        messages_of([encoded(a), None, encoded(a), encoded(b)], 20), DedupeWindow(10)
    )

    frame = pipeline.frame(batch, landed_at=landed_at)

    assert frame["event_id"].to_list() == [a["event_id"], b["event_id"]]
    assert frame["source_topic"].to_list() == [TOPIC, TOPIC]
    assert frame["source_partition"].to_list() == [0, 0]
    assert frame["source_offset"].to_list() == [20, 23]
    assert frame["landed_at"].to_list() == [landed_at, landed_at]


def test_frame_flattens_the_envelope() -> None:
    raw = make_event("rating", consent={"training": False, "policy_version": "2026-01"})
    [row] = frame_of(raw).to_dicts()
    assert row["event_id"] == raw["event_id"]
    assert row["conversation_id"] == "conv-1"
    assert (row["app_name"], row["app_version"]) == ("web", "3.2.0")
    assert (row["consent_training"], row["consent_policy_version"]) == (False, "2026-01")
    assert row["schema_version"] == 1
    assert row["scrubbed"] == []


def test_frame_without_consent_leaves_consent_null() -> None:
    raw = make_event("rating")
    del raw["consent"]
    [row] = frame_of(raw).to_dicts()
    assert (row["consent_training"], row["consent_policy_version"]) == (None, None)


def test_occurred_at_is_stored_in_utc() -> None:
    frame = frame_of(
        make_event("rating", occurred_at="2026-01-05T10:30:00.123456+02:00"),
        make_event("rating", occurred_at="2026-01-05T08:30:00Z"),
    )
    assert frame.schema["occurred_at"] == pl.Datetime("us", "UTC")
    assert frame["occurred_at"].to_list() == [
        datetime(2026, 1, 5, 8, 30, 0, 123456, tzinfo=UTC),
        datetime(2026, 1, 5, 8, 30, tzinfo=UTC),
    ]


TYPE_COLUMNS: dict[str, dict[str, Any]] = {
    "generation": {
        "response_id": "resp-1",
        "parent_id": "msg-1",
        "prompt": [
            {
                "role": "user",
                "content": "How do I reverse a list in Python?",
                "response_id": None,
            }
        ],
        "response": "Use `reversed(xs)` or `xs[::-1]`.",
        "model_id": "chat-small",
        "model_version": "2026-09",
    },
    "copy": {"response_id": "resp-1", "copy_text": "xs[::-1]", "code_block": True},
    "edit": {"response_id": "resp-1", "edited_text": "Use `xs.reverse()` in place."},
    "regenerate": {"response_id": "resp-1", "new_response_id": "resp-2"},
    "ab_choice": {"response_a_id": "resp-1", "response_b_id": "resp-2", "choice": "a"},
    "rating": {"response_id": "resp-1", "rating_value": "up"},
}
ALL_TYPE_COLUMNS = sorted({name for columns in TYPE_COLUMNS.values() for name in columns} | {
    "copy_span_start", "copy_span_end", "rating_reason",
})  # fmt: skip


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_frame_fills_the_columns_of_each_type_and_leaves_the_others_null(type_: str) -> None:
    [row] = frame_of(make_event(type_)).to_dicts()
    expected = {name: TYPE_COLUMNS[type_].get(name) for name in ALL_TYPE_COLUMNS}
    assert {name: row[name] for name in ALL_TYPE_COLUMNS} == expected
    assert row["type"] == type_


def test_frame_keeps_a_copy_span_and_a_rating_reason() -> None:
    copy = make_event("copy", text=None, span={"start": 3, "end": 9})
    rating = make_event("rating", value="down", reason="too long")
    generation = make_event(
        "generation",
        prompt=[
            {"role": "system", "content": "Be brief."},
            {"role": "assistant", "content": "Hi", "response_id": "resp-0"},
        ],
        model={"id": "chat-large"},
    )
    copied, rated, generated = frame_of(copy, rating, generation).to_dicts()
    assert (copied["copy_text"], copied["copy_span_start"], copied["copy_span_end"]) == (
        None, 3, 9,
    )  # fmt: skip
    assert copied["code_block"] is True
    assert (rated["rating_value"], rated["rating_reason"]) == ("down", "too long")
    assert generated["prompt"] == [
        {"role": "system", "content": "Be brief.", "response_id": None},
        {"role": "assistant", "content": "Hi", "response_id": "resp-0"},
    ]
    assert (generated["model_id"], generated["model_version"]) == ("chat-large", None)


# the whole batch, for any mix of events, resends and poison


POISON: dict[str, bytes | None] = {
    "tombstone": None,
    "not_json": b"{not json",
    "contract": encoded(make_event("rating", schema_version=2)),
    "oversize": encoded(make_event("edit", edited_text="x" * LIMIT)),
}

slot = st.one_of(
    st.tuples(st.just("event"), st.sampled_from(EVENT_TYPES), st.integers(0, 7)),
    st.tuples(st.just("poison"), st.sampled_from(sorted(POISON)), st.just(0)),
)


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.uuids(), min_size=8, max_size=8, unique=True),
    slots=st.lists(slot, min_size=1, max_size=25),
    already_landed=st.sets(st.integers(0, 7), max_size=3),
    start=st.integers(0, 2**40),
)
def test_every_message_lands_is_a_duplicate_or_is_dead_lettered(
    ids: list[uuid.UUID],
    slots: list[tuple[str, str, int]],
    already_landed: set[int],
    start: int,
) -> None:
    pipeline = Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=LIMIT)
    window = DedupeWindow(100, [str(ids[i]) for i in sorted(already_landed)])
    values: list[bytes | None] = []
    expected_ids: list[str] = []
    for kind, name, index in slots:
        if kind == "poison":
            values.append(POISON[name])
            continue
        event_id = str(ids[index])
        values.append(encoded(make_event(name, event_id=event_id)))
        if index not in already_landed and event_id not in expected_ids:
            expected_ids.append(event_id)
    messages = messages_of(values, start)

    batch = pipeline.process(messages, window)
    frame = pipeline.frame(batch)

    assert frame.height + batch.duplicates + len(batch.dead_letters) == len(messages)
    assert len(batch.dead_letters) == sum(kind == "poison" for kind, _, _ in slots)
    assert frame["event_id"].to_list() == expected_ids  # unique, first sighting, offset order
    offsets = frame["source_offset"].to_list()
    assert offsets == sorted(set(offsets))
    assert (batch.first_offset, batch.last_offset) == (start, start + len(messages) - 1)


# consent


@pytest.mark.parametrize(
    "consent", [{"training": False}, None], ids=["declined", "no consent recorded"]
)
def test_events_without_training_consent_are_dropped_before_landing(
    pipeline: Pipeline, consent: dict[str, Any] | None
) -> None:
    without = make_event("rating", consent=consent)
    if consent is None:
        del without["consent"]
    given = make_event("rating")
    batch = pipeline.process(messages_of([encoded(without), encoded(given)], 7), DedupeWindow(10))
    assert batch.event_ids == [given["event_id"]]
    assert batch.without_consent == 1
    assert (batch.first_offset, batch.last_offset) == (7, 8)  # the dropped offset is covered


def test_keep_mode_lands_events_without_consent_flagged() -> None:
    pipeline = Pipeline(
        PseudonymisingAnonymiser(KEYRING), max_event_bytes=LIMIT, drop_without_consent=False
    )
    declined = make_event("rating", consent={"training": False})
    batch = pipeline.process(messages_of([encoded(declined)]), DedupeWindow(10))
    assert batch.without_consent == 0
    [row] = pipeline.frame(batch).to_dicts()
    assert row["consent_training"] is False


def test_an_event_the_lake_cannot_hold_is_dead_lettered_not_the_batch() -> None:
    from ingest.anonymiser import PseudonymisingAnonymiser
    from ingest.pipeline import DedupeWindow, Pipeline, RawMessage
    from privacy.keys import Keyring
    from tests.factories import make_event

    flow = Pipeline(PseudonymisingAnonymiser(Keyring(1, {1: b"k" * 32})), max_event_bytes=65536)
    events = [make_event(), make_event(schema_version=1.0), make_event()]  # 1.0: a valid int
    messages = [RawMessage("t", 0, i, None, json.dumps(e).encode()) for i, e in enumerate(events)]
    batch = flow.process(messages, DedupeWindow(10))
    assert len(batch.kept) == 3  # the contract accepts all three

    frame = flow.frame_or_dead_letter(batch)

    assert frame["source_offset"].to_list() == [0, 2]
    [letter] = batch.dead_letters
    assert letter.error_type == "unstorable" and letter.message.offset == 1
    assert "1.0" not in letter.reason and "'1'" not in letter.reason
    assert batch.event_ids == [events[0]["event_id"], events[2]["event_id"]]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        # A rating whose value the lake's reader (first copy) and the contract (last) disagree on.
        (b'{"value": null, ', "value"),
        # A consent the contract read as given while the lake's reader saw it withheld.
        (b'{"consent": {"training": false}, ', "consent"),
        (b'{"app": {"name": "web", "name": "cli", "version": "1"}, ', "app.name"),
    ],
)
def test_a_repeated_key_is_a_contract_dead_letter_naming_its_path(
    pipeline: Pipeline, value: bytes, path: str
) -> None:
    body = value + encoded(make_event("rating", consent={"training": True}))[1:]
    if path == "app.name":
        body = body.replace(b', "app": {"name": "web", "version": "3.2.0"}', b"", 1)
    batch = pipeline.process(messages_of([body]), DedupeWindow(10))
    [letter] = batch.dead_letters
    assert letter.error_type == "contract"
    assert letter.reason == f"{path}: the key is given more than once in the same object"
    assert batch.kept == [] and batch.without_consent == 0


# metadata, content parts and tool calls

DRESSED = make_event(
    "generation",
    metadata={"experiment": "exp-7", "temperature": 0.7, "seed": 42, "sampled": True, "x": None},
    prompt=[
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"}, {"type": "text", "text": "And this?"},
            {"type": "image_url", "image_url": {"url": "https://a.example/b.png", "detail": "low"}},
        ]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "look", "arguments": '{"at": "b.png"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
        {"role": "assistant", "content": "A cat.", "response_id": "resp-0"},
    ],
)  # fmt: skip


def test_metadata_lands_as_canonical_json_and_the_prompt_structure_beside_the_prompt() -> None:
    plain, dressed = frame_of(make_event("rating"), DRESSED).to_dicts()
    assert (plain["metadata"], plain["prompt_structure"]) == (None, None)
    # Keys sorted, compact, values as sent.
    assert dressed["metadata"] == (
        '{"experiment":"exp-7","sampled":true,"seed":42,"temperature":0.7,"x":null}'
    )
    assert dressed["prompt"] == [
        {"role": "system", "content": "Be brief.", "response_id": None},
        {"role": "user", "content": "What is this?\nAnd this?", "response_id": None},
        {"role": "assistant", "content": "", "response_id": None},
        {"role": "tool", "content": "a cat", "response_id": None},
        {"role": "assistant", "content": "A cat.", "response_id": "resp-0"},
    ]
    text = {"image_url": None, "detail": None}
    assert dressed["prompt_structure"] == [
        {"parts": [{"type": "text", "text": "Be brief.", **text}], "tool_calls": None,
         "tool_call_id": None},
        {"parts": [
            {"type": "text", "text": "What is this?", **text},
            {"type": "text", "text": "And this?", **text},
            {"type": "image_url", "text": None, "image_url": "https://a.example/b.png",
             "detail": "low"},
        ], "tool_calls": None, "tool_call_id": None},
        {"parts": None, "tool_calls": [{"id": "call_1", "type": "function", "name": "look",
                                        "arguments": '{"at": "b.png"}'}], "tool_call_id": None},
        {"parts": None, "tool_calls": None, "tool_call_id": "call_1"},
        {"parts": None, "tool_calls": None, "tool_call_id": None},
    ]  # fmt: skip


def test_an_event_lands_the_same_whichever_pass_validated_it() -> None:
    """The native pass (with the validation's flags), the contract (a lower text limit leaves
    every event to it), and no flags at all (``flatten`` looks itself) give one frame."""
    events = [make_event("rating", metadata={"a": "b"}), make_event("copy"), DRESSED,
              make_event("generation"), make_event("edit", metadata={"n": 1.5})]  # fmt: skip
    landed_at = datetime(2026, 1, 5, tzinfo=UTC)
    frames = []
    for limit in (64 * 1024, 1000):
        pipeline = Pipeline(
            PseudonymisingAnonymiser(KEYRING), max_event_bytes=LIMIT, max_text_chars=limit
        )
        batch = pipeline.process(messages_of([encoded(e) for e in events]), DedupeWindow(10))
        assert batch.extended == [True, False, True, False, True]
        frames.append(pipeline.frame(batch, landed_at=landed_at))
        batch.extended = []
        frames.append(pipeline.frame(batch, landed_at=landed_at))
    assert all(frame.equals(frames[0]) for frame in frames[1:])
    # Plain events land as before: the same row with or without dressed neighbours.
    alone = Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=LIMIT)
    plain = alone.frame(alone.process(messages_of([encoded(events[1])], 1), DedupeWindow(10)),
                        landed_at=landed_at)  # fmt: skip
    assert frames[0].slice(1, 1).equals(plain)


def test_the_configured_text_limit_dead_letters_a_longer_text_with_its_path() -> None:
    pipeline = Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=LIMIT, max_text_chars=8)
    long = make_event("generation", response="short", prompt=[
        {"role": "user", "content": [{"type": "text", "text": "nine char"}]}])  # fmt: skip
    batch = pipeline.process(messages_of([encoded(long)]), DedupeWindow(10))
    [letter] = batch.dead_letters
    assert letter.error_type == "contract"
    assert letter.reason == "prompt[0].content[0].text: String should have at most 8 characters"
