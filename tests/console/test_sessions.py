"""Console sessions: signed, expiring, bound to a configured key, never holding the key."""

from __future__ import annotations

import base64
import json

from console.sessions import SessionSigner

KEY = "console-admin-key-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_names_its_role_and_a_fingerprint_never_the_key() -> None:
    signer = SessionSigner.from_keys({KEY: "admin"})
    value = signer.issue(KEY)
    assert value is not None and KEY not in value
    body = value.split(".")[0]
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert payload["role"] == "admin" and KEY not in json.dumps(payload)
    session = signer.check(value)
    assert session is not None and session.role == "admin"


def test_an_unknown_key_gets_no_session() -> None:
    signer = SessionSigner.from_keys({KEY: "admin"})
    assert signer.issue("another-key-0123456789") is None
    assert signer.issue("") is None


def test_a_session_expires() -> None:
    clock = Clock()
    signer = SessionSigner.from_keys({KEY: "admin"}, ttl_s=60, clock=clock)
    value = signer.issue(KEY)
    clock.now += 59
    assert signer.check(value) is not None
    clock.now += 1
    assert signer.check(value) is None


def test_a_changed_payload_or_signature_is_refused() -> None:
    signer = SessionSigner.from_keys({KEY: "admin"})
    value = signer.issue(KEY)
    assert value is not None
    body, signature = value.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["exp"] += 10**6
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    assert signer.check(f"{forged}.{signature}") is None
    assert signer.check(f"{body}.{signature[:-2]}AA") is None
    for junk in ("", "x", "a.b.c", "." * 3, "é.é"):
        assert signer.check(junk) is None


def test_sessions_hold_across_processes_and_end_when_the_keys_change() -> None:
    value = SessionSigner.from_keys({KEY: "admin", "second-admin-key-0123456": "admin"}).issue(KEY)
    # Another process with the same keys (in another order) accepts it...
    again = SessionSigner.from_keys({"second-admin-key-0123456": "admin", KEY: "admin"})
    assert again.check(value) is not None
    # ...a deployment whose keys changed does not, even if the key that logged in stayed.
    assert SessionSigner.from_keys({KEY: "admin"}).check(value) is None


def test_a_role_the_route_does_not_take_is_refused() -> None:
    signer = SessionSigner.from_keys({KEY: "reviewer"})
    value = signer.issue(KEY)
    assert signer.check(value) is None  # pages take admins by default
    session = signer.check(value, roles=("admin", "reviewer"))
    assert session is not None and session.role == "reviewer"


def test_a_forms_token_belongs_to_one_session() -> None:
    signer = SessionSigner.from_keys({KEY: "admin", "console-reviewer-key-0123456789": "reviewer"})
    first, second = signer.issue(KEY), signer.issue(KEY)
    assert first is not None and second is not None
    token = signer.csrf_token(first)
    assert signer.check_csrf(first, token)
    assert not signer.check_csrf(second, token)
    assert not signer.check_csrf(first, "")
    assert KEY not in token
