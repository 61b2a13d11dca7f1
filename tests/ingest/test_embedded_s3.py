"""The embedded sink with the lake on S3 (moto): a 202 means the batch's object is in the bucket,
the spool is empty again, a restarted sink continues after the bucket's offsets and drops
resends, and the transforms load what it landed."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.main import create_app
from api.sink import EncodedEvent
from flywheel.settings import Settings
from flywheel.storage import parse_lake_url
from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.contract import encode_event, parse_event
from ingest.embedded import EMBEDDED_TOPIC, LOCK_NAME, EmbeddedSink
from ingest.pipeline import Pipeline
from privacy.keys import Keyring
from tests.factories import WRITE_KEY, api_client, make_event
from tests.helpers.lake import query
from tests.helpers.s3 import S3Bucket
from transforms.runner import run_transforms
from warehouse.lake import Lake

KEYRING = Keyring(1, {1: b"k" * 32})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sink_on(lake: Lake) -> EmbeddedSink:
    pipeline = Pipeline(PseudonymisingAnonymiser(KEYRING), max_event_bytes=64 * 1024)
    return EmbeddedSink(lake=lake, pipeline=pipeline, dedupe_window=1000)


@pytest.mark.anyio
async def test_the_embedded_sink_lands_in_the_bucket_before_it_answers(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    data_dir = tmp_path / "data"
    lake = Lake.at(parse_lake_url(s3_bucket.url()), spool=data_dir / "lake-spool")
    settings = Settings(data_dir=data_dir, api={"write_keys": [WRITE_KEY]})
    first = [make_event("generation", response_id=f"r{i}", parent_id=f"m{i}") for i in range(3)]
    sink = sink_on(lake)
    try:
        async with api_client(create_app(settings, sink)) as client:
            response = await client.post("/v1/events", json={"events": first})
            assert response.status_code == 202
            [key] = [k for k in s3_bucket.keys() if k.endswith(".parquet")]  # before the answer
            assert f"/{EMBEDDED_TOPIC}+0+" in key
    finally:
        sink.close()
    assert not list((data_dir / "lake-spool").rglob("*.parquet*"))  # uploaded, then removed
    assert (data_dir / LOCK_NAME).is_file()  # the one-sink lock is on this host, by the spool

    # A restarted sink reads its offsets and dedupe window back from the bucket.
    again = sink_on(Lake.at(parse_lake_url(s3_bucket.url()), spool=data_dir / "lake-spool"))
    try:
        resent = [first[0], make_event("rating", response_id="r0")]
        assert again.land([_encoded(e) for e in resent]) == 1
    finally:
        again.close()
    files = sorted(lake.partition_files(EMBEDDED_TOPIC, 0))
    assert [(f.first_offset, f.last_offset) for f in files] == [(0, 2), (3, 4)]

    summary = run_transforms(data_dir, lake=lake)
    assert summary.events_loaded == 4
    assert query(data_dir, "SELECT count(*) FROM events") == [(4,)]


def _encoded(raw: dict[str, object]) -> EncodedEvent:
    event = parse_event(raw)
    return EncodedEvent(event.event_id, event.conversation_id.encode(), encode_event(event))
