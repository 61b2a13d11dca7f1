"""Identifiers and labels the client chose (conversation, response and message ids, app, consent
policy and model fields) land as sent unless they hold what the scrubber finds in texts; then
they are replaced whole by a keyed stand-in, the same for the same value, so joins still hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from flywheel.settings import Settings
from ingest.pipeline import DedupeWindow, RawMessage, build_pipeline
from tests.factories import make_event
from tests.helpers.datasets import KEYRING

PERSONAL = [
    "jane.doe@example.com",
    "+1 415 555 0134",
    "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "10.20.30.40",
]


def landed(tmp_path: Path, events: list[dict[str, Any]]) -> pl.DataFrame:
    pipeline = build_pipeline(Settings(data_dir=tmp_path / "data"), KEYRING)
    messages = [RawMessage("t", 0, i, b"", json.dumps(e).encode()) for i, e in enumerate(events)]
    return pipeline.frame(pipeline.process(messages, DedupeWindow(10)))


def generation(**fields: Any) -> dict[str, Any]:
    return make_event("generation", **fields)


@pytest.mark.parametrize("value", PERSONAL)
def test_an_identifier_holding_personal_data_is_replaced_and_still_joins(
    tmp_path: Path, value: str
) -> None:
    events = [
        generation(conversation_id=value, response_id=value, parent_id=value,
                   model={"id": value, "version": value}, app={"name": value, "version": value},
                   consent={"training": True, "policy_version": value[:50]}),
        make_event("copy", conversation_id=value, response_id=value),
        generation(conversation_id="conv_1", response_id="resp_2", parent_id="msg_3",
                   prompt=[{"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "yo", "response_id": value},
                           {"role": "user", "content": "more"}]),
    ]  # fmt: skip
    frame = landed(tmp_path, events)

    stand_in = KEYRING.identifier(value)
    assert stand_in.startswith("redacted-") and value not in stand_in
    assert value not in json.dumps(frame.drop("scrubbed").to_dicts(), default=str)
    first, copy, other = frame.to_dicts()
    columns = ("conversation_id", "response_id", "parent_id", "model_id", "model_version",
               "app_name", "app_version")  # fmt: skip
    assert {first[c] for c in columns} == {stand_in}
    # The copy still names the response it copied; the later prompt the answer it continues.
    assert copy["conversation_id"] == copy["response_id"] == stand_in
    assert other["prompt"][1]["response_id"] == stand_in
    assert other["conversation_id"] == "conv_1" and other["response_id"] == "resp_2"
    assert {"kind": "identifier", "count": 1} in other["scrubbed"]


@pytest.mark.parametrize(
    "value",
    ["resp_53dbc5817190c026", "0b7c6c1e-5d0b-4b8e-9d7e-3f9d2b1a6c11", "c1", "chat-small",
     "2026-09", "1.4.1", "vscode-extension", "msg-20260105-0001", "org/model-7b"],
)  # fmt: skip
def test_ordinary_identifiers_land_as_sent(tmp_path: Path, value: str) -> None:
    frame = landed(tmp_path, [generation(conversation_id=value, response_id=value,
                                         model={"id": value, "version": value})])  # fmt: skip
    [row] = frame.to_dicts()
    assert row["conversation_id"] == row["response_id"] == row["model_id"] == value
    assert row["scrubbed"] == []


def test_the_stand_in_depends_on_the_key() -> None:
    from privacy.keys import Keyring

    other = Keyring(1, {1: b"o" * 32})
    assert KEYRING.identifier("jane@example.com") != other.identifier("jane@example.com")
    assert KEYRING.identifier("jane@example.com") == KEYRING.identifier("jane@example.com")
