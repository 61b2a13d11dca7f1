"""Embedded mode: the API's sink lands events in the lake before it answers 202."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import polars as pl
import pytest

from api.main import create_app
from api.sink import EncodedEvent
from flywheel.errors import ConfigError, FlywheelError
from flywheel.settings import Settings, load_settings
from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.contract import encode_event, parse_event
from ingest.embedded import EMBEDDED_TOPIC, EmbeddedSink, LocalDisk, storage_failure
from ingest.pipeline import Pipeline
from privacy.keys import Keyring
from tests.factories import WRITE_KEY, api_client, make_event
from tests.filesystems import fill, remount, small_file_system
from warehouse.lake import Lake, LakeFile

KEYRING = Keyring(current=1, keys={1: b"\x05" * 32})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake.in_data_dir(tmp_path / "data")


@pytest.fixture(autouse=True)
def close_sinks() -> Iterator[None]:
    yield
    while OPEN_SINKS:
        OPEN_SINKS.pop().close()


OPEN_SINKS: list[EmbeddedSink] = []


def new_sink(lake: Lake, *, dedupe_window: int = 1000, **options: Any) -> EmbeddedSink:
    """A sink on ``lake``, closed at the end of the test; closing the previous one first (a
    restart), since one sink at a time may hold a lake."""
    while OPEN_SINKS:
        OPEN_SINKS.pop().close()
    pipeline = Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=64 * 1024)
    sink = EmbeddedSink(lake=lake, pipeline=pipeline, dedupe_window=dedupe_window, **options)
    OPEN_SINKS.append(sink)
    return sink


def encode(raw: dict[str, Any]) -> EncodedEvent:
    """The event as the API hands it to the sink."""
    event = parse_event(raw)
    return EncodedEvent(event.event_id, event.conversation_id.encode(), encode_event(event))


def files(lake: Lake) -> list[LakeFile]:
    return lake.partition_files(EMBEDDED_TOPIC, 0)


def landed(lake: Lake) -> pl.DataFrame:
    paths = [f.path for f in files(lake)]
    return pl.read_parquet(paths) if paths else pl.DataFrame()


def test_land_lands_one_file_whose_rows_match(lake: Lake) -> None:
    events = [
        make_event("generation", user_id="alice"),
        make_event("copy", user_id="bob"),
        make_event("rating", user_id="alice", value="down"),
    ]
    sink = new_sink(lake)

    assert sink.land([encode(e) for e in events]) == 3

    [file] = files(lake)
    assert (file.first_offset, file.last_offset) == (0, 2)
    frame = pl.read_parquet(file.path)
    assert frame["event_id"].to_list() == [e["event_id"] for e in events]
    assert frame["type"].to_list() == ["generation", "copy", "rating"]
    assert frame["user_pseudonym"].to_list() == [
        KEYRING.pseudonym("alice"), KEYRING.pseudonym("bob"), KEYRING.pseudonym("alice"),
    ]  # fmt: skip
    assert frame["rating_value"].to_list() == [None, None, "down"]
    assert frame["source_topic"].to_list() == [EMBEDDED_TOPIC] * 3
    assert frame["source_offset"].to_list() == [0, 1, 2]
    assert sink.landed == 3


def test_each_batch_lands_its_own_file_at_the_next_offsets(lake: Lake) -> None:
    sink = new_sink(lake)
    sink.land([encode(make_event()), encode(make_event())])
    sink.land([encode(make_event())])
    assert [(f.first_offset, f.last_offset) for f in files(lake)] == [(0, 1), (2, 2)]


def test_a_resend_within_one_batch_lands_once(lake: Lake) -> None:
    event = make_event()
    assert new_sink(lake).land([encode(event), encode(event)]) == 1
    [file] = files(lake)
    assert (file.first_offset, file.last_offset) == (0, 1)
    assert landed(lake)["event_id"].to_list() == [event["event_id"]]


def test_a_second_sink_continues_after_the_lake_and_drops_landed_events(lake: Lake) -> None:
    first_batch = [make_event("rating"), make_event("edit"), make_event("copy")]
    second_batch = [make_event("regenerate"), make_event("ab_choice")]
    first = new_sink(lake)
    first.land([encode(e) for e in first_batch])
    first.land([encode(e) for e in second_batch])

    newcomer = make_event("generation")
    restarted = new_sink(lake)
    assert restarted.land([encode(first_batch[0]), encode(newcomer), encode(second_batch[1])]) == 1

    ranges = [(f.first_offset, f.last_offset) for f in files(lake)]
    assert ranges == [(0, 2), (3, 4), (5, 7)]
    frame = landed(lake)
    assert frame["event_id"].to_list() == [
        *(e["event_id"] for e in first_batch + second_batch), newcomer["event_id"],
    ]  # fmt: skip
    assert frame["source_offset"].to_list() == [0, 1, 2, 3, 4, 6]


def test_a_batch_of_only_resends_lands_no_file(lake: Lake) -> None:
    events = [make_event(), make_event()]
    sink = new_sink(lake)
    sink.land([encode(e) for e in events])
    before = files(lake)

    assert sink.land([encode(events[1]), encode(events[0])]) == 0
    assert new_sink(lake).land([encode(events[0])]) == 0

    assert files(lake) == before
    assert sink.landed == 2
    assert new_sink(lake).land([encode(make_event())]) == 1
    assert [(f.first_offset, f.last_offset) for f in files(lake)] == [(0, 1), (2, 2)]


def test_a_new_sink_removes_its_leftover_temporary_files(lake: Lake) -> None:
    mine, _ = lake.write_temporary(
        landed(lake), topic=EMBEDDED_TOPIC, partition=0, first_offset=0, last_offset=9
    )
    others, _ = lake.write_temporary(
        landed(lake), topic="flywheel.events.v1", partition=0, first_offset=0, last_offset=9
    )

    new_sink(lake).land([encode(make_event())])

    assert not mine.exists()
    assert others.exists()
    assert [(f.first_offset, f.last_offset) for f in files(lake)] == [(0, 0)]


@pytest.mark.anyio
async def test_ready_while_the_lake_folder_can_be_created(lake: Lake) -> None:
    assert await new_sink(lake).readiness() is None
    assert lake.root.is_dir()


@pytest.mark.anyio
async def test_not_ready_when_the_lake_root_is_a_file(lake: Lake) -> None:
    lake.root.parent.mkdir(parents=True)
    lake.root.write_text("not a folder")
    assert "cannot be used" in (await new_sink(lake).readiness() or "")


# through the API


@pytest.fixture
def settings() -> Settings:
    return load_settings(api={"write_keys": [WRITE_KEY]})


@asynccontextmanager
async def embedded_api(
    settings: Settings, sink: EmbeddedSink, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, sink)
    async with api_client(app, raise_app_exceptions=raise_app_exceptions) as client:
        yield client


@pytest.mark.anyio
async def test_a_202_means_the_lake_already_holds_the_events(
    settings: Settings, lake: Lake
) -> None:
    single = make_event("generation")
    batch = [make_event("copy"), make_event("rating")]
    async with embedded_api(settings, new_sink(lake)) as client:
        response = await client.post("/v1/events", json=single)
        assert response.status_code == 202
        assert landed(lake)["event_id"].to_list() == [single["event_id"]]

        response = await client.post("/v1/events", json={"events": batch})
        assert response.status_code == 202
        assert landed(lake)["event_id"].to_list() == [
            single["event_id"], *response.json()["event_ids"],
        ]  # fmt: skip
        assert response.json()["event_ids"] == [e["event_id"] for e in batch]


@pytest.mark.anyio
async def test_a_resent_request_is_accepted_and_lands_once(settings: Settings, lake: Lake) -> None:
    event = make_event()
    async with embedded_api(settings, new_sink(lake)) as client:
        for _ in range(2):
            response = await client.post("/v1/events", json=event)
            assert response.status_code == 202
    assert landed(lake)["event_id"].to_list() == [event["event_id"]]
    assert len(files(lake)) == 1


@pytest.mark.anyio
async def test_an_unwritable_lake_is_503_with_retry_after_and_lands_nothing(
    settings: Settings, lake: Lake
) -> None:
    first, second = make_event(), make_event()
    sink = new_sink(lake)
    async with embedded_api(settings, sink) as client:
        assert (await client.post("/v1/events", json=first)).status_code == 202
        aside = lake.root.with_name("events.aside")
        lake.root.rename(aside)
        lake.root.write_text("not a folder")  # mkdir of the landing folder fails

        response = await client.post("/v1/events", json=second)

        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        assert response.json()["error"] == "unavailable"
        assert sink.landed == 1
        lake.root.unlink()
        aside.rename(lake.root)
        assert landed(lake)["event_id"].to_list() == [first["event_id"]]
        assert list(lake.root.glob("*/.*")) == []  # no half-written batch either

        assert (await client.post("/v1/events", json=second)).status_code == 202  # resend works
    assert landed(lake)["event_id"].to_list() == [first["event_id"], second["event_id"]]


@pytest.mark.anyio
async def test_a_lake_root_that_is_a_file_from_the_start_is_503(
    settings: Settings, lake: Lake
) -> None:
    lake.root.parent.mkdir(parents=True)
    lake.root.write_text("not a folder")
    sink = new_sink(lake)
    async with embedded_api(settings, sink, raise_app_exceptions=False) as client:
        response = await client.post("/v1/events", json=make_event())

    assert sink.landed == 0
    assert lake.root.read_text() == "not a folder"
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()


# one sink per lake


def test_a_second_sink_on_the_same_lake_is_refused_until_the_first_closes(lake: Lake) -> None:
    pipeline = Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=64 * 1024)
    first = new_sink(lake)

    with pytest.raises(ConfigError, match="already served in embedded mode") as refused:
        EmbeddedSink(lake=lake, pipeline=pipeline, dedupe_window=10)
    assert f"pid {os.getpid()}" in str(refused.value)
    assert "\n" not in str(refused.value)

    first.close()
    second = EmbeddedSink(lake=lake, pipeline=pipeline, dedupe_window=10)
    OPEN_SINKS.append(second)
    assert second.land([encode(make_event())]) == 1


# group commit


class GatedLake(Lake):
    """A lake whose first landing waits until the test opens the gate."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def write_temporary(self, frame: pl.DataFrame, **where: Any) -> tuple[Path, Path]:
        self.entered.set()
        if not self.gate.wait(timeout=60):
            raise AssertionError("the test never opened the gate")
        return super().write_temporary(frame, **where)


@pytest.fixture
def gated(tmp_path: Path) -> GatedLake:
    return GatedLake(tmp_path / "data" / "lake" / "events")


async def queue_behind_a_landing(
    sink: EmbeddedSink, lake: GatedLake, requests: list[list[dict[str, Any]]]
) -> tuple[asyncio.Task[None], list[asyncio.Task[None]]]:
    """Publish one event and, while its file is being written, queue ``requests``."""
    first = asyncio.create_task(sink.publish([encode(make_event())]))
    assert await asyncio.to_thread(lake.entered.wait, 60)
    tasks = [asyncio.create_task(sink.publish([encode(e) for e in r])) for r in requests]
    await asyncio.sleep(0)  # each task runs up to its wait: queued, in order
    assert sink.waiting == len(requests)
    return first, tasks


@pytest.mark.anyio
async def test_requests_that_wait_for_a_landing_share_the_next_file(gated: GatedLake) -> None:
    requests = [[make_event()] for _ in range(5)] + [[make_event(), make_event(), make_event()]]
    sink = new_sink(gated)
    first, tasks = await queue_behind_a_landing(sink, gated, requests)
    assert not any(task.done() for task in [first, *tasks])  # nothing answered before its fsync

    gated.gate.set()
    await asyncio.gather(first, *tasks)

    assert [(f.first_offset, f.last_offset) for f in files(gated)] == [(0, 0), (1, 8)]
    assert sink.files == 2
    second = pl.read_parquet(files(gated)[1].path)
    assert second["event_id"].to_list() == [e["event_id"] for r in requests for e in r]
    assert second["source_offset"].to_list() == list(range(1, 9))


@pytest.mark.anyio
async def test_a_request_is_never_split_over_files(gated: GatedLake) -> None:
    requests = [[make_event(), make_event()], [make_event(), make_event()], [make_event()]]
    sink = new_sink(gated, max_batch_events=3)
    first, tasks = await queue_behind_a_landing(sink, gated, requests)

    gated.gate.set()
    await asyncio.gather(first, *tasks)

    # 2 + 2 passes the limit of 3: the second request waits for the next file, whole.
    assert [(f.first_offset, f.last_offset) for f in files(gated)] == [(0, 0), (1, 2), (3, 5)]
    by_file = [pl.read_parquet(f.path)["event_id"].to_list() for f in files(gated)[1:]]
    assert by_file == [
        [e["event_id"] for e in requests[0]],
        [e["event_id"] for e in requests[1] + requests[2]],
    ]


@pytest.mark.anyio
async def test_a_resend_in_the_same_group_lands_once(gated: GatedLake) -> None:
    event = make_event()
    sink = new_sink(gated)
    first, tasks = await queue_behind_a_landing(sink, gated, [[event], [event]])

    gated.gate.set()
    await asyncio.gather(first, *tasks)

    assert landed(gated)["event_id"].to_list()[1:] == [event["event_id"]]
    assert sink.duplicates == 1
    await sink.publish([encode(event)])  # and once landed, a later resend is dropped too
    assert landed(gated).height == 2 and sink.duplicates == 2


@pytest.mark.anyio
async def test_a_faulty_request_fails_alone_and_its_group_lands(gated: GatedLake) -> None:
    good = [make_event(), make_event()]
    sink = new_sink(gated)
    first = asyncio.create_task(sink.publish([encode(make_event())]))
    assert await asyncio.to_thread(gated.entered.wait, 60)
    # Not valid JSON: the API never sends this, so the pipeline's refusal is a bug to report.
    bad = asyncio.create_task(sink.publish([EncodedEvent(uuid4(), b"c", b"{not json")]))
    tasks = [asyncio.create_task(sink.publish([encode(e)])) for e in good]
    await asyncio.sleep(0)
    assert sink.waiting == 3

    gated.gate.set()
    await asyncio.gather(first, *tasks)
    with pytest.raises(FlywheelError, match="passed the API but not the pipeline"):
        await bad

    assert landed(gated)["event_id"].to_list()[1:] == [e["event_id"] for e in good]


# a full disk


NO_SPACE = "parquet: File out of specification: underlying IO error: No space left on device"


def polars_out_of_space(frame: pl.DataFrame, file: Any, **options: Any) -> None:
    """What polars does when the disk fills: some bytes written, then a ComputeError."""
    file.write(b"PAR1")
    raise pl.exceptions.ComputeError(f"{NO_SPACE} (os error 28)")


def fsync_out_of_space(descriptor: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("target", "name", "fault"),
    [
        (pl.DataFrame, "write_parquet", polars_out_of_space),
        (os, "fsync", fsync_out_of_space),
    ],
    ids=["polars-write", "fsync"],
)
async def test_a_full_disk_is_503_with_retry_after_and_leaves_no_temporary_file(
    settings: Settings, lake: Lake, monkeypatch: pytest.MonkeyPatch, target: Any, name: str,
    fault: Any,
) -> None:  # fmt: skip
    first, second = make_event(), make_event()
    sink = new_sink(lake)
    async with embedded_api(settings, sink, raise_app_exceptions=False) as client:
        assert (await client.post("/v1/events", json=first)).status_code == 202
        with monkeypatch.context() as patched:
            patched.setattr(target, name, fault)
            response = await client.post("/v1/events", json=second)

        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert response.json()["error"] == "unavailable"
        assert landed(lake)["event_id"].to_list() == [first["event_id"]]
        assert list(lake.root.glob("*/.*")) == []

        for _ in range(2):  # space again: the client resends, and resends are safe
            assert (await client.post("/v1/events", json=second)).status_code == 202
    assert landed(lake)["event_id"].to_list() == [first["event_id"], second["event_id"]]
    assert sink.landed == 2


def test_write_errors_are_classified_by_their_cause() -> None:
    full = storage_failure(pl.exceptions.ComputeError(f"{NO_SPACE} (os error 28)"), "write")
    assert full is not None and full.retry_after_s == 30
    assert "No space left on device, errno 28" in str(full)
    read_only = storage_failure(OSError(errno.EROFS, "Read-only file system"), "write")
    assert read_only is not None and read_only.retry_after_s == 5
    # Not the file system: a bug, which must not pass for a full disk (500, not 503).
    assert storage_failure(pl.exceptions.ComputeError("cannot cast list to i64"), "write") is None
    assert storage_failure(ValueError("os error 28 (os error 28)"), "write") is None


@pytest.mark.anyio
async def test_a_write_failing_without_an_errno_is_a_503_and_leaves_no_temporary_file(
    settings: Settings, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(frame: pl.DataFrame, file: Any, **options: Any) -> None:
        file.write(b"PAR1")
        raise pl.exceptions.ComputeError("cannot cast list to i64")

    async with embedded_api(settings, new_sink(lake), raise_app_exceptions=False) as client:
        monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
        response = await client.post("/v1/events", json=make_event())

    # A frame of the lake's schema always encodes, so a failed write is the file system's (a
    # full disk can fail the footer with no errno at all): an I/O error the client retries.
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert list(lake.root.glob("*/.*")) == []
    assert files(lake) == []


# readiness reflects what a POST would get


class FailingDisk(LocalDisk):
    """The lake's file system as readiness sees it, failing as told."""

    def __init__(self) -> None:
        self.read_only = False
        self.free: int | None = None
        self.probe_error: OSError | None = None

    def writable(self, folder: Path) -> bool:
        return not self.read_only and super().writable(folder)

    def free_bytes(self, folder: Path) -> int:
        return super().free_bytes(folder) if self.free is None else self.free

    def write_probe(self, folder: Path) -> None:
        if self.probe_error is not None:
            raise self.probe_error
        super().write_probe(folder)


def uncached(settings: Settings) -> Settings:
    """The settings with readiness asked afresh on every probe."""
    return settings.model_copy(update={"api": settings.api.model_copy(update={"ready_cache_s": 0})})


@pytest.mark.anyio
async def test_readyz_is_503_with_the_reason_on_a_read_only_or_full_disk(
    settings: Settings, lake: Lake
) -> None:
    disk = FailingDisk()
    sink = new_sink(lake, disk=disk, min_free_bytes=1024 * 1024)
    async with embedded_api(uncached(settings), sink) as client:
        assert (await client.get("/readyz")).status_code == 200

        disk.read_only = True
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["error"] == "not_ready"
        assert "not writable" in response.json()["message"]

        disk.read_only, disk.free = False, 1024 * 1024 - 1
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert "1048575 bytes free" in response.json()["message"]

        disk.free = None
        assert (await client.get("/readyz")).status_code == 200


@pytest.mark.anyio
async def test_after_a_landing_failed_on_storage_not_ready_until_a_probe_write_succeeds(
    settings: Settings, lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FailingDisk()
    sink = new_sink(lake, disk=disk)
    async with embedded_api(uncached(settings), sink, raise_app_exceptions=False) as client:
        with monkeypatch.context() as patched:
            patched.setattr(os, "fsync", fsync_out_of_space)
            assert (await client.post("/v1/events", json=make_event())).status_code == 503
        # Free space and permissions look fine, but the disk just refused a landing.
        disk.probe_error = OSError(errno.EIO, os.strerror(errno.EIO))
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert "the last landing failed" in response.json()["message"]
        assert "No space left on device" in response.json()["message"]

        disk.probe_error = None
        assert (await client.get("/readyz")).status_code == 200
        assert list(lake.root.glob(".*")) == []  # the probe file is gone

        # A landing that succeeds clears the failure as well.
        with monkeypatch.context() as patched:
            patched.setattr(os, "fsync", fsync_out_of_space)
            assert (await client.post("/v1/events", json=make_event())).status_code == 503
        disk.probe_error = OSError(errno.EIO, os.strerror(errno.EIO))
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.post("/v1/events", json=make_event())).status_code == 202
        assert (await client.get("/readyz")).status_code == 200


@pytest.mark.anyio
async def test_readyz_on_a_real_read_only_file_system(settings: Settings, tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path / "data")
    # The lake's events folder is its own file system; the lock file beside it stays writable
    # (a file open for writing would keep the remount from succeeding).
    with small_file_system(lake.root, size_kib=4096) as mounted:
        sink = new_sink(lake)
        async with embedded_api(uncached(settings), sink, raise_app_exceptions=False) as client:
            assert (await client.post("/v1/events", json=make_event())).status_code == 202
            assert (await client.get("/readyz")).status_code == 200
            remount(mounted, "ro")
            try:
                response = await client.get("/readyz")
                # What a POST gets now, readiness says too.
                assert (await client.post("/v1/events", json=make_event())).status_code == 503
            finally:
                remount(mounted, "rw")
            assert response.status_code == 503
            assert "not writable" in response.json()["message"]
            assert (await client.get("/readyz")).status_code == 200
        sink.close()


@pytest.mark.anyio
async def test_readyz_on_a_real_full_file_system(settings: Settings, tmp_path: Path) -> None:
    with small_file_system(tmp_path / "mounted", size_kib=2048) as mounted:
        lake = Lake.in_data_dir(mounted / "data")
        sink = new_sink(lake, min_free_bytes=256 * 1024)
        async with embedded_api(uncached(settings), sink, raise_app_exceptions=False) as client:
            assert (await client.get("/readyz")).status_code == 200
            ballast = fill(mounted)
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert "bytes free" in response.json()["message"]
            assert (await client.post("/v1/events", json=make_event())).status_code == 503
            ballast.unlink()
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.post("/v1/events", json=make_event())).status_code == 202
        sink.close()
