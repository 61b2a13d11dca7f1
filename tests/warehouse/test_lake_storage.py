"""The same lake operations on a local folder and on S3 (moto), with the same results: the
files listed, the offsets landed, the rows and footers read back, the topic records, and the
bytes of every file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from flywheel.storage import LakeLocation, parse_lake_url
from ingest.pipeline import DedupeWindow, RawMessage
from tests.helpers.lake import PIPELINE, events
from tests.helpers.lake import land as land_events
from tests.helpers.s3 import S3Bucket
from warehouse.lake import Lake, LakeFile, lake_schema

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=lake_schema())


def frame(count: int, *, partition: int, first: int) -> pl.DataFrame:
    """A batch as the pipeline lands it (its ``landed_at`` fixed once, for every lake)."""
    messages = [
        RawMessage("t", partition, first + i, b"c", json.dumps(e).encode())
        for i, e in enumerate(events(count, seed=partition * 100 + first))
    ]
    return PIPELINE.frame(PIPELINE.process(messages, DedupeWindow(0)))


def land_same(lakes: list[Lake]) -> None:
    """Land the same batches (two topics, three partitions, a zero-row file) in every lake."""
    batches = [(p, first, frame(n, partition=p, first=first))
               for p, first, n in ((0, 0, 3), (0, 3, 2), (1, 0, 4), (2, 10, 1))]  # fmt: skip
    for lake in lakes:
        for partition, first, batch in batches:
            lake.land(batch, topic="t", partition=partition, first_offset=first,
                      last_offset=first + batch.height - 1, now=NOW)  # fmt: skip
        lake.land(empty_frame(), topic="other", partition=0, first_offset=7, last_offset=9, now=NOW)


def names(files: list[LakeFile]) -> list[tuple[str, str, int, int, int]]:
    return sorted((f.path.parent.name, f.topic, f.partition, f.first_offset, f.last_offset)
                  for f in files)  # fmt: skip


@pytest.fixture
def lakes(tmp_path: Path, s3_bucket: S3Bucket) -> tuple[Lake, Lake]:
    local = Lake.at(LakeLocation(str(tmp_path / "lake")))
    remote = Lake.at(parse_lake_url(s3_bucket.url("lake")))
    return local, remote


def test_a_local_lake_at_a_location_is_the_lake_of_today(tmp_path: Path) -> None:
    lake = Lake.at(LakeLocation(str(tmp_path / "data" / "lake")))
    assert lake.root == Lake.in_data_dir(tmp_path / "data").root and lake.objects is None


def test_the_same_operations_give_the_same_results_locally_and_on_s3(
    lakes: tuple[Lake, Lake], s3_bucket: S3Bucket
) -> None:
    local, remote = lakes
    assert list(remote.files()) == [] and remote.landed_offsets("t") == {}
    land_same([local, remote])

    assert names(list(local.files())) == names(list(remote.files()))
    assert names(list(local.files("other"))) == names(list(remote.files("other")))
    assert local.landed_offsets("t") == remote.landed_offsets("t") == {0: 4, 1: 3, 2: 10}
    assert local.landed_offsets("other") == remote.landed_offsets("other") == {0: 9}
    for partition in (0, 1, 2):
        assert names(local.partition_files("t", partition)) == names(
            remote.partition_files("t", partition)
        )
        assert local.recent_event_ids("t", partition, limit=4) == remote.recent_event_ids(
            "t", partition, limit=4
        )
    for mine, theirs in zip(sorted(local.files()), sorted(remote.files()), strict=True):
        assert local.read_table(mine).equals(remote.read_table(theirs))
        assert local.read_table(mine, ["event_id"]).equals(remote.read_table(theirs, ["event_id"]))
        assert local.read_metadata(mine).num_rows == remote.read_metadata(theirs).num_rows
        # Byte for byte the same file: an object is what a local landing writes.
        key = theirs.path.relative_to(Path(s3_bucket.name)).as_posix()
        body = s3_bucket.server.client().get_object(Bucket=s3_bucket.name, Key=key)["Body"]
        assert body.read() == mine.path.read_bytes()


def test_on_s3_a_file_is_written_once_under_its_final_key(
    lakes: tuple[Lake, Lake], s3_bucket: S3Bucket
) -> None:
    _, remote = lakes
    land_events(remote, events(2, seed=1), partition=0, first=0)
    [key] = s3_bucket.keys()
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert key == f"lake/events/landed_date={day}/t+0+{0:020d}+{1:020d}.parquet"
    assert remote.remove_temporary_files("t", 0) == 0
    # A worker's batch: written in the local spool, nothing in the bucket until it is placed.
    temporary, final = remote.write_temporary(
        frame(1, partition=0, first=2), topic="t", partition=0, first_offset=2, last_offset=2
    )
    assert temporary.is_file() and s3_bucket.keys() == [key]
    spooled = temporary.read_bytes()
    remote.place(temporary, final)
    assert not temporary.exists()
    placed = f"lake/events/landed_date={day}/t+0+{2:020d}+{2:020d}.parquet"
    assert s3_bucket.keys() == sorted([key, placed])
    body = s3_bucket.server.client().get_object(Bucket=s3_bucket.name, Key=placed)["Body"]
    assert body.read() == spooled
    assert remote.landed_offsets("t") == {0: 2}
    # A crash before the upload leaves the spooled file; the partition's next owner removes it.
    left, _ = remote.write_temporary(
        frame(1, partition=0, first=3), topic="t", partition=0, first_offset=3, last_offset=3
    )
    assert remote.remove_temporary_files("t", 0) == 1 and not left.exists()


def test_topic_records_are_kept_alike_locally_and_on_s3(
    lakes: tuple[Lake, Lake], s3_bucket: S3Bucket
) -> None:
    local, remote = lakes
    for lake in (local, remote):
        assert lake.topic_records("t") == []
        lake.record_topic("t", "id-1")
        lake.record_topic("t", "id-2")
    assert local.topic_records("t") == remote.topic_records("t")
    assert [r.lake_topic for r in remote.topic_records("t")] == ["t", "t~2"]
    body = s3_bucket.server.client().get_object(
        Bucket=s3_bucket.name, Key="lake/events/topics.json"
    )
    assert body["Body"].read() == (local.root / "topics.json").read_bytes()


def test_objects_beside_the_day_folders_are_not_lake_files(
    lakes: tuple[Lake, Lake], s3_bucket: S3Bucket
) -> None:
    _, remote = lakes
    client = s3_bucket.server.client()
    for key in ("lake/events/t+0+1+2.parquet", "lake/events/landed_date=x/deeper/t+0+1+2.parquet",
                "lake/events/landed_date=x/.landing-t+0+1+2.parquet"):  # fmt: skip
        client.put_object(Bucket=s3_bucket.name, Key=key, Body=b"")
    assert list(remote.files()) == []
