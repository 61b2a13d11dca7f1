"""Hypothesis strategies of events, field by field from the contract's rules, near its limits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from ingest.contract import EVENT_TYPES

CHARS = st.sampled_from(["a", "Z", "0", " ", "é", "ß", "中", "😀", "\n", '"', "\\", "\u2028"])


def sized(max_size: int, *, min_size: int = 0) -> st.SearchStrategy[str]:
    """Strings mostly short, sometimes of a length at or right around the limits."""
    near = [min_size, max_size - 1, max_size, max_size + 1]
    if min_size:
        near.append(min_size - 1)
    lengths = st.sampled_from([n for n in near if n >= 0])
    return st.one_of(
        st.text(max_size=12),
        st.text(CHARS, max_size=12),
        st.builds(lambda char, n: char * n, CHARS, lengths),
    )


def text_within(max_size: int, *, min_size: int = 0) -> st.SearchStrategy[str]:
    return sized(max_size, min_size=min_size).filter(lambda s: min_size <= len(s) <= max_size)


def canonical_uuids() -> st.SearchStrategy[str]:
    """Hyphenated UUIDs in any letter case (the contract's form)."""
    return st.tuples(
        st.uuids().map(str), st.sampled_from([str.lower, str.upper, str.swapcase])
    ).map(lambda pair: pair[1](pair[0]))


def uuid_strings() -> st.SearchStrategy[str]:
    """Canonical UUIDs and near misses."""
    canonical = st.uuids().map(str)
    cased = canonical_uuids()
    broken = st.one_of(
        canonical.map(lambda u: u.replace("-", "")),
        canonical.map(lambda u: "{" + u + "}"),
        canonical.map(lambda u: "urn:uuid:" + u),
        canonical.map(lambda u: u + "\n"),
        canonical.map(lambda u: u[:-1] + "g"),
        canonical.map(lambda u: u[:-1]),
        canonical.map(lambda u: " " + u),
    )
    return st.one_of(cased, cased, broken)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339-like strings: mostly valid, often just outside a field's range or form."""
    year = draw(st.one_of(st.integers(1990, 2030), st.integers(0, 9999)))
    month = draw(st.integers(0, 13))
    day = draw(st.sampled_from([0, 1, 9, 10, 27, 28, 29, 30, 31, 32]))
    hour, minute = draw(st.integers(0, 24)), draw(st.integers(0, 60))
    second = draw(st.integers(0, 61))
    digits = draw(st.integers(0, 10))
    fraction = (
        "."
        + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits)))
        if digits
        else ""
    )
    zone = draw(
        st.one_of(
            st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0100", "+01", " Z"]),
            st.builds(
                lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
                st.sampled_from("+-"),
                st.integers(0, 25),
                st.integers(0, 60),
            ),
        )
    )
    separator = draw(st.sampled_from(["T", "T", "T", "t", " "]))
    width = draw(st.sampled_from([2, 2, 2, 1]))
    return (
        f"{year:04d}-{month:0{width}d}-{day:02d}{separator}{hour:02d}:{minute:02d}:{second:02d}"
        f"{fraction}{zone}"
    )


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value, null, or the field left out (``ABSENT``)."""
    return st.one_of(strategy, st.none(), st.just(ABSENT))


ABSENT = object()

IDS = text_within(200, min_size=1)
OFFSETS = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
# Free texts are mostly short; a 64 KiB one now and then (the limit is checked in examples too).
TEXTS = st.one_of(
    st.text(max_size=40),
    st.text(CHARS, max_size=40),
    st.text(max_size=40),
    text_within(64 * 1024),
)


METADATA_KEYS = st.one_of(
    st.sampled_from(["experiment", "prompt_version", "_a", "A9", "k" * 64]),
    st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,10}\Z"),
)
METADATA_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    text_within(256),
)
METADATA = st.dictionaries(METADATA_KEYS, METADATA_VALUES, max_size=6)
"""Metadata within the contract's limits (the byte limit is far: six short values)."""

URLS = st.one_of(
    st.sampled_from(["https://img.example.com/a.png", "HTTP://x", "https://" + "u" * 2040]),
    st.text(max_size=20).map(lambda path: "https://example.com/" + path),
)


def text_parts() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"type": st.just("text"), "text": TEXTS})


def image_parts() -> st.SearchStrategy[dict[str, Any]]:
    image_url = st.fixed_dictionaries(
        {"url": URLS}, optional={"detail": st.sampled_from(["auto", "low", "high", None])}
    )
    return st.fixed_dictionaries({"type": st.just("image_url"), "image_url": image_url})


def tool_calls() -> st.SearchStrategy[list[dict[str, Any]]]:
    call = st.fixed_dictionaries(
        {
            "id": IDS,
            "type": st.just("function"),
            "function": st.fixed_dictionaries(
                {"name": st.from_regex(r"\A[A-Za-z0-9_.-]{1,64}\Z"), "arguments": TEXTS}
            ),
        }
    )
    return st.lists(call, min_size=1, max_size=3)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A prompt message: mostly plain text, else content parts, tool calls or a tool's answer,
    each where its role allows it."""
    role = draw(st.sampled_from(["system", "user", "assistant", "tool"]))
    message: dict[str, Any] = {"role": role}
    shape = draw(st.sampled_from(["text", "text", "text", "parts", "tools"]))
    if shape == "parts":
        part = st.one_of(text_parts(), image_parts()) if role == "user" else text_parts()
        message["content"] = draw(st.lists(part, min_size=1, max_size=3))
    else:
        message["content"] = draw(TEXTS)
    if shape == "tools" and role == "assistant":
        message["tool_calls"] = draw(tool_calls())
        message["content"] = draw(maybe(st.one_of(TEXTS, st.lists(text_parts(), min_size=1))))
    if shape == "tools" and role == "tool":
        message["tool_call_id"] = draw(st.one_of(st.none(), IDS))
    if draw(st.booleans()):
        message["response_id"] = draw(st.one_of(st.none(), IDS))
    return message


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """Events the contract accepts, each field drawn from its rule (timestamps kept valid)."""
    type_ = draw(st.sampled_from(EVENT_TYPES))
    event: dict[str, Any] = {
        "event_id": draw(canonical_uuids()),
        "type": type_,
        "occurred_at": draw(
            st.builds(
                lambda moment, spec: moment.isoformat(timespec=spec),
                st.datetimes(datetime(1990, 1, 1), datetime(2030, 12, 31), timezones=OFFSETS),
                st.sampled_from(["seconds", "milliseconds", "microseconds"]),
            )
        ),
        "user_id": draw(text_within(256, min_size=1)),
        "conversation_id": draw(IDS),
        "app": {
            "name": draw(text_within(100, min_size=1)),
            "version": draw(text_within(50, min_size=1)),
        },
        "consent": draw(
            maybe(
                st.fixed_dictionaries(
                    {"training": st.booleans()},
                    optional={"policy_version": st.one_of(st.none(), text_within(50))},
                )
            )
        ),
        "schema_version": 1,
    }
    if draw(st.integers(0, 3)) == 0:
        event["metadata"] = draw(st.one_of(st.none(), METADATA))
    if type_ == "generation":
        event |= {
            "response_id": draw(IDS),
            "parent_id": draw(IDS),
            "prompt": draw(st.lists(messages(), min_size=1, max_size=4)),
            "response": draw(TEXTS),
            "model": draw(
                st.fixed_dictionaries(
                    {"id": text_within(200, min_size=1)},
                    optional={"version": st.one_of(st.none(), text_within(100))},
                )
            ),
        }
    elif type_ == "copy":
        text, span = (
            draw(maybe(TEXTS)),
            draw(
                maybe(
                    st.integers(0, 2**63 - 2).flatmap(
                        lambda start: st.fixed_dictionaries(
                            {"start": st.just(start), "end": st.integers(start + 1, 2**63 - 1)}
                        )
                    )
                )
            ),
        )
        if text in (None, ABSENT) and span in (None, ABSENT):
            text = "copied"
        event |= {
            "response_id": draw(IDS),
            "text": text,
            "span": span,
            "code_block": draw(maybe(st.booleans()).filter(lambda v: v is not None)),
        }
    elif type_ == "edit":
        event |= {"response_id": draw(IDS), "edited_text": draw(TEXTS)}
    elif type_ == "regenerate":
        event |= {"response_id": draw(IDS), "new_response_id": draw(maybe(IDS))}
    elif type_ == "ab_choice":
        a = draw(IDS)
        event |= {
            "response_a_id": a,
            "response_b_id": draw(IDS.filter(lambda b: b != a)),
            "choice": draw(st.sampled_from(["a", "b", "tie", "both_bad"])),
        }
    else:
        event |= {
            "response_id": draw(IDS),
            "value": draw(st.sampled_from(["up", "down"])),
            "reason": draw(maybe(text_within(4096))),
        }
    return without_absent(event)


def without_absent(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_absent(v) for k, v in value.items() if v is not ABSENT}
    if isinstance(value, list):
        return [without_absent(v) for v in value]
    return value
