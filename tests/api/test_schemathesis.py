"""The API against its own OpenAPI document, with schemathesis (property-based, in-process).

Schemathesis loads ``/openapi.json`` from the ASGI app and, for every operation (the admin
routes too: it sends the write or the admin key, as each operation's ``security`` names), sends
the requests of its coverage phase (boundary and invalid values, missing auth, unexpected methods)
and of its fuzzing phase (Hypothesis-generated, valid and invalid), then runs all of its checks on
each answer: ``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
``response_schema_conformance``, ``response_headers_conformance``, ``positive_data_acceptance``,
``negative_data_rejection``, ``missing_required_header``, ``ignored_auth``, ``unsupported_method``
and the rest of its defaults. The run is deterministic: a fixed seed, derandomized Hypothesis and
no example database.

Two rules of the contract cannot be written in JSON Schema, which has no way to compare two
values: an ``ab_choice`` names two *different* responses, and a ``span`` ends after it starts.
Schema-valid events that break them are not held to ``positive_data_acceptance``; they must be
refused with a 422 naming the rule instead (``_expected_refusals``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance

from api.main import create_app
from api.sink import MemorySink
from flywheel.settings import load_settings
from flywheel.shell.erasure import finish_erasure
from privacy.keys import Keyring, write_keyring
from tests.factories import WRITE_KEY

# Each operation's generated cases take seconds (measured: 5 to 26 s for the slowest ones).
pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-key-for-schemathesis-0123"

REJECTION_STATUSES = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429"]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260105,
        "generation": {"max-examples": 100, "deterministic": True, "database": "none"},
        "auth": {"openapi": {"WriteKey": {"bearer": WRITE_KEY}, "AdminKey": {"bearer": ADMIN_KEY}}},
        "checks": {
            # Schemathesis' default list plus 413: a body or an event over its byte limit.
            "negative_data_rejection": {"expected-statuses": [*REJECTION_STATUSES, "413", "5xx"]},
        },
    }
)


# Erasures write their log and suppression list under the data dir: a folder of the module's own.
DATA = tempfile.TemporaryDirectory(prefix="schemathesis-")
write_keyring(Keyring(1, {1: b"k" * 32}), Path(DATA.name) / "keys.json")
SETTINGS = load_settings(
    data_dir=Path(DATA.name) / "data",
    api={"write_keys": [WRITE_KEY], "admin_keys": [ADMIN_KEY]},
    privacy={"hmac_key_file": Path(DATA.name) / "keys.json"},
)
app = create_app(SETTINGS, MemorySink(), erasure=finish_erasure)
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


@pytest.fixture(scope="module", autouse=True)
def _data_dir_removed() -> Iterator[None]:
    """Remove the data dir after the module (schemathesis runs the app's lifespan itself)."""
    with DATA:
        yield


AB_SAME_RESPONSE = "response_a_id and response_b_id must differ"
SPAN_NOT_ORDERED = "end must be greater than start"


def _events(body: object) -> list[Any]:
    """The events of a request body, told apart as ``api.routes.events.decode_items`` does."""
    if isinstance(body, dict) and "events" in body and "type" not in body:
        events = body["events"]
        return events if isinstance(events, list) else []
    return [body]


def _expected_refusals(case: schemathesis.Case) -> list[str]:
    """The rules JSON Schema cannot express that a schema-valid request breaks, as messages."""
    if case.operation.label != "POST /v1/events":
        return []
    refusals = []
    for event in _events(case.body):  # schema-valid: required fields are there
        if event["type"] == "ab_choice" and event["response_a_id"] == event["response_b_id"]:
            refusals.append(AB_SAME_RESPONSE)
        if (span := event.get("span")) is not None and span["end"] <= span["start"]:
            refusals.append(SPAN_NOT_ORDERED)
    return refusals


@schema.parametrize()
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    response = case.call()
    not_checked = []
    assert case.meta is not None
    mode = case.meta.generation.mode
    if mode.is_positive and (refusals := _expected_refusals(case)):
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "invalid_events"
        assert sorted(refusals) == sorted(
            e["message"].removeprefix("Value error, ") for e in body["errors"]
        ), response.text
        not_checked.append(positive_data_acceptance)
    case.validate_response(response, excluded_checks=not_checked)
