"""The lake's Iceberg table: the central commit of landed files, with the offsets in the
snapshot, overlapping files trimmed so every offset is committed once, commits that lose a race
retried, and the same table read by pyiceberg, DuckDB (through Arrow) and polars, on a local
disk and on S3 (moto)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flywheel.errors import ConfigError, MissingExtraError, TransientError
from flywheel.storage import parse_lake_url
from tests.helpers.lake import events, land
from tests.helpers.s3 import S3Bucket
from warehouse.lake import Lake, LakeFile
from warehouse.table import (
    OFFSETS_PROPERTY,
    LakeTable,
    default_catalog_uri,
    plan_commit,
)


def lake_file(partition: int, first: int, last: int, topic: str = "t") -> LakeFile:
    return LakeFile(topic, partition, first, last, Path(f"d/{topic}+{partition}+{first}+{last}"))


def test_plan_takes_the_contiguous_files_of_each_partition_and_stops_at_a_gap() -> None:
    files = [lake_file(0, 0, 9), lake_file(0, 10, 19), lake_file(0, 30, 39), lake_file(1, 5, 5)]
    whole, trims, offsets = plan_commit(files, {})
    assert whole == [lake_file(0, 0, 9), lake_file(0, 10, 19), lake_file(1, 5, 5)]
    assert trims == []
    assert offsets == {"t": {0: 20, 1: 6}}
    # Once the gap is filled, the next plan continues from the committed offsets.
    whole, _, offsets = plan_commit([*files, lake_file(0, 20, 29)], offsets)
    assert whole == [lake_file(0, 20, 29), lake_file(0, 30, 39)]
    assert offsets == {"t": {0: 40, 1: 6}}


def test_plan_commits_each_offset_once_when_a_late_upload_overlaps() -> None:
    # The old owner's 100..199 arrives after the new owner landed 100..150 and 151..250.
    committed = {"t": {0: 100}}
    files = [lake_file(0, 100, 150), lake_file(0, 151, 250), lake_file(0, 100, 199)]
    whole, trims, offsets = plan_commit(files, committed)
    assert whole == [lake_file(0, 100, 199)]
    assert trims == [(lake_file(0, 151, 250), 200)]
    assert offsets == {"t": {0: 251}}
    # Files wholly below the committed offset are left out.
    assert plan_commit([lake_file(0, 0, 99)], committed) == ([], [], committed)


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "local":
        return Lake.at(parse_lake_url(str(tmp_path / "lake")))
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    return Lake.at(parse_lake_url(bucket.url()))


def table_of(lake: Lake, tmp_path: Path) -> LakeTable:
    return LakeTable(lake, default_catalog_uri(tmp_path))


def rows(table: LakeTable) -> list[tuple[int, int]]:
    scanned = table.table().scan(selected_fields=("source_partition", "source_offset")).to_arrow()
    return sorted(zip(*(scanned.column(c).to_pylist() for c in scanned.column_names), strict=True))


def test_commit_adds_landed_files_once_and_records_the_offsets(lake: Lake, tmp_path: Path) -> None:
    table = table_of(lake, tmp_path)
    assert table.commit().files == [] and table.data_files() == []
    land(lake, events(3, seed=1), partition=0, first=0)
    land(lake, events(2, seed=2), partition=1, first=7)
    result = table.commit()
    assert [(f.partition, f.first_offset) for f in result.files] == [(0, 0), (1, 7)]
    assert table.committed_offsets() == {"t": {0: 3, 1: 9}}
    land(lake, events(2, seed=3), partition=0, first=3)
    again = table.commit()
    assert [(f.partition, f.first_offset) for f in again.files] == [(0, 3)]
    assert table.commit().files == []  # nothing new: no snapshot
    assert len(table.table().snapshots()) == 2
    assert rows(table) == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 7), (1, 8)]
    assert [f.first_offset for f in table.data_files()] == [0, 3, 7]
    summary = table.table().current_snapshot().summary.additional_properties  # type: ignore[union-attr]
    assert OFFSETS_PROPERTY in summary


def test_an_overlapping_late_file_is_committed_trimmed_and_no_offset_twice(
    lake: Lake, tmp_path: Path
) -> None:
    table = table_of(lake, tmp_path)
    land(lake, events(4, seed=1), partition=0, first=0)  # offsets 0..3
    table.commit()
    land(lake, events(3, seed=2), partition=0, first=4)  # 4..6, the new owner
    land(lake, events(6, seed=3), partition=0, first=2)  # 2..7, the old owner, late
    result = table.commit()
    assert result.trimmed == 1
    assert rows(table) == [(0, offset) for offset in range(8)]
    assert table.committed_offsets() == {"t": {0: 8}}


def test_the_table_reads_the_same_in_pyiceberg_duckdb_and_polars(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # polars plans the scan with pyiceberg (its own planner is a separate package).
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")
    table = table_of(lake, tmp_path)
    land(lake, events(5, seed=1), partition=0, first=0)
    land(lake, events(3, seed=2), partition=1, first=0)
    table.commit()
    connection = duckdb.connect()
    connection.register("lake_events", table.table().scan().to_arrow())  # zero-copy, no extension
    in_duckdb = connection.sql(
        "SELECT event_id, user_pseudonym FROM lake_events ORDER BY event_id"
    ).fetchall()
    in_polars = (
        pl.scan_iceberg(table.table()).select("event_id", "user_pseudonym").sort("event_id")
        .collect().rows()
    )  # fmt: skip
    from_files = sorted(
        (r["event_id"], r["user_pseudonym"])
        for landed in lake.files()
        for r in lake.read_table(landed).to_pylist()
    )
    assert len(in_duckdb) == 8
    assert in_duckdb == in_polars == from_files


def _commit_in_process(url: str, catalog: str, queue: multiprocessing.Queue[int]) -> None:
    table = LakeTable(Lake.at(parse_lake_url(url)), catalog)
    queue.put(len(table.commit().files))


def commit_at_once(url: str, catalog: str, writers: int) -> list[int]:
    """Files each of ``writers`` processes added, committing at the same moment."""
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[int] = context.Queue()
    processes = [
        context.Process(target=_commit_in_process, args=(url, catalog, queue))
        for _ in range(writers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    return [queue.get(timeout=5) for _ in processes]


def test_writers_that_commit_at_once_each_add_a_file_once(tmp_path: Path) -> None:
    url = str(tmp_path / "lake")
    lake = Lake.at(parse_lake_url(url))
    table = table_of(lake, tmp_path)
    table.commit()  # the table exists before the race
    for partition in range(6):
        land(lake, events(2, seed=partition), partition=partition, first=0)
    added = commit_at_once(url, default_catalog_uri(tmp_path), writers=3)
    assert sum(added) == 6  # each file by exactly one writer; the others found nothing new
    assert len(rows(table)) == 12


def test_a_catalog_another_process_created_in_the_same_moment_is_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers started together on a fresh data dir all create the catalog's tables: the one
    that loses finds them there ("already exists") and opens the catalog instead of failing."""
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy.exc import OperationalError

    create_tables = SqlCatalog.create_tables
    raced: list[bool] = []

    def created_by_another_first(catalog: SqlCatalog) -> None:
        create_tables(catalog)  # the other process's, just before ours
        if not raced:
            raced.append(True)
            raise OperationalError("CREATE TABLE iceberg_tables", {}, Exception(
                "table iceberg_tables already exists"))  # fmt: skip

    monkeypatch.setattr(SqlCatalog, "create_tables", created_by_another_first)
    table = LakeTable(
        Lake.at(parse_lake_url(str(tmp_path / "lake"))), default_catalog_uri(tmp_path)
    )
    assert table.table().metadata.location.endswith("/lake/events") and raced == [True]


def test_hosts_sharing_a_postgresql_catalog_and_an_s3_lake_commit_each_file_once(
    s3_bucket: S3Bucket, postgres_catalog: str
) -> None:
    """What several hosts run: the lake on S3, the catalog in a real PostgreSQL server."""
    url = s3_bucket.url("lake")
    lake = Lake.at(parse_lake_url(url))
    table = LakeTable(lake, postgres_catalog)
    for partition in range(4):
        land(lake, events(3, seed=partition), partition=partition, first=0)
    added = commit_at_once(url, postgres_catalog, writers=3)
    assert sum(added) == 4
    land(lake, events(2, seed=9), partition=0, first=3)
    assert len(table.commit().files) == 1
    assert len(rows(table)) == 14 and table.committed_offsets() == {"t": {0: 5, 1: 3, 2: 3, 3: 3}}
    # The table's metadata is on S3, beside the files; the catalog holds only its pointer.
    assert any(key.startswith("lake/events/metadata/") for key in s3_bucket.keys())


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        ("not a url :secret-password", ConfigError, "not a SQLAlchemy URL"),
        ("postgresql+pg8000://flywheel:secret-password@127.0.0.1:1/lake", MissingExtraError,
         "pip install 'feedback-flywheel[postgres]'"),
        ("postgresql+psycopg2://flywheel:secret-password@127.0.0.1:1/lake", TransientError,
         "the catalog is unreachable"),
    ],
)  # fmt: skip
def test_a_catalog_that_cannot_be_opened_is_one_line_without_its_password(
    tmp_path: Path, uri: str, error: type[Exception], message: str
) -> None:
    table = LakeTable(Lake.at(parse_lake_url(str(tmp_path / "lake"))), uri)
    with pytest.raises(error) as raised:
        table.table()
    assert message in str(raised.value) and "FLYWHEEL_LAKE__CATALOG" in str(raised.value)
    assert "secret-password" not in str(raised.value) and "\n" not in str(raised.value)


def test_a_data_dir_copied_elsewhere_is_refused_until_its_catalog_is_rebuilt(
    tmp_path: Path,
) -> None:
    import shutil

    lake = Lake.in_data_dir(tmp_path / "data")
    land(lake, events(3, seed=1), partition=0, first=0)
    LakeTable(lake, default_catalog_uri(tmp_path / "data")).commit()
    shutil.copytree(tmp_path / "data", tmp_path / "copy")
    copied = LakeTable(Lake.in_data_dir(tmp_path / "copy"), default_catalog_uri(tmp_path / "copy"))
    with pytest.raises(ConfigError, match="a data dir copied or moved"):
        copied.commit()
    (tmp_path / "copy" / "lake-catalog.db").unlink()  # as the message says
    copied = LakeTable(Lake.in_data_dir(tmp_path / "copy"), default_catalog_uri(tmp_path / "copy"))
    assert len(copied.commit().files) == 1 and len(rows(copied)) == 3
    assert str(tmp_path / "copy") in str(copied.data_files()[0].path)
