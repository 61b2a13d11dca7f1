"""Embedded mode: the API's sink lands events in the lake before it answers 202."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from api.main import create_app
from api.sink import EncodedEvent
from flywheel.settings import Settings, load_settings
from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.contract import encode_event, parse_event
from ingest.embedded import EMBEDDED_TOPIC, EmbeddedSink
from ingest.keys import Keyring
from ingest.pipeline import Pipeline
from tests.factories import WRITE_KEY, api_client, make_event
from warehouse.lake import Lake, LakeFile

KEYRING = Keyring(current=1, keys={1: b"\x05" * 32})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake.in_data_dir(tmp_path / "data")


def new_sink(lake: Lake, *, dedupe_window: int = 1000) -> EmbeddedSink:
    pipeline = Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=64 * 1024)
    return EmbeddedSink(lake=lake, pipeline=pipeline, dedupe_window=dedupe_window)


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
    assert await new_sink(lake).ready()
    assert lake.root.is_dir()


@pytest.mark.anyio
async def test_not_ready_when_the_lake_root_is_a_file(lake: Lake) -> None:
    lake.root.parent.mkdir(parents=True)
    lake.root.write_text("not a folder")
    assert not await new_sink(lake).ready()


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
