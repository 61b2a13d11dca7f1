"""``flywheel demo``: the main job end to end on the embedded default (no Kafka).

It starts the real ingest API (uvicorn, real HTTP on a free loopback port) in embedded mode,
posts simulated chat traffic to it as a frontend would, and the API's in-process sink
validates, anonymises and lands every accepted event in the Parquet lake under the data dir;
then a transform run loads the new lake files into the DuckDB warehouse.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from api.server import running_api
from flywheel.settings import Settings


def demo_keyring_path(settings: Settings, console: Console) -> Path:
    """The configured pseudonym key file, or a local one the demo creates (and says so)."""
    from ingest.keys import create_keyring

    if settings.privacy.hmac_key_file is not None:
        return settings.privacy.hmac_key_file
    path = settings.data_dir / "keys" / "pseudonym-keys.json"
    if not path.exists():
        create_keyring(path)
        console.print(
            f"[yellow]created a local pseudonym key at {path}[/] (demo only: a deployment sets "
            "FLYWHEEL_PRIVACY__HMAC_KEY_FILE to a key kept outside the data dir)"
        )
    return path


def run_demo(*, settings: Settings, events: int, seed: int, console: Console) -> None:
    """Simulate ``events`` events, post them through the embedded API and summarise the lake."""
    import polars as pl

    from flywheel import simulator
    from ingest.embedded import embedded_sink
    from ingest.keys import load_keyring

    key = secrets.token_urlsafe(24)
    settings = settings.model_copy(
        update={
            "api": settings.api.model_copy(update={"write_keys": [SecretStr(key)]}),
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": None}),
        }
    )
    sink = embedded_sink(settings, load_keyring(demo_keyring_path(settings, console)))
    lake = sink.lake
    simulation = simulator.simulate(simulator.SimulationConfig(events=events, seed=seed))
    with running_api(settings, sink) as base_url, Progress(console=console, transient=True) as bar:
        task = bar.add_task("posting simulated traffic", total=events)
        result = simulator.post_events(
            simulation, url=f"{base_url}/v1/events", key=key,
            on_batch=lambda n: bar.advance(task, n),
        )  # fmt: skip

    files = sorted(f.path for f in lake.files())
    landed = pl.read_parquet(files) if files else pl.DataFrame()
    table = Table(title=f"The lake: {lake.root}", show_edge=False)
    table.add_column("type")
    table.add_column("events", justify="right")
    if len(landed):
        counts = landed.group_by("type").len().sort("type")
        for name, count in counts.iter_rows():
            table.add_row(name, f"{count:,}")
    console.print(table)
    console.print(
        f"{result.accepted:,} events accepted over real HTTP in {result.batches} requests "
        f"({result.accepted / max(result.seconds, 1e-9):,.0f} events/s); "
        f"{sink.landed:,} landed now, {sink.without_consent:,} dropped for lack of training "
        f"consent, {sink.duplicates:,} dropped as resends or already landed; the lake holds "
        f"{len(landed):,} events in {len(files)} files."
    )
    from transforms.runner import run_transforms
    from warehouse.db import warehouse_path

    run = run_transforms(settings.data_dir)
    built = ", ".join(f"{step.name} {step.rows:,}" for step in run.steps[1:])
    console.print(
        f"transform run: {run.files_loaded} new lake files, {run.events_loaded:,} new events "
        f"loaded into {warehouse_path(settings.data_dir)}; tables: {built}."
    )
