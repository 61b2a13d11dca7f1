"""`flywheel demo --kafka`: the same job through a local broker it starts and an ingest worker."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import flywheel
from tests.helpers.datasets import check_published


def test_demo_through_kafka(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = flywheel("demo", "--kafka", "--events", "4000", env={"FLYWHEEL_DATA_DIR": str(data)})

    assert result.returncode == 0, result.stderr
    assert "events accepted over real HTTP into Kafka" in result.stdout
    assert "ingest worker: landed" in result.stdout
    assert "dataset default v1 published" in result.stdout
    manifest = check_published(data / "datasets" / "default" / "v1")
    assert {p["topic"] for p in manifest["source"]["lake"]["partitions"]} == {"flywheel.events.v1"}
    # The demo stops the broker it started.
    status = flywheel("kafka", "local", "status", "--home", str(data / "kafka-local"))
    assert status.returncode == 1 and "not running" in status.stderr
