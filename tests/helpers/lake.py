"""Landing events in the lake as they are (or as the release before ``metadata`` and
``prompt_structure`` landed them), and querying the warehouse loaded from it."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.pipeline import DedupeWindow, Pipeline, RawMessage
from privacy.keys import Keyring
from warehouse.db import open_warehouse, raw
from warehouse.lake import Lake
from warehouse.table import IDENTIFIER, NAMESPACE, TABLE_PROPERTIES, LakeTable, arrow_schema
from warehouse.texts import fetch_texts

PIPELINE = Pipeline(PseudonymisingAnonymiser(Keyring(1, {1: b"k" * 32})), max_event_bytes=65536)
"""Pseudonymises user ids and scrubs nothing, so the texts land as the test wrote them."""


NEW_COLUMNS = ("metadata", "prompt_structure")
"""The lake's columns added after its first release, last."""


def land(
    lake: Lake, events: list[dict[str, Any]], *, partition: int = 0, first: int = 0,
    now: datetime | None = None, before: bool = False,
) -> None:  # fmt: skip
    """Land events as one lake file, with no dedupe window (as if resent after it expired);
    ``now``: the landing time, whose day names the file's ``landed_date=`` folder;
    ``before``: without ``NEW_COLUMNS``, as the release before them wrote its files (it wrote
    exactly that: the columns were added last and nothing else changed)."""
    messages = [
        RawMessage("t", partition, first + i, b"c", json.dumps(e).encode())
        for i, e in enumerate(events)
    ]
    batch = PIPELINE.process(messages, DedupeWindow(0))
    frame = PIPELINE.frame(batch)
    if before:
        frame = frame.drop(NEW_COLUMNS)
    lake.land(frame, topic="t", partition=partition, first_offset=first,
              last_offset=first + len(events) - 1, now=now)  # fmt: skip


def create_table_before(table: LakeTable) -> None:
    """The lake's Iceberg table as the release before ``NEW_COLUMNS`` created it; commit to it
    with ``LakeTable._with_lake_columns`` patched away to keep it so (that release's commits
    did not evolve it)."""
    import pyarrow as pa

    catalog = table.catalog()
    catalog.create_namespace_if_not_exists(NAMESPACE)
    old = pa.schema([field for field in arrow_schema() if field.name not in NEW_COLUMNS])
    catalog.create_table(IDENTIFIER, schema=old, location=table.location,
                         properties=TABLE_PROPERTIES)  # fmt: skip


def events(count: int, *, seed: int) -> list[dict[str, object]]:
    """``count`` valid rating events of three users, with ids unique to ``seed``."""
    return [
        {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=seed * 1000 + i)),
            "type": "rating",
            "occurred_at": "2026-11-26T10:00:00Z",
            "user_id": f"user-{i % 3}",
            "conversation_id": f"conversation-{seed}",
            "app": {"name": "chat", "version": "1.0"},
            "consent": {"training": True, "policy_version": "v1"},
            "response_id": f"response-{seed}-{i}",
            "value": "up",
        }
        for i in range(count)
    ]


ALL_TEXTS = "SELECT event_id, lake_file, source_offset FROM events"
"""The ``texts`` of :func:`query` that reads every loaded event's texts."""


def query(data_dir: Path, sql: str, *, texts: str | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the warehouse; with ``texts`` (a ``SELECT`` of events), their prompts
    and texts read from the lake into ``lake_texts`` first."""
    engine = open_warehouse(data_dir)
    with engine.connect() as connection:
        db = raw(connection)
        if texts is not None:
            fetch_texts(db, Lake.in_data_dir(data_dir).root, texts)
        rows: list[tuple[Any, ...]] = db.execute(sql).fetchall()
    engine.dispose()
    return rows
