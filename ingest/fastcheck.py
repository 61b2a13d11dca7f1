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
contract must be made here too (the property test fails until it is). The text limit is a
setting: the types here hold the default (``MAX_TEXT_CHARS``), and with a lower limit a message
longer than the limit is left to the contract (a text of n characters takes at least n bytes).
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ingest.contract import (
    MAX_INTEGER,
    MAX_METADATA_BYTES,
    MAX_METADATA_KEYS,
    MAX_METADATA_STRING,
    MAX_PARTS,
    MAX_TEXT_CHARS,
    MAX_TOOL_CALLS,
    MAX_URL_CHARS,
)

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
_Text = Annotated[str, Meta(max_length=MAX_TEXT_CHARS)]


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


class _TextPart(_Object, tag_field="type", tag="text"):
    text: _Text


class _ImageUrl(_Object):
    # Only the ASCII spellings of the schemes: the contract decides any other.
    url: Annotated[
        str, Meta(min_length=1, max_length=MAX_URL_CHARS, pattern=r"\A[Hh][Tt][Tt][Pp][Ss]?://")
    ]
    detail: Literal["auto", "low", "high"] | None | UnsetType = UNSET


class _ImagePart(_Object, tag_field="type", tag="image_url"):
    image_url: _ImageUrl


class _Function(_Object):
    name: Annotated[str, Meta(pattern=r"\A[A-Za-z0-9_.-]{1,64}\Z")]
    arguments: _Text


class _ToolCall(_Object):
    id: _Id
    type: Literal["function"]
    function: _Function


_Parts = Annotated[list[_TextPart | _ImagePart], Meta(min_length=1, max_length=MAX_PARTS)]


class _Message(_Object):
    role: Literal["system", "user", "assistant", "tool"]
    content: _Text | _Parts | None | UnsetType = UNSET
    response_id: _Id | None | UnsetType = UNSET
    tool_calls: (
        Annotated[list[_ToolCall], Meta(min_length=1, max_length=MAX_TOOL_CALLS)] | None | UnsetType
    ) = UNSET
    tool_call_id: _Id | None | UnsetType = UNSET

    def __post_init__(self) -> None:
        calls = isinstance(self.tool_calls, list)
        if calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if isinstance(self.tool_call_id, str) and self.role != "tool":
            raise ValueError("only tool messages carry a tool_call_id")
        if not calls and not isinstance(self.content, str | list):
            raise ValueError("content is required")
        if isinstance(self.content, list) and self.role != "user":
            if any(isinstance(part, _ImagePart) for part in self.content):
                raise ValueError("only user messages carry image parts")

    @property
    def extended(self) -> bool:
        """Whether the message uses content parts or tool calls."""
        return (
            not isinstance(self.content, str)
            or self.tool_calls not in (UNSET, None)
            or self.tool_call_id not in (UNSET, None)
        )


# A float bounded by the largest finite double: refuses what a decoder might read as infinite.
_Scalar = (
    Annotated[str, Meta(max_length=MAX_METADATA_STRING)]
    | Annotated[int, Meta(ge=-(2**63), le=MAX_INTEGER)]
    | Annotated[float, Meta(ge=-1.7976931348623157e308, le=1.7976931348623157e308)]
    | bool
    | None
)
_Metadata = Annotated[
    dict[Annotated[str, Meta(pattern=r"\A[A-Za-z_][A-Za-z0-9_]{0,63}\Z")], _Scalar],
    Meta(max_length=MAX_METADATA_KEYS),
]


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
    metadata: _Metadata | None | UnsetType = UNSET
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
    extended: bool = False
    """The event uses metadata, content parts or tool calls (``contract.uses_extensions``)."""


def check(value: bytes, *, max_text_chars: int = MAX_TEXT_CHARS) -> Checked | None:
    """The event's id and consent if the contract surely accepts ``value`` (with texts of at
    most ``max_text_chars`` characters); else None."""
    if max_text_chars < MAX_TEXT_CHARS and len(value) > max_text_chars:
        return None  # a text may be past the configured limit: the contract counts
    try:
        event = _DECODER.decode(value)
    except Exception:  # whatever the reason, the contract decides and explains
        return None
    if not keys_surely_unique(value, _ENCODER.encode(event)):
        return None
    metadata = event.metadata
    extended = isinstance(metadata, dict)
    # The contract measures metadata as sorted, compact JSON; msgspec writes it at least half
    # as long, so anything over half the limit is left to the contract to measure.
    if extended and len(_ENCODER.encode(metadata)) > MAX_METADATA_BYTES // 2:
        return None
    if isinstance(event, _Generation) and not extended:
        extended = any(message.extended for message in event.prompt)
    consent = event.consent
    return Checked(
        event.event_id.lower(), isinstance(consent, _Consent) and consent.training, extended
    )
