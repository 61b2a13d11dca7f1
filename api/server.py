"""Serving the API from Python: in a background thread, for the demo and the tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from api.sink import EventSink
from flywheel.errors import FlywheelError
from flywheel.settings import Settings


@contextmanager
def running_api(settings: Settings, sink: EventSink) -> Iterator[str]:
    """Serve the API on a free loopback port in a background thread; yields its base URL."""
    import uvicorn

    from api.main import create_app
    from flywheel.localkafka import free_port

    port = free_port()
    config = uvicorn.Config(
        create_app(settings, sink), host="127.0.0.1", port=port, log_config=None,
        access_log=False, lifespan="on", log_level="warning",
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
