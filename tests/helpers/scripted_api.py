"""An events API that answers from a script, for the clients' retry and batching tests: a tiny
ASGI app under uvicorn in a thread, on a loopback port, over real HTTP.

Each request to ``POST /v1/events`` is recorded (arrival time, query, headers, the body as sent
and its events, gunzipped if it came compressed) and answered by the next entry of the script,
then by ``default``. An entry is an ``Answer`` or a function of the request that returns one;
``Answer(cut=True)`` starts an answer and breaks the connection before it is complete, as a
network failure after the request arrived would.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flywheel.net import free_port
from flywheel_client import App


@dataclass
class Received:
    """One request as the server saw it."""

    at: float
    """``time.monotonic()`` when its body had arrived."""
    query: str
    headers: dict[str, str]
    """Lower-case names."""
    raw: bytes
    """The body as sent (compressed, if it was)."""
    events: list[dict[str, Any]]

    @property
    def event_ids(self) -> list[str]:
        return [event.get("event_id", "") for event in self.events]


@dataclass
class Answer:
    """How to answer one request."""

    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    """JSON to answer with; for 202, ``None`` means ``{"accepted": n, "event_ids": [...]}``."""
    cut: bool = False
    """Break the connection instead of answering in full."""
    delay: float = 0.0
    """Seconds to wait before answering."""


Script = Answer | Callable[[Received], Answer]


def rejecting(*indexes: int, path: str = "type", type_: str = "event_type_not_allowed") -> Script:
    """A 207 that rejects the events at ``indexes`` (one error each) and accepts the others."""

    def answer(received: Received) -> Answer:
        results: list[dict[str, Any]] = []
        for index, event in enumerate(received.events):
            if index in indexes:
                error = {"path": path, "type": type_, "message": "not allowed for this key"}
                results.append({"index": index, "status": "rejected", "errors": [error]})
            else:
                results.append(
                    {"index": index, "status": "accepted", "event_id": event["event_id"]}
                )
        accepted = [r["event_id"] for r in results if r["status"] == "accepted"]
        status = 207 if len(accepted) < len(results) else 202
        body = {"accepted": len(accepted), "rejected": len(results) - len(accepted),
                "event_ids": accepted, "results": results}  # fmt: skip
        return Answer(status, body=body)

    return answer


class ScriptedApi:
    """The server; ``url`` is its base URL, ``requests`` what it received, in order."""

    def __init__(self) -> None:
        self.script: list[Script] = []
        self.default: Script = Answer()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self.url = ""

    def answer_with(self, *entries: Script, default: Script | None = None) -> None:
        """Answer the next requests with ``entries``, then with ``default`` (if given)."""
        with self._lock:
            self.script.extend(entries)
            if default is not None:
                self.default = default

    def events(self) -> list[dict[str, Any]]:
        """Every event received, in order, resends included."""
        return [event for request in list(self.requests) for event in request.events]

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first ``count`` requests, once they arrived (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"{len(self.requests)} of {count} requests came"
            time.sleep(0.01)
        return self.requests[:count]

    def _next(self) -> Script:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The ASGI app."""
        assert scope["type"] == "http"
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["path"] != "/v1/events" or scope["method"] != "POST":
            await _respond(send, 404, {}, {"error": "not_found"})
            return
        body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        data = json.loads(body)
        events = data["events"] if "events" in data else [data]
        received = Received(time.monotonic(), scope["query_string"].decode(), headers, raw,
                            events)  # fmt: skip
        self.requests.append(received)
        entry = self._next()
        answer = entry(received) if callable(entry) else entry
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.cut:
            # A declared length the body never reaches: uvicorn drops the connection.
            await send({"type": "http.response.start", "status": 202,
                        "headers": [(b"content-length", b"1000")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b"{", "more_body": False})
            return
        body_json = answer.body
        if body_json is None and answer.status == 202:
            body_json = {"accepted": len(events), "event_ids": received.event_ids}
        await _respond(send, answer.status, answer.headers, body_json)


async def _respond(send: Any, status: int, headers: dict[str, str], body: Any) -> None:
    content = json.dumps(body).encode() if body is not None else b""
    raw_headers = [(b"content-type", b"application/json")]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})


@contextmanager
def scripted_api() -> Iterator[ScriptedApi]:
    """A ``ScriptedApi`` serving on a free loopback port until the block ends."""
    import uvicorn

    api = ScriptedApi()
    port = free_port()
    config = uvicorn.Config(
        api, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off",
        log_level="critical",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="scripted-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the scripted API did not start"
        time.sleep(0.01)
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        server.should_exit = True
        thread.join(timeout=10)


KEY = "test-client-key-0123456789"
"""The key the clients' tests post with."""
APP: App = {"name": "chat-api", "version": "1.4.0"}
FAST_RETRIES = {"retry_base": 0.01, "retry_cap": 0.05}
"""Client options that make backoff near instant, for tests not about its timing."""
