"""A native first pass over the event contract, for the ingest workers' hot path.

The workers validate every message again (other producers than the API exist). pydantic does it
in about 11 microseconds per 1 KiB event, most of it in Python-level validators and model
instances; msgspec checks the same rules in C in about half that. ``check`` answers only one way
for sure: when it accepts a message, the contract (``ingest.contract``) accepts it too, with the
same event id and consent. Anything it does not accept (a broken event, or a valid one in a
form this pass does not try to prove, such as ``2.0`` for an integer, a timestamp on 29
February or with nanoseconds; any key given twice) goes to the
pydantic contract, which decides and gives the dead letter's reason. So the contract stays the
only definition of a valid event, and tests/ingest/test_fastcheck.py compares both on generated
valid and invalid events.

The rules mirrored here, field by field, are those of ``ingest.contract``; a change to the
contract must be made here too (the property test fails until it is).
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

_UUID = r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"

# A subset of the RFC 3339 strings the contract accepts: only real calendar dates (29 February
# is left to the contract, which knows leap years), 00:00:00 to 23:59:59, at most microseconds,
# upper-case Z or an offset below 14 hours. Every string matching it parses as an aware datetime.
_TIMESTAMP = (
    r"\A(?:19|20)\d\d-"
    r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:Z|[+-](?:0\d|1[0-3]):[0-5]\d)\Z"
)

_Id = Annotated[str, Meta(min_length=1, max_length=200)]
_Text = Annotated[str, Meta(max_length=64 * 1024)]


class _Object(Struct, forbid_unknown_fields=True, kw_only=True):
    """A JSON object with exactly the listed fields (the contract's ``extra="forbid"``)."""


class _App(_Object):
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    version: Annotated[str, Meta(min_length=1, max_length=50)]


class _Consent(_Object):
    training: bool
    policy_version: Annotated[str, Meta(max_length=50)] | None | UnsetType = UNSET


class _Model(_Object):
    id: Annotated[str, Meta(min_length=1, max_length=200)]
    version: Annotated[str, Meta(max_length=100)] | None | UnsetType = UNSET


class _Message(_Object):
    role: Literal["system", "user", "assistant", "tool"]
    content: _Text
    response_id: _Id | None | UnsetType = UNSET


class _Span(_Object):
    start: Annotated[int, Meta(ge=0, le=2**63 - 2)]
    end: Annotated[int, Meta(ge=1, le=2**63 - 1)]

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("end must be greater than start")


class _Event(_Object, tag_field="type", kw_only=True):
    event_id: Annotated[str, Meta(pattern=_UUID)]
    occurred_at: Annotated[str, Meta(pattern=_TIMESTAMP)]
    user_id: Annotated[str, Meta(min_length=1, max_length=256)]
    conversation_id: _Id
    app: _App
    consent: _Consent | None | UnsetType = UNSET
    schema_version: Literal[1]


class _Generation(_Event, tag="generation", kw_only=True):
    response_id: _Id
    parent_id: _Id
    prompt: Annotated[list[_Message], Meta(min_length=1, max_length=200)]
    response: _Text
    model: _Model


class _Copy(_Event, tag="copy", kw_only=True):
    response_id: _Id
    text: _Text | None | UnsetType = UNSET
    span: _Span | None | UnsetType = UNSET
    code_block: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) and not isinstance(self.span, _Span):
            raise ValueError("a copy needs the copied text or its span")


class _Edit(_Event, tag="edit", kw_only=True):
    response_id: _Id
    edited_text: _Text


class _Regenerate(_Event, tag="regenerate", kw_only=True):
    response_id: _Id
    new_response_id: _Id | None | UnsetType = UNSET


class _AbChoice(_Event, tag="ab_choice", kw_only=True):
    response_a_id: _Id
    response_b_id: _Id
    choice: Literal["a", "b", "tie", "both_bad"]

    def __post_init__(self) -> None:
        if self.response_a_id == self.response_b_id:
            raise ValueError("response_a_id and response_b_id must differ")


class _Rating(_Event, tag="rating", kw_only=True):
    response_id: _Id
    value: Literal["up", "down"]
    reason: Annotated[str, Meta(max_length=4096)] | None | UnsetType = UNSET


_DECODER = msgspec.json.Decoder(_Generation | _Copy | _Edit | _Regenerate | _AbChoice | _Rating)
_ENCODER = msgspec.json.Encoder()


def keys_surely_unique(value: bytes, canonical: bytes) -> bool:
    """True only if no object in the JSON ``value`` repeats a key; ``canonical`` is ``value``
    decoded (a repeated key keeps one copy) and encoded again by msgspec, fields left out
    staying out. False means "not sure": ``ingest.contract.duplicate_key`` decides.

    Every string, keys included, is written again with its two quotes, and a quote inside one
    as ``\\"`` in both: the quotes are as many exactly when no key was dropped. Only a quote
    spelled ``\\u0022`` (written plainly again, one quote more) could make up for a dropped
    key, so such a value is left to the contract. Two counts in C: a regular expression over
    the keys took three times as long.
    """
    if b"\\u0022" in value:
        return False
    return value.count(b'"') == canonical.count(b'"')


class Checked(NamedTuple):
    """What the worker needs of an accepted event."""

    event_id: str
    """The canonical (lower-case) event id, as ``str(event.event_id)`` of the contract."""
    training_consent: bool
    """``consent.training``; false when the event carries no consent."""


def check(value: bytes) -> Checked | None:
    """The event's id and consent if the contract surely accepts ``value``; else None."""
    try:
        event = _DECODER.decode(value)
    except Exception:  # whatever the reason, the contract decides and explains
        return None
    if not keys_surely_unique(value, _ENCODER.encode(event)):
        return None
    consent = event.consent
    return Checked(event.event_id.lower(), isinstance(consent, _Consent) and consent.training)
