"""An event without training consent changes no byte of any dataset: a dataset built from a lake
that kept such events (``WITHOUT_CONSENT=keep``) is the dataset built from one that dropped them.
The unconsented events are mixed into consented conversations (copies, ratings, A/B choices,
edits and continuations of consented answers), as a user who withdrew consent mid-session
would send them."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.settings import Settings
from ingest.pipeline import DedupeWindow, RawMessage, build_pipeline
from privacy.keys import write_keyring
from tests.helpers.datasets import KEYRING
from transforms.runner import run_transforms
from warehouse.lake import Lake


def without_consent_here_and_there(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A quarter of the signals (not the generations) lose their consent, and so do a few
    generations; decided by event id, so that a resent event says what it said the first time."""
    out = []
    for event in events:
        draw = random.Random(event["event_id"]).random()
        if draw < (0.25 if event["type"] != "generation" else 0.03):
            event = {**event, "consent": {"training": False, "policy_version": "2026-01"}}
        out.append(event)
    return out


def build(root: Path, events: list[dict[str, Any]], without_consent: str) -> Path:
    """Land ``events`` under the setting, run the transforms, export; the version's folder."""
    data_dir = root / "data"
    settings = Settings(data_dir=data_dir, privacy={"without_consent": without_consent})
    pipeline = build_pipeline(settings, KEYRING)
    messages = [RawMessage("sim", 0, i, b"", json.dumps(e).encode()) for i, e in enumerate(events)]
    batch = pipeline.process(messages, DedupeWindow(100_000))
    Lake.in_data_dir(data_dir).land(pipeline.frame(batch), topic="sim", partition=0,
                                    first_offset=0, last_offset=len(events) - 1)  # fmt: skip
    run_transforms(data_dir)
    write_keyring(KEYRING, root / "keys.json")
    result = export_dataset(data_dir, "default", KEYRING)
    return data_dir / "datasets" / "default" / result.version


def data_files(version: Path) -> dict[str, str]:
    return {
        path.relative_to(version).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((version / "data").rglob("*"))
        if path.is_file()
    }


@pytest.mark.slow
def test_a_dataset_is_the_same_whether_unconsented_events_were_kept_or_dropped(
    tmp_path: Path,
) -> None:
    events = without_consent_here_and_there(
        list(simulate(SimulationConfig(events=8_000, seed=3, ab_rate=0.2)))
    )
    kept = build(tmp_path / "keep", events, "keep")
    dropped = build(tmp_path / "drop", events, "drop")

    # The lake of the first holds them, and they would be evidence: signals on consented answers.
    lake = [str(f.path) for f in Lake.in_data_dir(tmp_path / "keep" / "data").files()]
    with duckdb.connect() as db:
        [(unconsented, signals)] = db.execute(
            "SELECT count(*), count(*) FILTER (type <> 'generation') FROM read_parquet($f) "
            "WHERE NOT consent_training",
            {"f": lake},
        ).fetchall()
    assert unconsented > 1000 and signals > 800
    assert data_files(kept) == data_files(dropped)
    assert len(data_files(kept)) >= 3
