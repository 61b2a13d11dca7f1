"""``flywheel demo``: the main job end to end on the embedded default (no Kafka).

It starts the real ingest API (uvicorn, real HTTP on a free loopback port) with an in-process
sink, posts simulated chat traffic to it as a frontend would, and prints what arrived.
"""

from __future__ import annotations

import secrets
from collections import Counter

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from api.server import running_api
from flywheel.settings import load_settings


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
