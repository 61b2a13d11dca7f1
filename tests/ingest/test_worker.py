"""The worker's landing steps without a broker: how failures of the write are classified.

Everything that needs Kafka (commits, rebalances, fencing) is in tests/integration/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from prometheus_client import generate_latest

from flywheel.settings import IngestSettings, KafkaSettings, Settings
from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.deadletters import MemoryDeadLetters
from ingest.metrics import IngestMetrics
from ingest.pipeline import Pipeline
from ingest.prepare import BatchPreparer, InlinePreparer
from ingest.worker import IngestWorker, _InFlight
from privacy.keys import Keyring
from tests.factories import make_event
from warehouse.lake import Lake

TOPIC = "flywheel.events.v1"
KEYRING = Keyring(current=1, keys={1: b"\x01" * 32})


def worker(tmp_path: Path) -> IngestWorker:
    settings = Settings(
        data_dir=tmp_path / "data",
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9", events_topic=TOPIC),
        ingest=IngestSettings(retry_max_s=0.01),
    )
    pipeline = Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=64 * 1024)
    lake = Lake.in_data_dir(settings.data_dir)
    made = IngestWorker(
        settings=settings, lake=lake, pipeline=pipeline, dead_letters=MemoryDeadLetters(),
        metrics=IngestMetrics(),
    )  # fmt: skip
    made._preparer = InlinePreparer(BatchPreparer(pipeline, lake, TOPIC, window_size=100))
    return made


def test_a_full_disk_is_retried_like_any_transient_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """polars says ComputeError for a full disk; the worker died of it (it retried OSError only)."""
    from polars.exceptions import ComputeError

    write = pl.DataFrame.write_parquet
    failures = iter([True, True, False])

    def full_then_free(self: pl.DataFrame, handle: Any, **options: Any) -> None:
        if next(failures):
            handle.write(b"PAR1")
            raise ComputeError("underlying IO error: No space left on device (os error 28)")
        write(self, handle, **options)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full_then_free)
    landing = worker(tmp_path)
    records = [(i, b"c", json.dumps(make_event("rating")).encode()) for i in range(3)]
    job = _InFlight(0, records, landing.preparer.submit(0, records))

    prepared = landing._await(job)

    assert (prepared.first_offset, prepared.last_offset) == (0, 2)
    assert [p.name for p in prepared.temporary.parent.iterdir()] == [prepared.temporary.name]
    exposed = generate_latest(landing.metrics.registry).decode()
    assert 'flywheel_ingest_retries_total{action="write"} 2.0' in exposed
