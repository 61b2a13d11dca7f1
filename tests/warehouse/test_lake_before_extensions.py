"""A lake landed before the lake had ``metadata`` and ``prompt_structure``, read after: files
without the two columns and an Iceberg table created and committed without them, on a local
disk and on S3 (moto). New files land beside the old; then the table's schema evolves at the
next commit, the loader loads both kinds, the export's texts read both, compaction merges
them, the table reads them through pyiceberg, DuckDB and polars, and an erasure rewrites both.

The old files are the pipeline's frames without the two columns: the previous release wrote
exactly that (the columns were added last, nothing else changed), and created its table from
that schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from flywheel.settings import Settings
from flywheel.shell.erasure import erase_users
from tests.factories import generation, make_event
from tests.helpers.datasets import KEYRING
from tests.helpers.lake import NEW_COLUMNS, create_table_before, land
from tests.helpers.s3 import S3Bucket
from transforms.runner import run_transforms
from warehouse.db import open_warehouse, raw
from warehouse.lake import open_lake
from warehouse.maintenance import compact
from warehouse.table import LakeTable
from warehouse.texts import fetch_texts

TOOL_CALL = {"id": "call_1", "type": "function",
             "function": {"name": "search_docs", "arguments": '{"query": "lists"}'}}  # fmt: skip


def old_traffic(user: str, index: int) -> list[dict[str, Any]]:
    conversation = f"c-{user}-{index}"
    return [
        generation(f"r-{user}-{index}", f"m-{user}-{index}", user_id=user,
                   conversation_id=conversation),
        make_event("rating", response_id=f"r-{user}-{index}", user_id=user,
                   conversation_id=conversation),
    ]  # fmt: skip


def new_traffic(user: str, index: int) -> list[dict[str, Any]]:
    conversation = f"c-{user}-{index}"
    prompt = [
        {"role": "user", "content": [{"type": "text", "text": "How do I sort?"}]},
        {"role": "assistant", "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sorted(xs)"},
    ]
    return [
        generation(f"r-{user}-{index}", f"m-{user}-{index}", user_id=user, prompt=prompt,
                   conversation_id=conversation, metadata={"experiment": "exp-7"}),
        make_event("rating", response_id=f"r-{user}-{index}", user_id=user,
                   conversation_id=conversation, metadata={"experiment": "exp-7"}),
    ]  # fmt: skip


def read_before_and_after(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole story on the lake ``settings`` names (see the module's docstring)."""
    lake = open_lake(settings)
    table = LakeTable.of(settings, lake)
    create_table_before(table)
    # The previous release landed and committed two files (its commits never evolve).
    land(lake, old_traffic("victim", 0) + old_traffic("alice", 0), first=0, before=True)
    land(lake, old_traffic("bob", 1), first=4, before=True)
    with monkeypatch.context() as patched:
        patched.setattr(LakeTable, "_with_lake_columns", lambda self, found: found)
        assert len(table.commit().files) == 2
        assert "metadata" not in table.table().schema().column_names  # still the old table
    # This release lands beside them: a file of new events, and one of old and new mixed.
    land(lake, new_traffic("victim", 2) + new_traffic("carol", 2), first=6, before=False)
    land(lake, old_traffic("dave", 3) + new_traffic("erin", 3), first=10, before=False)

    run = run_transforms(settings.data_dir, lake=lake, table=table)  # commits, evolves, loads

    assert run.events_loaded == 14
    fields = [field.name for field in table.table().schema().fields]
    assert fields[-2:] == list(NEW_COLUMNS)
    engine = open_warehouse(settings.data_dir)
    with engine.connect() as connection:
        db = raw(connection)
        stored = dict(
            db.execute("SELECT response_id || ':' || type, metadata FROM events").fetchall()
        )
        fetch_texts(db, lake.readable_root(lake.relative(f) for f in table.data_files()),
                    "SELECT event_id, lake_file, source_offset FROM events "
                    "WHERE type = 'generation'")  # fmt: skip
        texts = db.execute("SELECT prompt, structure FROM lake_texts ORDER BY event_id")
        structures = [json.loads(s) if s else None for _, s in texts.fetchall()]
    engine.dispose()
    assert stored["r-victim-0:generation"] is None and stored["r-dave-3:rating"] is None
    assert json.loads(stored["r-erin-3:generation"]) == {"experiment": "exp-7"}
    assert structures.count(None) == 4 and len(structures) == 7
    called = [s for s in structures if s is not None]
    assert all(s[1]["tool_calls"][0]["name"] == "search_docs" for s in called)

    # Every engine reads the evolved table: old rows NULL in the new columns.
    scanned = table.table().scan().to_arrow()
    by_pyiceberg = sorted(zip(scanned["event_id"].to_pylist(), scanned["metadata"].to_pylist(),
                              strict=True))  # fmt: skip
    with duckdb.connect() as db:
        db.register("scanned", scanned)
        assert sorted(db.execute("SELECT event_id, metadata FROM scanned").fetchall()) == (
            by_pyiceberg
        )
    assert sum(value is not None for _, value in by_pyiceberg) == 6
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")
    frame = pl.scan_iceberg(table.table()).select("event_id", "metadata").collect()
    assert sorted(frame.rows()) == by_pyiceberg

    # Compaction merges old and new files into one; the rows are the same.
    assert compact(table).replaced == 4
    merged = table.table().scan(selected_fields=("event_id", "metadata")).to_arrow()
    assert sorted(merged.to_pylist(), key=str) == sorted(
        ({"event_id": e, "metadata": m} for e, m in by_pyiceberg), key=str
    )

    # An erasure finds the user in old and new rows alike.
    erased = erase_users(settings, ["victim"], KEYRING)
    # Four rows in the merged file, four in the files it replaced (kept until expiry).
    assert erased.lake_events_removed == 8
    victim = KEYRING.pseudonym("victim")
    left = table.table().scan().to_arrow()
    assert victim not in left["user_pseudonym"].to_pylist() and left.num_rows == 10


def test_a_local_lake_landed_before_the_new_columns_is_read_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_before_and_after(Settings(data_dir=tmp_path / "data"), monkeypatch)


def test_a_lake_on_s3_landed_before_the_new_columns_is_read_after(
    tmp_path: Path, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data", lake={"url": s3_bucket.url("lake")})
    read_before_and_after(settings, monkeypatch)
