"""The export tests' data and checks: the simulated data dir's key ring, landing events through
the configured (scrubbing) pipeline, rewriting texts in the lake, the datasets API's admin key,
and what every published version holds."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from flywheel.settings import Settings
from ingest.anonymiser import Anonymiser
from ingest.pipeline import DedupeWindow, RawMessage, build_pipeline
from privacy.keys import Keyring
from warehouse.lake import Lake

KEYRING = Keyring(1, {1: b"k" * 32})
"""The pseudonym keys of the simulated data dir (written beside it as ``keys.json``)."""


def land(data_dir: Path, events: list[dict[str, Any]], *, partition: int = 0, first: int = 0,
         chunk: int = 2000, keyring: Keyring = KEYRING,
         now: datetime | None = None, anonymiser: Anonymiser | None = None) -> None:  # fmt: skip
    """Land events in the lake through the configured (scrubbing) pipeline; ``now``: the
    landing time, whose day names the files' ``landed_date=`` folder; ``anonymiser``: another
    in its place (a scrubber that misses something, say)."""
    pipeline = build_pipeline(Settings(data_dir=data_dir), keyring)
    if anonymiser is not None:
        pipeline.anonymiser = anonymiser
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
                  last_offset=offset + len(part) - 1, now=now)  # fmt: skip


def rewrite_texts(data_dir: Path, where: str, text: str) -> list[str]:
    """Set the text (a generation's response) of the events the warehouse query ``where``
    selects (``SELECT event_id ...``) in the lake files they were loaded from, as a client might
    have sent it; returns the event ids. Texts are read from the lake, never the warehouse."""
    import duckdb

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


ADMIN_KEY = "admin-key-for-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
"""Headers of a datasets API request with the admin key."""


def check_published(version_dir: Path) -> dict:
    """Assert a published version passed the gate, its files hold the rows its manifest counts,
    and it has a card and a quality report; returns its manifest."""
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["quality"]["success"] is True
    for kind, counts in manifest["counts"].items():
        for split, split_counts in counts["splits"].items():
            files = sorted((version_dir / "data" / kind).glob(f"{split}-*.parquet"))
            assert sum(pl.read_parquet(f).height for f in files) == split_counts["rows"]
        assert counts["rows"] > 0
    card = (version_dir / "README.md").read_text()
    assert "config_name: dpo" in card and "## Calibration" in card
    assert (version_dir / "quality" / "index.html").is_file()
    return manifest
