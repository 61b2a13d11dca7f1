"""A warehouse built from simulated traffic (scrubbed, pseudonymised, transformed), built once per
session and copied into each test that publishes from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.settings import Settings
from ingest.pipeline import DedupeWindow, RawMessage, build_pipeline
from privacy.keys import Keyring, write_keyring
from transforms.runner import run_transforms
from warehouse.lake import Lake

KEYRING = Keyring(1, {1: b"k" * 32})


def land(data_dir: Path, events: list[dict[str, Any]], *, partition: int = 0, first: int = 0,
         chunk: int = 2000, keyring: Keyring = KEYRING) -> None:  # fmt: skip
    """Land events in the lake through the configured (scrubbing) pipeline."""
    pipeline = build_pipeline(Settings(data_dir=data_dir), keyring)
    lake, window = Lake.in_data_dir(data_dir), DedupeWindow(100_000)
    for start in range(0, len(events), chunk):
        part = events[start : start + chunk]
        offset = first + start
        messages = [RawMessage("sim", partition, offset + i, b"", json.dumps(e).encode())
                    for i, e in enumerate(part)]  # fmt: skip
        batch = pipeline.process(messages, window)
        for event_id in batch.event_ids:
            window.add(event_id)
        lake.land(pipeline.frame(batch), topic="sim", partition=partition, first_offset=offset,
                  last_offset=offset + len(part) - 1)  # fmt: skip


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """(data dir with lake and warehouse, the simulator's truth records) for 12,000 events."""
    data_dir = tmp_path_factory.mktemp("simulated") / "data"
    simulation = simulate(SimulationConfig(events=12_000, seed=11, ab_rate=0.2))
    land(data_dir, list(simulation))
    run_transforms(data_dir)
    write_keyring(KEYRING, data_dir.parent / "keys.json")
    return data_dir, simulation.truth


@pytest.fixture
def data_dir(simulated: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> Path:
    """A private copy of the simulated data dir (and its key file beside it)."""
    source, _ = simulated
    copy = tmp_path / "data"
    shutil.copytree(source, copy)
    shutil.copy(source.parent / "keys.json", tmp_path / "keys.json")
    return copy


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, privacy={"hmac_key_file": data_dir.parent / "keys.json"})


def rewrite_texts(data_dir: Path, where: str, text: str) -> list[str]:
    """Set the text (a generation's response) of the events the warehouse query ``where``
    selects (``SELECT event_id ...``) in the lake files they were loaded from, as a client might
    have sent it; returns the event ids. Texts are read from the lake, never the warehouse."""
    import duckdb
    import polars as pl

    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as connection:
        event_ids = [row[0] for row in connection.execute(where).fetchall()]
    lake = Lake.in_data_dir(data_dir)
    for landed in lake.files():
        frame = pl.read_parquet(landed.path)
        hit = pl.col("event_id").is_in(event_ids)
        if frame.filter(hit).height:
            frame.with_columns(
                response=pl.when(hit).then(pl.lit(text)).otherwise(pl.col("response"))
            ).write_parquet(landed.path, compression="zstd")
    return event_ids
