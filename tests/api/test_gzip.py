"""Bodies sent with ``Content-Encoding: gzip``: inflated, never past the request limit."""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib

import httpx
import pytest

from api.sink import MemorySink
from flywheel.settings import Settings
from tests.factories import make_event
from tests.helpers.keys import ORIGIN, PUBLISHABLE_KEY

pytestmark = pytest.mark.anyio

GZIP_JSON = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
MIB = 1024 * 1024


def zeros_gzipped(size: int) -> bytes:
    """``size`` zero bytes, gzipped (about a thousandth of the size)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    parts = [compressor.compress(block) for _ in range(size // MIB)]
    return b"".join([*parts, compressor.flush()])


async def test_a_gzipped_batch_is_accepted(client: httpx.AsyncClient, sink: MemorySink) -> None:
    events = [make_event("generation"), make_event("copy")]
    body = gzip.compress(json.dumps({"events": events}).encode())
    response = await client.post("/v1/events", content=body, headers=GZIP_JSON)
    assert response.status_code == 202, response.text
    assert [str(e.event_id) for e in sink.events] == [e["event_id"] for e in events]
    assert json.loads(sink.events[0].value)["response"] == events[0]["response"]


async def test_a_gzipped_beacon_with_partial_acceptance(
    keyed: httpx.AsyncClient, sink: MemorySink
) -> None:
    good, bad = make_event("copy"), make_event("rating", value="sideways")
    body = gzip.compress(json.dumps({"key": PUBLISHABLE_KEY, "events": [good, bad]}).encode())
    response = await keyed.post(
        "/v1/beacon?partial=true",
        content=body,
        headers={"Origin": ORIGIN, "Content-Type": "text/plain", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 207, response.text
    assert [str(e.event_id) for e in sink.events] == [good["event_id"]]


async def test_several_gzip_members_are_one_body(
    client: httpx.AsyncClient, sink: MemorySink
) -> None:
    text = json.dumps({"events": [make_event(), make_event()]}).encode()
    body = gzip.compress(text[:40]) + gzip.compress(text[40:])
    response = await client.post("/v1/events", content=body, headers=GZIP_JSON)
    assert response.status_code == 202, response.text
    assert len(sink.events) == 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": []}',  # not gzip at all
        gzip.compress(json.dumps(make_event()).encode())[:-12],  # cut short
        gzip.compress(json.dumps(make_event()).encode()) + b"trailing bytes",
        b"\x1f\x8b\x08\x00" + b"\x00" * 40,  # a gzip header over broken deflate data
    ],
    ids=["plain", "truncated", "trailing-garbage", "corrupt"],
)
async def test_a_body_that_is_not_gzip_is_400_without_quoting_it(
    client: httpx.AsyncClient, sink: MemorySink, body: bytes
) -> None:
    response = await client.post("/v1/events", content=body, headers=GZIP_JSON)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_gzip"
    assert "events" not in response.json()["message"]
    assert "trailing" not in response.json()["message"]
    assert sink.events == []


async def test_the_limit_counts_inflated_bytes(
    client: httpx.AsyncClient, sink: MemorySink, settings: Settings
) -> None:
    limit = settings.api.max_request_bytes
    text = json.dumps({"events": [make_event()]})
    under = text[:-1] + " " * (limit - len(text)) + "}"
    over = under + " "
    assert (len(under), len(over)) == (limit, limit + 1)
    accepted = await client.post(
        "/v1/events", content=gzip.compress(under.encode()), headers=GZIP_JSON
    )
    assert accepted.status_code == 202, accepted.text
    refused = await client.post(
        "/v1/events", content=gzip.compress(over.encode()), headers=GZIP_JSON
    )
    assert refused.status_code == 413
    assert "once decompressed" in refused.json()["message"]
    assert len(sink.events) == 1


async def test_a_gzip_bomb_is_413_without_being_inflated(client: httpx.AsyncClient) -> None:
    bomb = zeros_gzipped(64 * MIB)
    assert len(bomb) < 100 * 1024  # well under the 1 MiB request limit
    tracemalloc.start()
    try:
        response = await client.post("/v1/events", content=bomb, headers=GZIP_JSON)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    # Reading the request and inflating up to the 1 MiB limit, not the 64 MiB it holds.
    assert peak < 8 * MIB, peak


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "gzip, gzip", "compress"])
async def test_other_encodings_are_415(
    client: httpx.AsyncClient, sink: MemorySink, encoding: str
) -> None:
    body = gzip.compress(json.dumps(make_event()).encode())
    response = await client.post(
        "/v1/events",
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": encoding},
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_encoding"
    assert sink.events == []


async def test_identity_is_no_encoding(client: httpx.AsyncClient, sink: MemorySink) -> None:
    response = await client.post(
        "/v1/events",
        content=json.dumps(make_event()).encode(),
        headers={"Content-Type": "application/json", "Content-Encoding": "identity"},
    )
    assert response.status_code == 202
    assert len(sink.events) == 1
