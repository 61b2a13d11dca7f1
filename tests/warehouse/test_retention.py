"""Lake retention: old files go, the newest file of each partition stays as the resume point."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from warehouse.lake import Lake
from warehouse.retention import expire_lake_files


def land(lake: Lake, day: str, partition: int, first: int) -> Path:
    temporary, final = lake.write_temporary(
        pl.DataFrame({"event_id": [f"e{partition}-{first}"]}), topic="events",
        partition=partition, first_offset=first, last_offset=first,
        now=datetime.fromisoformat(day).replace(tzinfo=UTC),
    )  # fmt: skip
    lake.publish(temporary, final)
    return final


def test_expires_old_files_but_keeps_each_partitions_newest(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    old_0 = land(lake, "2026-01-01", 0, 0)
    newer_0 = land(lake, "2026-01-02", 0, 1)
    recent_0 = land(lake, "2026-03-01", 0, 2)
    only_1 = land(lake, "2026-01-01", 1, 0)  # old, but the newest of partition 1

    expired = expire_lake_files(lake, keep_days=30, today=date(2026, 3, 10))

    assert expired.files == 2 and expired.kept_as_resume_point == 1
    assert not old_0.exists() and not newer_0.exists()
    assert recent_0.exists() and only_1.exists()
    assert lake.landed_offsets("events") == {0: 2, 1: 0}  # resume points unchanged
    assert not (lake.root / "landed_date=2026-01-02").exists()  # empty folders go too


def test_nothing_is_due_inside_the_period(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    land(lake, "2026-03-01", 0, 0)
    land(lake, "2026-03-02", 0, 1)
    assert expire_lake_files(lake, keep_days=30, today=date(2026, 3, 10)).files == 0
