"""The lake: file names are the commit, temporary files are invisible until published."""

from __future__ import annotations

import errno
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.filesystems import small_file_system
from warehouse.lake import (
    OFFSET_DIGITS,
    TEMPORARY_PREFIX,
    TOPICS_FILE,
    Lake,
    LakeFile,
    TopicRecord,
    file_name,
    lake_schema,
    parse_name,
)

TOPIC = "flywheel.events.v1"
DAY_1 = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
DAY_2 = datetime(2026, 11, 26, 0, 1, tzinfo=UTC)


def lake_frame(event_ids: Sequence[str]) -> pl.DataFrame:
    """A frame of the lake schema holding only event ids."""
    schema = lake_schema()
    data: dict[str, list[object]] = {name: [None] * len(event_ids) for name in schema}
    data["event_id"] = list(event_ids)
    return pl.DataFrame(data, schema=schema)


def land(
    lake: Lake,
    first: int,
    last: int,
    *,
    topic: str = TOPIC,
    partition: int = 0,
    ids: Sequence[str] = (),
    now: datetime = DAY_1,
) -> Path:
    """Write and publish a batch on a given landing day."""
    temporary, final = lake.write_temporary(
        lake_frame(ids), topic=topic, partition=partition, first_offset=first, last_offset=last,
        now=now,
    )  # fmt: skip
    Lake.publish(temporary, final)
    return final


def write_temporary(
    lake: Lake, first: int, last: int, *, topic: str = TOPIC, partition: int = 0,
    now: datetime = DAY_1,
) -> Path:  # fmt: skip
    """Write a batch but never publish it (a crash between write and rename)."""
    temporary, _ = lake.write_temporary(
        lake_frame(["x"]), topic=topic, partition=partition, first_offset=first, last_offset=last,
        now=now,
    )  # fmt: skip
    return temporary


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake.in_data_dir(tmp_path / "data")


def test_in_data_dir_is_lake_events(tmp_path: Path) -> None:
    assert Lake.in_data_dir(tmp_path).root == tmp_path / "lake" / "events"


@pytest.mark.parametrize(
    ("topic", "partition", "first", "last"),
    [
        (TOPIC, 3, 120, 245),
        ("embedded", 0, 0, 0),
        ("a_b-c.d", 12, 7, 2**63 - 1),
    ],
)
def test_file_name_and_parse_name_round_trip(
    topic: str, partition: int, first: int, last: int
) -> None:
    name = file_name(topic, partition, first, last)
    path = Path("landed_date=2026-11-26") / name
    assert parse_name(path) == LakeFile(topic, partition, first, last, path)


def test_file_name_is_the_documented_layout() -> None:
    assert file_name(TOPIC, 3, 120, 245) == (
        "flywheel.events.v1+3+00000000000000000120+00000000000000000245.parquet"
    )


def test_zero_padded_offsets_sort_numerically() -> None:
    offsets = [100, 9, 2**40, 10, 0, 99]
    names = [file_name(TOPIC, 0, offset, offset + 1) for offset in offsets]
    parsed = [parse_name(Path(name)) for name in sorted(names)]
    assert [landed.first_offset for landed in parsed if landed] == sorted(offsets)
    assert all(len(n.split("+")[2]) == OFFSET_DIGITS for n in names)


@pytest.mark.parametrize(
    "name",
    [
        "_SUCCESS",
        "notes.txt",
        "data.parquet",
        f"{TOPIC}+0+1.parquet",
        f"{TOPIC}+0+1+2.parquet.tmp",
        f"{TOPIC}+0+1+2.csv",
        f"{TOPIC}+x+1+2.parquet",
        f"{TOPIC}+0+-1+2.parquet",
        f"{TOPIC} +0+1+2.parquet",
    ],
)
def test_parse_name_ignores_other_names(name: str) -> None:
    assert parse_name(Path(name)) is None


def test_parse_name_ignores_temporary_files() -> None:
    assert parse_name(Path(TEMPORARY_PREFIX + file_name(TOPIC, 3, 120, 245))) is None


def test_landed_offsets_is_the_highest_last_offset_per_partition(lake: Lake) -> None:
    land(lake, 0, 99, partition=0, now=DAY_1)
    land(lake, 100, 149, partition=0, now=DAY_2)
    land(lake, 150, 160, partition=0, now=DAY_1)  # an older folder may hold newer offsets
    land(lake, 0, 9, partition=1, now=DAY_2)
    land(lake, 500, 999, topic="other.topic", partition=0, now=DAY_2)
    write_temporary(lake, 161, 5000, partition=0, now=DAY_2)  # not published: not landed
    (lake.root / "landed_date=2026-11-26" / "README.txt").write_text("not a batch")
    (lake.root / "elsewhere").mkdir()
    (lake.root / "elsewhere" / file_name(TOPIC, 0, 0, 9999)).write_bytes(b"")  # not a day folder

    assert lake.landed_offsets(TOPIC) == {0: 160, 1: 9}
    assert lake.landed_offsets("other.topic") == {0: 999}
    assert lake.landed_offsets("missing") == {}


def test_a_lake_that_does_not_exist_yet_is_empty(lake: Lake) -> None:
    assert not lake.root.exists()
    assert list(lake.files()) == []
    assert lake.landed_offsets(TOPIC) == {}
    assert lake.partition_files(TOPIC, 0) == []
    assert lake.recent_event_ids(TOPIC, 0, limit=10) == []
    assert lake.remove_temporary_files(TOPIC, 0) == 0


def test_partition_files_are_oldest_offsets_first(lake: Lake) -> None:
    land(lake, 300, 999, now=DAY_1)
    land(lake, 5, 39, now=DAY_2)
    land(lake, 40, 299, now=DAY_1)
    land(lake, 0, 4, partition=1, now=DAY_1)
    land(lake, 0, 4, topic="other.topic", now=DAY_1)

    files = lake.partition_files(TOPIC, 0)
    assert [(f.first_offset, f.last_offset) for f in files] == [(5, 39), (40, 299), (300, 999)]
    assert {(f.topic, f.partition) for f in files} == {(TOPIC, 0)}
    assert all(f.path.exists() for f in files)


def test_write_temporary_is_invisible_until_publish(lake: Lake) -> None:
    frame = lake_frame(["a", "b"])
    temporary, final = lake.write_temporary(
        frame, topic=TOPIC, partition=0, first_offset=0, last_offset=1, now=DAY_2
    )
    folder = lake.root / "landed_date=2026-11-26"
    assert final == folder / file_name(TOPIC, 0, 0, 1)
    assert temporary.parent == folder
    assert temporary.name.startswith(".")
    assert sorted(p.name for p in folder.iterdir()) == [temporary.name]
    assert list(lake.files(TOPIC)) == []
    assert lake.landed_offsets(TOPIC) == {}

    Lake.publish(temporary, final)

    assert sorted(p.name for p in folder.iterdir()) == [final.name]
    assert [f.path for f in lake.files(TOPIC)] == [final]
    assert lake.landed_offsets(TOPIC) == {0: 1}
    assert pl.read_parquet(final).equals(frame)


def test_files_of_every_topic_does_not_list_temporary_files(lake: Lake) -> None:
    write_temporary(lake, 0, 1)
    assert list(lake.files()) == []


def test_land_publishes_in_one_step_under_todays_date(lake: Lake) -> None:
    before = datetime.now(UTC)
    final = lake.land(lake_frame(["a"]), topic=TOPIC, partition=2, first_offset=7, last_offset=8)
    after = datetime.now(UTC)
    assert final.name == file_name(TOPIC, 2, 7, 8)
    assert final.parent.name in {f"landed_date={day:%Y-%m-%d}" for day in (before, after)}
    assert [p.name for p in final.parent.iterdir()] == [final.name]


def test_remove_temporary_files_removes_only_that_partitions(lake: Lake) -> None:
    mine = [
        write_temporary(lake, 0, 9, partition=1, now=DAY_1),
        write_temporary(lake, 10, 19, partition=1, now=DAY_2),
    ]
    others = [
        write_temporary(lake, 0, 9, partition=12, now=DAY_1),
        write_temporary(lake, 0, 9, partition=2, now=DAY_1),
        write_temporary(lake, 0, 9, topic="flywheel.events", partition=1, now=DAY_2),
        write_temporary(lake, 0, 9, topic=TOPIC + "x", partition=1, now=DAY_2),
        land(lake, 20, 29, partition=1, now=DAY_2),
    ]

    assert lake.remove_temporary_files(TOPIC, 1) == 2

    assert not any(path.exists() for path in mine)
    assert all(path.exists() for path in others)
    assert lake.remove_temporary_files(TOPIC, 1) == 0


def test_recent_event_ids_are_the_newest_in_offset_order(lake: Lake) -> None:
    land(lake, 0, 3, ids=["a0", "a1", "a2", "a3"], now=DAY_1)
    land(lake, 10, 11, ids=["c0", "c1"], now=DAY_1)
    land(lake, 4, 9, ids=["b0", "b1", "b2"], now=DAY_2)  # landed last, but older offsets
    land(lake, 12, 14, ids=[], now=DAY_2)  # only dead letters and duplicates
    land(lake, 100, 101, partition=1, ids=["other-partition"])
    land(lake, 100, 101, topic="other.topic", ids=["other-topic"])

    assert lake.recent_event_ids(TOPIC, 0, limit=4) == ["b1", "b2", "c0", "c1"]
    assert lake.recent_event_ids(TOPIC, 0, limit=2) == ["c0", "c1"]
    assert lake.recent_event_ids(TOPIC, 0, limit=1) == ["c1"]
    assert lake.recent_event_ids(TOPIC, 0, limit=100) == [
        "a0", "a1", "a2", "a3", "b0", "b1", "b2", "c0", "c1",
    ]  # fmt: skip
    assert lake.recent_event_ids(TOPIC, 0, limit=0) == []


def test_a_zero_row_file_is_valid_and_records_progress(lake: Lake) -> None:
    final = lake.land(lake_frame([]), topic=TOPIC, partition=0, first_offset=0, last_offset=4)

    read = pl.read_parquet(final)
    assert read.height == 0
    assert dict(read.schema) == lake_schema()
    assert lake.landed_offsets(TOPIC) == {0: 4}
    assert lake.recent_event_ids(TOPIC, 0, limit=10) == []


def day_folder_entries(lake: Lake) -> list[Path]:
    """Everything under the lake's day folders (temporary files included)."""
    return [p for folder in lake.root.glob("landed_date=*") for p in folder.iterdir()]


def test_a_full_disk_is_an_os_error_and_leaves_no_temporary_file(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """polars reports a full disk as a ComputeError, which the worker took for a permanent
    failure and died of, leaving the half-written file behind."""
    from polars.exceptions import ComputeError

    def full_disk(self: pl.DataFrame, handle: Any, **options: Any) -> None:
        handle.write(b"PAR1")
        raise ComputeError(
            "parquet: File out of specification: underlying IO error: "
            "No space left on device (os error 28)"
        )

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full_disk)
    with pytest.raises(OSError) as raised:
        write_temporary(lake, 0, 1)
    assert raised.value.errno == errno.ENOSPC
    assert day_folder_entries(lake) == []


def test_a_write_polars_fails_without_an_errno_is_an_io_error(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the footer is written: polars names no OS error at all."""
    from polars.exceptions import ComputeError

    def footer_does_not_fit(self: pl.DataFrame, handle: Any, **options: Any) -> None:
        handle.write(b"PAR1")
        raise ComputeError("parquet: File out of specification: Invalid thrift: transport error")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", footer_does_not_fit)
    with pytest.raises(OSError) as raised:
        write_temporary(lake, 0, 1)
    assert raised.value.errno == errno.EIO
    assert isinstance(raised.value.__cause__, ComputeError)
    assert day_folder_entries(lake) == []


def test_a_really_full_file_system(tmp_path: Path) -> None:
    with small_file_system(tmp_path / "small", size_kib=64) as mounted:
        lake = Lake(mounted / "events")
        big = lake_frame([uuid.uuid4().hex * 4 for _ in range(20_000)])
        with pytest.raises(OSError) as raised:
            lake.write_temporary(big, topic=TOPIC, partition=0, first_offset=0, last_offset=1)
        assert raised.value.errno == errno.ENOSPC
        assert day_folder_entries(lake) == []
        # The space the failed write took is free again: a small batch fits.
        land(lake, 0, 1, ids=["a"])
        assert lake.landed_offsets(TOPIC) == {0: 1}


def test_each_accepted_topic_id_lands_under_a_name_of_its_own(lake: Lake) -> None:
    assert lake.topic_records(TOPIC) == []
    assert lake.record_topic(TOPIC, "id-a") == TopicRecord("id-a", TOPIC)
    assert lake.record_topic(TOPIC, "id-b") == TopicRecord("id-b", f"{TOPIC}~2")
    assert lake.record_topic("other", "id-c") == TopicRecord("id-c", "other")
    assert [r.lake_topic for r in lake.topic_records(TOPIC)] == [TOPIC, f"{TOPIC}~2"]

    land(lake, 0, 9, ids=["a"])
    land(lake, 0, 4, topic=f"{TOPIC}~2", ids=["b"])
    assert lake.landed_offsets(TOPIC) == {0: 9}
    assert lake.landed_offsets(f"{TOPIC}~2") == {0: 4}
    assert list(lake.root.glob("*/*.parquet")) and (lake.root / TOPICS_FILE).exists()
