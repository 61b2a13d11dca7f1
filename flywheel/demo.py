"""``flywheel demo``: the main job end to end on the embedded default (no Kafka).

It starts the real ingest API (uvicorn, real HTTP on a free loopback port) with an in-process
sink, posts simulated chat traffic to it as a frontend would, and prints what arrived.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from api.sink import EventSink
from flywheel.errors import FlywheelError
from flywheel.settings import Settings, load_settings


@contextmanager
def running_api(settings: Settings, sink: EventSink) -> Iterator[str]:
    """Serve the API on a free loopback port in a background thread; yields its base URL."""
    import uvicorn

    from api.main import create_app
    from flywheel.localkafka import free_port

    port = free_port()
    config = uvicorn.Config(
        create_app(settings, sink), host="127.0.0.1", port=port, log_config=None,
        access_log=False, lifespan="on",
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


def run_demo(*, events: int, seed: int, console: Console) -> None:
    """Simulate ``events`` events, post them through the embedded API and summarise."""
    import json

    from api.sink import MemorySink
    from flywheel import simulator

    key = secrets.token_urlsafe(24)
    settings = load_settings(api={"write_keys": [key]}, kafka={"bootstrap_servers": None})
    sink = MemorySink()
    simulation = simulator.simulate(simulator.SimulationConfig(events=events, seed=seed))
    with running_api(settings, sink) as base_url, Progress(console=console, transient=True) as bar:
        task = bar.add_task("posting simulated traffic", total=events)
        result = simulator.post_events(
            simulation, url=f"{base_url}/v1/events", key=key,
            on_batch=lambda n: bar.advance(task, n),
        )  # fmt: skip
    types = Counter(json.loads(event.value)["type"] for event in sink.events)
    table = Table(title="Events accepted by the embedded API", show_edge=False)
    table.add_column("type")
    table.add_column("events", justify="right")
    for name, count in sorted(types.items()):
        table.add_row(name, f"{count:,}")
    console.print(table)
    console.print(
        f"{result.accepted:,} events in {result.batches} requests over real HTTP in "
        f"{result.seconds:.1f}s ({result.accepted / max(result.seconds, 1e-9):,.0f} events/s); "
        f"{len(sink.events):,} reached the in-process sink."
    )
