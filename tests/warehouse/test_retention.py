"""Lake retention: old files go, the newest file of each partition stays as the resume point."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from flywheel.storage import parse_lake_url
from tests.helpers.s3 import S3Bucket
from warehouse.lake import Lake, LakeFile, lake_schema
from warehouse.retention import expire_lake_files
from warehouse.table import LakeTable, default_catalog_uri


def land(lake: Lake, day: str, partition: int, first: int) -> Path:
    temporary, final = lake.write_temporary(
        pl.DataFrame([{"event_id": f"e{partition}-{first}"}], schema=lake_schema()), topic="events",
        partition=partition, first_offset=first, last_offset=first,
        now=datetime.fromisoformat(day).replace(tzinfo=UTC),
    )  # fmt: skip
    lake.place(temporary, final)
    lake.sync_landed(final)
    return final


def expire(lake: Lake, data_dir: Path, landed: LakeFile) -> None:
    """Remove a file as ``expire_lake_files`` does: out of the lake's table, then the disk."""
    LakeTable(lake, default_catalog_uri(data_dir)).replace(removed=[landed])
    landed.path.unlink()


def test_expires_old_files_but_keeps_each_partitions_newest(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    old_0 = land(lake, "2026-01-01", 0, 0)
    newer_0 = land(lake, "2026-01-02", 0, 1)
    recent_0 = land(lake, "2026-03-01", 0, 2)
    only_1 = land(lake, "2026-01-01", 1, 0)  # old, but the newest of partition 1

    table = LakeTable(lake, default_catalog_uri(tmp_path))
    assert len(table.commit().files) == 4

    expired = expire_lake_files(table, keep_days=30, today=date(2026, 3, 10))

    assert expired.files == 2 and expired.kept_as_resume_point == 1
    # Out of the table too, in one snapshot that keeps the committed offsets.
    assert [(f.partition, f.first_offset) for f in table.data_files()] == [(0, 2), (1, 0)]
    assert table.committed_offsets() == {"events": {0: 3, 1: 1}}
    assert not old_0.exists() and not newer_0.exists()
    assert recent_0.exists() and only_1.exists()
    assert lake.landed_offsets("events") == {0: 2, 1: 0}  # resume points unchanged
    assert not (lake.root / "landed_date=2026-01-02").exists()  # empty folders go too


def test_nothing_is_due_inside_the_period(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    land(lake, "2026-03-01", 0, 0)
    land(lake, "2026-03-02", 0, 1)
    table = LakeTable(lake, default_catalog_uri(tmp_path))
    assert expire_lake_files(table, keep_days=30, today=date(2026, 3, 10)).files == 0


def test_the_warehouse_forgets_expired_files_and_then_equals_a_full_refresh(
    tmp_path: Path,
) -> None:
    from tests.factories import make_event
    from tests.helpers.lake import land as land_events
    from tests.helpers.lake import query
    from transforms.runner import run_transforms
    from warehouse.db import connected
    from warehouse.retention import forget_missing_files

    lake = Lake.in_data_dir(tmp_path)
    old = [make_event("generation", response_id="r-old", parent_id="m1"),
           make_event("copy", response_id="r-old", text="x")]  # fmt: skip
    land_events(lake, old)
    land_events(lake, [make_event("generation", response_id="r-new", parent_id="m2")], first=2)
    run_transforms(tmp_path)
    expire(lake, tmp_path, next(f for f in lake.files() if f.first_offset == 0))

    with connected(tmp_path, action="test") as db:
        assert forget_missing_files(db, lake) == (1, 2)
        assert forget_missing_files(db, lake) == (0, 0)  # nothing left to do
    run_transforms(tmp_path)
    tables = ["events", "responses", "labels", "preference_pairs", "rewards"]
    after = {t: query(tmp_path, f"SELECT * FROM {t} ORDER BY ALL") for t in tables}
    assert [r[0] for r in query(tmp_path, "SELECT response_id FROM responses")] == ["r-new"]
    assert query(tmp_path, "SELECT count(*) FROM lake_files") == [(1,)]
    run_transforms(tmp_path, full_refresh=True)
    assert {t: query(tmp_path, f"SELECT * FROM {t} ORDER BY ALL") for t in tables} == after


def test_an_event_landed_again_in_a_file_still_there_is_kept_as_a_full_refresh_would(
    tmp_path: Path,
) -> None:
    from tests.factories import make_event
    from tests.helpers.lake import land as land_events
    from tests.helpers.lake import query
    from transforms.runner import run_transforms
    from warehouse.db import connected
    from warehouse.retention import forget_missing_files

    lake = Lake.in_data_dir(tmp_path)
    generation = make_event("generation", response_id="r1", parent_id="m1")
    land_events(lake, [generation])
    # The same event resent after the workers' dedupe window, in a later file.
    land_events(lake, [generation, make_event("generation", response_id="r2")], first=1)
    run_transforms(tmp_path)
    expire(lake, tmp_path, next(f for f in lake.files() if f.first_offset == 0))

    with connected(tmp_path, action="test") as db:
        assert forget_missing_files(db, lake) == (1, 1)
    run_transforms(tmp_path)
    after = {t: query(tmp_path, f"SELECT * FROM {t} ORDER BY ALL") for t in ("events", "responses")}
    assert sorted(r[0] for r in query(tmp_path, "SELECT response_id FROM responses")) == [
        "r1",
        "r2",
    ]
    run_transforms(tmp_path, full_refresh=True)
    assert {t: query(tmp_path, f"SELECT * FROM {t} ORDER BY ALL") for t in after} == after


def test_a_lake_holding_none_of_the_loaded_files_is_refused_and_nothing_is_deleted(
    tmp_path: Path,
) -> None:
    import pytest

    from flywheel.errors import WarehouseError
    from tests.factories import make_event
    from tests.helpers.lake import land as land_events
    from tests.helpers.lake import query
    from transforms.runner import run_transforms
    from warehouse.db import connected
    from warehouse.retention import forget_missing_files

    land_events(Lake.in_data_dir(tmp_path), [make_event("generation")])
    run_transforms(tmp_path)
    with connected(tmp_path, action="test") as db, pytest.raises(WarehouseError, match="data dir"):
        forget_missing_files(db, Lake(tmp_path / "elsewhere"))
    assert query(tmp_path, "SELECT count(*) FROM events") == [(1,)]


def test_on_s3_retention_deletes_the_objects_and_takes_them_out_of_the_table(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    lake = Lake.at(parse_lake_url(s3_bucket.url()), spool=tmp_path / "spool")
    for day, partition, first in (("2026-01-01", 0, 0), ("2026-01-02", 0, 1),
                                  ("2026-03-01", 0, 2), ("2026-01-01", 1, 0)):  # fmt: skip
        land(lake, day, partition, first)
    table = LakeTable(lake, default_catalog_uri(tmp_path))
    table.commit()

    expired = expire_lake_files(table, keep_days=30, today=date(2026, 3, 10))

    assert expired.files == 2 and expired.bytes > 0
    assert [(f.partition, f.first_offset) for f in table.data_files()] == [(0, 2), (1, 0)]
    landed = [key for key in s3_bucket.keys() if key.endswith(".parquet")]
    assert [key.split("/")[-2] for key in landed] == [
        "landed_date=2026-01-01",
        "landed_date=2026-03-01",
    ]
    assert table.table().scan().to_arrow().num_rows == 2
