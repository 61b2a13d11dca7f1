"""The suppression list: erased users' later events never land, in the workers or embedded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl

from api.sink import EncodedEvent
from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.embedded import EmbeddedSink
from ingest.pipeline import DedupeWindow, Pipeline, RawMessage
from privacy.keys import Keyring
from privacy.suppression import SuppressionList, add_suppressed
from tests.factories import make_event
from warehouse.lake import Lake

KEYRING = Keyring(1, {1: b"s" * 32})


def pipeline(path: Path) -> Pipeline:
    return Pipeline(
        PseudonymisingAnonymiser(KEYRING),
        max_event_bytes=65536,
        suppression=SuppressionList(path, check_every_s=0),
    )


def messages(users: list[str]) -> list[RawMessage]:
    return [
        RawMessage("t", 0, i, None, json.dumps(make_event(user_id=user)).encode())
        for i, user in enumerate(users)
    ]


def test_listed_pseudonyms_are_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "privacy" / "suppressed-pseudonyms.txt"
    assert add_suppressed(path, [KEYRING.pseudonym("erased")]) == 1
    assert add_suppressed(path, [KEYRING.pseudonym("erased")]) == 0  # once only
    flow = pipeline(path)

    batch = flow.process(messages(["kept", "erased", "kept", "erased"]), DedupeWindow(10))
    frame = flow.frame(batch)

    assert batch.suppressed == 2
    assert frame["user_pseudonym"].to_list() == [KEYRING.pseudonym("kept")] * 2
    assert frame["source_offset"].to_list() == [0, 2]  # the kept rows keep their offsets


def test_the_list_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "suppressed.txt"
    flow = pipeline(path)
    first = flow.process(messages(["later-erased"]), DedupeWindow(10))
    assert flow.frame(first).height == 1 and first.suppressed == 0

    add_suppressed(path, [KEYRING.pseudonym("later-erased")])
    os.utime(path, ns=(0, 1))  # a different mtime even on a coarse clock
    second = flow.process(messages(["later-erased"]), DedupeWindow(10))

    assert flow.frame(second).height == 0 and second.suppressed == 1


def test_embedded_sink_drops_erased_users(tmp_path: Path) -> None:
    path = tmp_path / "suppressed.txt"
    add_suppressed(path, [KEYRING.pseudonym("erased")])
    lake = Lake(tmp_path / "lake")
    sink = EmbeddedSink(lake=lake, pipeline=pipeline(path), dedupe_window=100)
    events = [make_event(user_id=u) for u in ("a", "erased", "b")]

    landed = sink.land([EncodedEvent(e["event_id"], None, json.dumps(e).encode()) for e in events])

    assert landed == 2 and sink.landed == 2 and sink.suppressed == 1
    rows = pl.concat([pl.read_parquet(f.path) for f in lake.files()])
    assert KEYRING.pseudonym("erased") not in rows["user_pseudonym"].to_list()
