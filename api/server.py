"""Serving the API from Python: in a background thread, for the demo and the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from api.sink import EventSink
from flywheel.errors import FlywheelError
from flywheel.settings import Settings

if TYPE_CHECKING:
    from api.erasures import ErasureRunner


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the API: connection timeouts and header limits from the settings.

    Also sets the header deadline of this process's connections (``api.protocols``), so a
    process that serves with other options (a ``--workers`` child) calls it as well.
    """
    from api import protocols

    protocols.configure(
        header_timeout_s=settings.api.header_timeout_s,
        max_header_bytes=settings.api.max_header_bytes,
    )
    return {
        "http": protocols.GuardedHttpToolsProtocol,
        "timeout_keep_alive": settings.api.keep_alive_timeout_s,
        "h11_max_incomplete_event_size": settings.api.max_header_bytes,
    }


@contextmanager
def running_api(
    settings: Settings, sink: EventSink, *, erasure: ErasureRunner | None = None
) -> Iterator[str]:
    """Serve the API on a free loopback port in a background thread; yields its base URL.
    ``erasure`` finishes erasure requests (see ``create_app``)."""
    import uvicorn

    from api.main import create_app
    from flywheel.net import free_port

    port = free_port()
    config = uvicorn.Config(
        create_app(settings, sink, erasure=erasure), host="127.0.0.1", port=port, log_config=None,
        access_log=False, lifespan="on", log_level="warning", **server_options(settings),
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="flywheel-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise FlywheelError(f"the API did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
