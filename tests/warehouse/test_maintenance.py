"""Upkeep of the lake's table, on a local disk and on S3 (moto): compaction merges a partition's
small files of one day without changing a row or an offset, and leaves out users erased
meanwhile; expiry deletes what no snapshot references and nothing a commit still needs; the
transforms after a compaction build what they built before it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from pyarrow import fs

from flywheel.storage import parse_lake_url
from tests.factories import make_event
from tests.helpers.lake import PIPELINE, events, land, query
from tests.helpers.s3 import S3Bucket
from transforms.runner import run_transforms
from warehouse.lake import Lake
from warehouse.maintenance import compact, expire
from warehouse.table import LakeTable, default_catalog_uri


@pytest.fixture(params=["local", "s3"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> LakeTable:
    if request.param == "local":
        lake = Lake.at(parse_lake_url(str(tmp_path / "lake")))
    else:
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        lake = Lake.at(parse_lake_url(bucket.url()), spool=tmp_path / "spool")
    return LakeTable(lake, default_catalog_uri(tmp_path))


def rows(table: LakeTable) -> list[tuple[str, int, int]]:
    scanned = (
        table.table()
        .scan(selected_fields=("event_id", "source_partition", "source_offset"))
        .to_arrow()
    )
    return sorted(zip(*(scanned.column(c).to_pylist() for c in scanned.column_names), strict=True))


def objects(table: LakeTable) -> set[str]:
    lake = table.lake
    filesystem = lake.objects.filesystem() if lake.objects is not None else fs.LocalFileSystem()
    root = str(lake.root) if lake.objects is None else lake.objects.path_of("").rstrip("/")
    found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    return {info.path for info in found if info.type == fs.FileType.File}


def land_small_files(table: LakeTable) -> None:
    """Partition 0: four files of 3 events; partition 1: two files of 2."""
    for index in range(4):
        land(table.lake, events(3, seed=index), partition=0, first=index * 3)
    for index in range(2):
        land(table.lake, events(2, seed=10 + index), partition=1, first=index * 2)


def test_compaction_merges_each_partitions_files_and_changes_no_row(table: LakeTable) -> None:
    land_small_files(table)
    table.commit()
    before, offsets = rows(table), table.committed_offsets()

    result = compact(table)

    assert (result.merged, result.replaced) == (2, 6)
    assert [(f.partition, f.first_offset, f.last_offset) for f in table.data_files()] == [
        (0, 0, 11), (1, 0, 3),
    ]  # fmt: skip
    assert rows(table) == before and len(before) == 16
    assert table.committed_offsets() == offsets
    # Later landings continue the partition; the next commit takes them.
    land(table.lake, events(2, seed=20), partition=0, first=12)
    assert len(table.commit().files) == 1 and len(rows(table)) == 18
    # A second compaction merges the merged file with the new one.
    assert compact(table).replaced == 2


def test_compaction_stops_at_the_target_and_never_merges_across_a_gap(table: LakeTable) -> None:
    land_small_files(table)
    table.commit()
    result = compact(table, target_rows=6)  # two files of 3 rows at most
    assert (result.merged, result.replaced) == (3, 6)
    assert [(f.partition, f.first_offset, f.last_offset) for f in table.data_files()] == [
        (0, 0, 5), (0, 6, 11), (1, 0, 3),
    ]  # fmt: skip


def test_compaction_leaves_out_users_erased_since_they_landed(table: LakeTable) -> None:
    land_small_files(table)
    table.commit()
    erased = PIPELINE.anonymiser.keyring.pseudonym("user-1")  # type: ignore[attr-defined]

    @contextmanager
    def suppressed() -> Iterator[frozenset[str]]:
        yield frozenset({erased})

    result = compact(table, suppressed=suppressed)

    pseudonyms = table.table().scan(selected_fields=("user_pseudonym",)).to_arrow()
    assert erased not in pseudonyms.column(0).to_pylist()
    assert result.dropped_erased == 6  # user-1 is the second event of each of the six files


def test_expiry_deletes_what_no_snapshot_references_and_keeps_what_waits_for_a_commit(
    table: LakeTable,
) -> None:
    land_small_files(table)
    table.commit()
    compact(table)
    replaced = {str(f.path) for f in table.lake.files()} - {str(f.path) for f in table.data_files()}
    assert len(replaced) == 6
    # A file waiting for the next commit, and a duplicate a commit left out (covered already).
    land(table.lake, events(2, seed=30), partition=1, first=4)
    land(table.lake, events(2, seed=31), partition=0, first=0)  # offsets 0..1, committed already
    before = objects(table)

    result = expire(table, older_than=timedelta(0), grace=timedelta(0))

    after = objects(table)
    assert result.snapshots >= 1 and result.data_files == 7  # 6 replaced, 1 duplicate
    assert not replaced & after and result.metadata_files > 0 and len(after) < len(before)
    waiting = [f for f in table.lake.files() if (f.partition, f.first_offset) == (1, 4)]
    assert len(waiting) == 1  # not committed yet: kept
    assert len(rows(table)) == 16  # the table reads as before
    assert len(table.commit().files) == 1 and len(rows(table)) == 18
    assert len(table.table().snapshots()) >= 1


def test_the_transforms_after_a_compaction_build_what_they_built_before(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    table = LakeTable(lake, default_catalog_uri(tmp_path))
    for index in range(4):
        land(lake, [make_event("generation", response_id=f"r{index}", parent_id=f"m{index}",
                               user_id=f"u{index % 2}"),
                    make_event("rating", response_id=f"r{index}", user_id=f"u{index % 2}")],
             first=index * 2)  # fmt: skip
    run_transforms(tmp_path, lake=lake, table=table)
    tables = ["events", "responses", "labels", "rewards", "preference_pairs"]
    ignore = {"events": "* EXCLUDE (lake_file)"}
    built = {
        t: query(tmp_path, f"SELECT {ignore.get(t, '*')} FROM {t} ORDER BY ALL") for t in tables
    }
    assert built["labels"]

    assert compact(table).merged == 1
    run_transforms(tmp_path, lake=lake, table=table)

    again = {
        t: query(tmp_path, f"SELECT {ignore.get(t, '*')} FROM {t} ORDER BY ALL") for t in tables
    }
    assert again == built
    assert query(tmp_path, "SELECT count(*) FROM lake_files") == [(1,)]
