"""Builders of valid test data, and another process holding a warehouse."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

WRITE_KEY = "test-write-key-0123456789"


def make_event(type_: str = "rating", **fields: Any) -> dict[str, Any]:
    """A valid event of the given type as JSON-ready dict; ``fields`` override or add fields."""
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "occurred_at": "2026-01-05T09:00:00Z",
        "user_id": "user-1",
        "conversation_id": "conv-1",
        "app": {"name": "web", "version": "3.2.0"},
        "consent": {"training": True},
        "schema_version": 1,
    }
    per_type: dict[str, dict[str, Any]] = {
        "generation": {
            "response_id": "resp-1",
            "parent_id": "msg-1",
            "prompt": [{"role": "user", "content": "How do I reverse a list in Python?"}],
            "response": "Use `reversed(xs)` or `xs[::-1]`.",
            "model": {"id": "chat-small", "version": "2026-09"},
        },
        "copy": {"response_id": "resp-1", "text": "xs[::-1]", "code_block": True},
        "edit": {"response_id": "resp-1", "edited_text": "Use `xs.reverse()` in place."},
        "regenerate": {"response_id": "resp-1", "new_response_id": "resp-2"},
        "ab_choice": {"response_a_id": "resp-1", "response_b_id": "resp-2", "choice": "a"},
        "rating": {"response_id": "resp-1", "value": "up"},
    }
    return {**base, **per_type[type_], **fields}


def generation(response: str, parent: str = "m1", text: str | None = None, **extra: Any) -> Any:
    """A generation with response id ``response`` and parent ``parent``; its text is ``text``,
    else ``answer <response>``."""
    return make_event("generation", response_id=response, parent_id=parent,
                      response=text or f"answer {response}", **extra)  # fmt: skip


@asynccontextmanager
async def api_client(
    app: FastAPI, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process HTTP client of ``app`` that sends the test write key."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {WRITE_KEY}"},
    ) as client:
        yield client


@contextmanager
def warehouse_held(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the DuckDB file ``path`` open for writing (as a transform run or
    an export would) until the block ends or the process is killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(600)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
