"""A client that stalls mid-body is answered 408 and let go, over real HTTP."""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

import pytest

from api.routes import events
from api.server import running_api
from api.sink import MemorySink
from flywheel.settings import load_settings
from tests.factories import WRITE_KEY


@pytest.mark.slow
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


def connect(url: str) -> socket.socket:
    address = urlsplit(url)
    return socket.create_connection((address.hostname, address.port), timeout=10)


def read_response(raw: socket.socket) -> bytes:
    """One whole response: its head, then as many body bytes as its Content-Length says.

    The head and the body may arrive in separate segments; a test that read once and then
    waited for the close would take the late body for an answer to nothing.
    """
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = raw.recv(65536)
        assert chunk, f"the server closed the connection mid-response: {received[:200]!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = raw.recv(65536)
        assert chunk, f"the server closed the connection mid-body: {received[:200]!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def read_until_closed(raw: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    received = b""
    while chunk := raw.recv(65536):
        received += chunk
    return received, time.monotonic() - started


@pytest.mark.parametrize(
    "sent",
    [b"POST /v1/ev", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1"],
    ids=["half-a-request-line", "headers-without-their-end"],
)
def test_a_stalled_request_head_is_closed_within_the_header_timeout(sent: bytes) -> None:
    settings = load_settings(api={"write_keys": [WRITE_KEY], "header_timeout_s": 0.5})
    with running_api(settings, MemorySink()) as url, connect(url) as raw:
        raw.sendall(sent)
        answer, waited = read_until_closed(raw)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 0.3 < waited < 3


def test_a_connection_that_sends_nothing_is_closed_within_the_header_timeout() -> None:
    settings = load_settings(api={"write_keys": [WRITE_KEY], "header_timeout_s": 0.5})
    with running_api(settings, MemorySink()) as url, connect(url) as raw:
        answer, waited = read_until_closed(raw)
    assert answer == b""
    assert 0.3 < waited < 3


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline() -> None:
    settings = load_settings(
        api={"write_keys": [WRITE_KEY], "header_timeout_s": 0.5, "keep_alive_timeout_s": 30}
    )
    with running_api(settings, MemorySink()) as url, connect(url) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_response(raw)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        time.sleep(0.8)  # idle past the header deadline: keep-alive governs idleness
        raw.sendall(b"GET /heal")
        answer, waited = read_until_closed(raw)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 0.3 < waited < 3


def test_a_slow_but_steady_head_is_served_and_a_complete_one_is_not_cut_off() -> None:
    settings = load_settings(api={"write_keys": [WRITE_KEY], "header_timeout_s": 1.0})
    with running_api(settings, MemorySink()) as url, connect(url) as raw:
        for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            raw.sendall(part)
            time.sleep(0.2)
        assert read_response(raw).startswith(b"HTTP/1.1 200")
        time.sleep(1.5)  # past the header deadline, within keep-alive: still open
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer, _ = read_until_closed(raw)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() -> None:
    settings = load_settings(api={"write_keys": [WRITE_KEY], "keep_alive_timeout_s": 0.5})
    with running_api(settings, MemorySink()) as url, connect(url) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(raw).startswith(b"HTTP/1.1 200")
        answer, waited = read_until_closed(raw)
    assert answer == b""
    assert waited < 3


def test_a_request_head_over_the_limit_is_refused() -> None:
    settings = load_settings(api={"write_keys": [WRITE_KEY], "max_header_bytes": 4096})
    with running_api(settings, MemorySink()) as url, connect(url) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Padding: " + b"a" * 5000)
        answer, _ = read_until_closed(raw)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
