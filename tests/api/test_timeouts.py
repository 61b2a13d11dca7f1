"""A client that stalls mid-body is answered 408 and let go, over real HTTP."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

from api.routes import events
from api.server import running_api
from api.sink import MemorySink
from flywheel.settings import load_settings
from tests.factories import WRITE_KEY


def test_a_stalled_body_is_answered_408_within_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "BODY_READ_TIMEOUT_S", 0.5, raising=False)
    settings = load_settings(api={"write_keys": [WRITE_KEY]})
    with running_api(settings, MemorySink()) as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=10) as raw:
            raw.sendall(
                b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {WRITE_KEY}\r\n".encode()
                + b'Content-Length: 1000\r\n\r\n{"events": ['
            )
            started = time.monotonic()
            answer = raw.recv(65536)
            waited = time.monotonic() - started
            while raw.recv(65536):  # the server closes the connection: recv ends with b""
                pass
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited < 5
