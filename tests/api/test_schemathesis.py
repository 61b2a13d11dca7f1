"""The API against its own OpenAPI document, with schemathesis (property-based, in-process).

Schemathesis loads ``/openapi.json`` from the ASGI app and, for every operation (the beacon, the
admin and the review routes too: it sends the first key each operation's ``security`` names, a
write, publishable, reader, admin or reviewer key, from the publishable key's origin), and every
media type of a body (``POST /v1/beacon`` takes ``text/plain`` and ``application/json``), sends the
requests of its coverage phase (boundary and invalid values, missing auth, unexpected methods) and
of its fuzzing phase (Hypothesis-generated, valid and invalid), then runs all of its checks on each
answer: ``not_a_server_error``, ``status_code_conformance``, ``content_type_conformance``,
``response_schema_conformance``, ``response_headers_conformance``, ``positive_data_acceptance``,
``negative_data_rejection``, ``missing_required_header``, ``ignored_auth``, ``unsupported_method``
and the rest of its defaults. The run is deterministic: a fixed seed, derandomized Hypothesis and
no example database.

Two rules of the contract cannot be written in JSON Schema, which has no way to compare two
values: an ``ab_choice`` names two *different* responses, and a ``span`` ends after it starts.
Schema-valid events that break them are not held to ``positive_data_acceptance``; they must be
refused with a 422 naming the rule instead (``_expected_refusals``), or with ``?partial=true`` a
207 naming it for each such event. Nor can the document say that a beacon's key goes either in
the query or in the body: a schema-valid ``{"key": ..., "events": [...]}`` sent with the query's
key must be refused with a 400 (``key_given_twice``).

Schemathesis sets ``?partial=true`` in nearly every case of the event routes, so each such case
is sent again with ``partial=false``: the same data meets the all-or-nothing answers too.
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
from ingest.contract import EVENT_TYPES
from privacy.keys import Keyring, write_keyring
from tests.factories import WRITE_KEY
from tests.helpers.keys import ORIGIN, PUBLISHABLE_KEY, READER_KEY

# Each operation's generated cases take seconds (measured: 5 to 26 s for the slowest ones).
pytestmark = pytest.mark.slow

ADMIN_KEY = "admin-key-for-schemathesis-0123"
REVIEWER_KEY = "reviewer-key-for-schemathesis-0123"

REJECTION_STATUSES = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429"]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20260105,
        "generation": {"max-examples": 100, "deterministic": True, "database": "none"},
        "auth": {
            "openapi": {
                "WriteKey": {"bearer": WRITE_KEY},
                "PublishableKey": {"bearer": PUBLISHABLE_KEY},
                "PublishableKeyQuery": {"api_key": PUBLISHABLE_KEY},
                "ReaderKey": {"bearer": READER_KEY},
                "AdminKey": {"bearer": ADMIN_KEY},
                "ReviewerKey": {"bearer": REVIEWER_KEY},
            }
        },
        # A publishable key is accepted only from its origins; other keys ignore the header.
        "headers": {"Origin": ORIGIN},
        "checks": {
            # Schemathesis' default list plus 413, a body or an event over its byte limit, and
            # 207: with ?partial=true, each event that breaks the contract is refused in a 207
            # (the test checks that one was).
            "negative_data_rejection": {
                "expected-statuses": [*REJECTION_STATUSES, "207", "413", "5xx"]
            },
        },
    }
)


# Erasures write their log and suppression list under the data dir: a folder of the module's own.
DATA = tempfile.TemporaryDirectory(prefix="schemathesis-")
write_keyring(Keyring(1, {1: b"k" * 32}), Path(DATA.name) / "keys.json")
SETTINGS = load_settings(
    data_dir=Path(DATA.name) / "data",
    api={
        "write_keys": [WRITE_KEY],
        "publishable_keys": [
            # Every type, and no limit the run could reach: the limit has tests of its own.
            {
                "key": PUBLISHABLE_KEY,
                "origins": [ORIGIN],
                "event_types": list(EVENT_TYPES),
                "rate_per_second": 1e9,
                "burst": 10**9,
            },
        ],
        "reader_keys": [READER_KEY],
        "admin_keys": [ADMIN_KEY],
        "reviewer_keys": [{"key": REVIEWER_KEY, "reviewer": "reviewer@example.com"}],
    },
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


EVENT_ROUTES = ("POST /v1/events", "POST /v1/beacon")


def _events(body: object) -> list[Any]:
    """The events of a request body, told apart as ``api.routes.events.decode_items`` does."""
    if isinstance(body, dict) and "events" in body and "type" not in body:
        events = body["events"]
        return events if isinstance(events, list) else []
    return [body]


def _expected_refusals(case: schemathesis.Case) -> dict[int, list[str]]:
    """The rules JSON Schema cannot express that a schema-valid request breaks, as messages by
    the index of the event that breaks them."""
    if case.operation.label not in EVENT_ROUTES:
        return {}
    refusals: dict[int, list[str]] = {}
    for index, event in enumerate(_events(case.body)):  # schema-valid: required fields are there
        if event["type"] == "ab_choice" and event["response_a_id"] == event["response_b_id"]:
            refusals.setdefault(index, []).append(AB_SAME_RESPONSE)
        if (span := event.get("span")) is not None and span["end"] <= span["start"]:
            refusals.setdefault(index, []).append(SPAN_NOT_ORDERED)
    return refusals


def _key_twice(case: schemathesis.Case) -> bool:
    """A beacon batch carrying a key, sent with the key in the query too."""
    body = case.body
    return (
        case.operation.label == "POST /v1/beacon"
        and isinstance(body, dict)
        and "key" in body
        and "type" not in body
    )


def _messages(errors: list[dict[str, Any]]) -> list[str]:
    return sorted(e["message"].removeprefix("Value error, ") for e in errors)


def _check(case: schemathesis.Case) -> None:
    """Send the case and run every check on the answer, holding the requests that break a rule
    JSON Schema cannot express to their refusal instead of to acceptance."""
    response = case.call()
    not_checked = []
    assert case.meta is not None
    mode = case.meta.generation.mode
    if mode.is_positive and _key_twice(case):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "key_given_twice"
        not_checked.append(positive_data_acceptance)
    elif mode.is_positive and (refusals := _expected_refusals(case)):
        body = response.json()
        if response.status_code == 207:  # ?partial=true: each such event is refused alone
            rejected = {
                r["index"]: r["errors"] for r in body["results"] if r["status"] == "rejected"
            }
            assert {i: _messages(errors) for i, errors in rejected.items()} == {
                i: sorted(messages) for i, messages in refusals.items()
            }, response.text
        else:
            assert response.status_code == 422, response.text
            assert body["error"] == "invalid_events"
            found = sorted(m for messages in refusals.values() for m in messages)
            assert found == _messages(body["errors"]), response.text
        not_checked.append(positive_data_acceptance)
    if not mode.is_positive and response.status_code == 207:
        assert response.json()["rejected"] >= 1, response.text
    case.validate_response(response, excluded_checks=not_checked)


@schema.parametrize()
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    _check(case)
    if case.operation.label in EVENT_ROUTES and case.query.get("partial") in (True, "true"):
        # Schemathesis sets ?partial=true in nearly every case it makes: the same data goes to
        # the all-or-nothing path too.
        _check(case.derive(query={**case.query, "partial": False}, keep_auth=True))
