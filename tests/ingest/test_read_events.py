"""The batch reader gives the frame polars' reader gives, whichever native reader ran."""

from __future__ import annotations

import io
import json
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.dev.simulator import SimulationConfig, simulate
from ingest.pipeline import raw_schema, read_events
from tests.factories import make_event
from tests.helpers.strategies import valid_events


def polars_frame(body: bytes) -> pl.DataFrame:
    return pl.read_ndjson(io.BytesIO(body), schema=raw_schema())


def assert_same_as_polars(body: bytes) -> None:
    try:
        expected = polars_frame(body)
    except Exception:
        with pytest.raises(Exception):  # noqa: B017 - whatever polars raises, it still raises
            read_events(body)
        return
    frame = read_events(body)
    assert frame.schema == expected.schema
    assert frame.equals(expected)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(valid_events(), min_size=1, max_size=8), st.booleans())
def test_generated_valid_events(events: list[dict[str, Any]], ascii_only: bool) -> None:
    assert_same_as_polars(
        b"\n".join(json.dumps(e, ensure_ascii=ascii_only).encode() for e in events)
    )


def test_simulated_events() -> None:
    events = simulate(SimulationConfig(events=1000, seed=5))
    assert_same_as_polars(b"\n".join(json.dumps(e).encode() for e in events))


@pytest.mark.parametrize(
    "value",
    [
        # Valid under the contract, refused by pyarrow's reader: polars reads them as before.
        json.dumps(make_event("rating")).encode()[:-1] + b', "value": "down"}',
        json.dumps(make_event("copy", text=None, span={"start": 0, "end": 2.0})).encode(),
        json.dumps(make_event("copy", text=None, span={"start": 0, "end": 10**30})).encode(),
        json.dumps(make_event("rating", schema_version=1.0)).encode(),
        json.dumps(
            make_event("generation", prompt=[{"role": "user", "content": "\U0001f600"}])
        ).encode(),
    ],
)
def test_values_one_reader_refuses(value: bytes) -> None:
    body = json.dumps(make_event("edit")).encode() + b"\n" + value
    assert_same_as_polars(body)
