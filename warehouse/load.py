"""Incremental load: new lake files into the warehouse's ``events`` table, each event once.

A lake file is loaded in one transaction together with its row in ``lake_files``, so a crash
leaves it either loaded or not, never half. Files are loaded in landing order (landing date, then
topic, partition and offsets), and within a chunk of files the first copy of an event id wins:
the same event landed twice (a resend older than the workers' dedupe window) keeps its first
landing, whether it is loaded in one run or across several. ``full_refresh`` empties both tables
and loads everything again, which gives the same ``events`` table.

Only the columns the models, erasure and export select on are copied (``COLUMNS``); prompts and
texts stay in the lake, and ``events.lake_file`` says which file to read them from
(``warehouse.texts``).

Each file gets the next number of the ``lake_file_seq`` sequence (``lake_files.seq``), which never
restarts: the models remember the highest number they have seen, and treat the events of files
numbered above it as new (transforms/incremental.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from warehouse.db import raw
from warehouse.lake import Lake, LakeFile
from warehouse.schema import events

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

FILES_PER_TRANSACTION = 200

COLUMNS = ", ".join(
    column.name
    for column in events.columns
    if column.name not in ("lake_file", "prompt_response_ids")
)
"""The lake columns ``events`` keeps, as the schema has them (no texts: they are read from the
lake when needed); the loader adds ``lake_file`` and ``prompt_response_ids``."""

READABLE_TIME = (
    "coalesce(occurred_at BETWEEN TIMESTAMPTZ '0001-01-01 00:00:00+00' "
    "AND TIMESTAMPTZ '9999-12-31 23:59:59.999999+00', false)"
)
"""Whether an event's ``occurred_at`` is one every reader can take: not NULL and within years 1
to 9999 in UTC. The contract refuses other times now, but files landed before it did may hold
them (a client's "9999-12-31T23:59:59-23:59" is year 10000 in UTC): DuckDB loads such a time, and
Python, pandas and the export cannot read it back. The loader leaves those events out (counted
and logged by the run), so one bad event cannot stop every run or export that follows."""

_LOADED_BEFORE = """
CREATE OR REPLACE TEMP TABLE loaded_before AS
-- Events of these files loaded before (by an earlier chunk or run): they keep that landing.
-- Found from the new files' ids (a small hash table), not from every id in the warehouse.
SELECT event_id FROM events WHERE event_id IN (SELECT event_id FROM read_parquet($files))
UNION ALL
SELECT event_id FROM withheld_events WHERE event_id IN (SELECT event_id FROM read_parquet($files))
"""

_INSERT_EVENTS = f"""
INSERT INTO events BY NAME
SELECT
    {COLUMNS},
    -- $files are in landing order; $names are the same files as recorded in lake_files.
    $names[list_position($files, filename)] AS lake_file,
    -- The answers a prompt continues from, read from the nested column (the prompt itself
    -- stays in the lake).
    [m.response_id FOR m IN prompt IF m.response_id IS NOT NULL] AS prompt_response_ids
-- By name: files landed before a column was added (metadata) read NULL in it.
FROM read_parquet($files, filename = true, union_by_name = true)
WHERE event_id NOT IN (SELECT event_id FROM loaded_before) AND {READABLE_TIME}
-- In landing order: the table's row groups are full but the last. Unsorted, the parallel insert
-- left partly filled row groups in the middle, which DuckDB's checkpoint merged at the next
-- run's first append, rewriting most of the table (and the sort costs less than that merge).
ORDER BY list_position($files, filename), source_offset
"""

_LANDED_TWICE = f"""
SELECT event_id FROM read_parquet($files)
WHERE event_id NOT IN (SELECT event_id FROM loaded_before) AND {READABLE_TIME}
GROUP BY event_id HAVING count(*) > 1
"""
"""Ids landed more than once within these files (a resend older than the workers' dedupe
window); usually none."""

_UNREADABLE = f"""
SELECT event_id FROM read_parquet($files)
WHERE NOT {READABLE_TIME}
ORDER BY event_id
"""
"""Events of these files left out for their time (see ``READABLE_TIME``); usually none."""

_LOADED_UNREADABLE = f"""
DELETE FROM events WHERE NOT {READABLE_TIME} RETURNING event_id
"""
"""Events with such a time that an earlier version of the loader did load."""

_DROP_LATER_LANDINGS = """
-- Keep the first landing of each id landed twice within these files.
DELETE FROM events
WHERE rowid IN (
    SELECT rowid
    FROM events
    WHERE event_id IN (SELECT unnest($twice)) AND list_contains($names, lake_file)
    QUALIFY row_number() OVER (
        PARTITION BY event_id ORDER BY list_position($names, lake_file), source_offset) > 1
)
"""


@dataclass
class LoadResult:
    """What one load did."""

    files: int = 0
    rows: int = 0
    """Rows read from the new files."""
    new_events: int = 0
    """Events that were not in the warehouse yet."""
    unreadable: list[str] = field(default_factory=list)
    """Ids of the events of the new files left out for their time (``READABLE_TIME``)."""
    removed: list[str] = field(default_factory=list)
    """Ids of the events with such a time that were in the warehouse (loaded by an earlier
    version) and were removed: the models must be rebuilt without them."""
    seconds: float = 0.0


def relative(landed: LakeFile) -> str:
    """A lake file's path as recorded: ``landed_date=.../<name>``, wherever the lake is."""
    return Lake.relative(landed)


def pending_files(connection: Connection, files: Iterable[LakeFile]) -> list[LakeFile]:
    """Those of ``files`` not loaded yet, in landing order."""
    loaded = {row[0] for row in raw(connection).execute("SELECT path FROM lake_files").fetchall()}
    return landing_order(f for f in files if relative(f) not in loaded)


def landing_order(files: Iterable[LakeFile]) -> list[LakeFile]:
    """Files in the order they landed: landing date, then topic, partition and offsets."""
    return sorted(files, key=lambda f: (f.path.parent.name, f.topic, f.partition, f.first_offset))


def load_lake(
    connection: Connection,
    lake_files: Iterable[LakeFile],
    *,
    run_id: str,
    full_refresh: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> LoadResult:
    """Load those of ``lake_files`` not loaded yet (all of them with ``full_refresh``): the
    files of the lake table's current snapshot (``warehouse.table``), at paths DuckDB reads
    (``Lake.readable``)."""
    started = time.perf_counter()
    db = raw(connection)
    result = LoadResult()
    with connection.begin():
        if full_refresh:
            db.execute("DELETE FROM events")
            db.execute("DELETE FROM withheld_events")
            db.execute("DELETE FROM lake_files")
        else:
            result.removed = sorted(row[0] for row in db.execute(_LOADED_UNREADABLE).fetchall())
    files = pending_files(connection, lake_files)
    for start in range(0, len(files), FILES_PER_TRANSACTION):
        chunk = files[start : start + FILES_PER_TRANSACTION]
        with connection.begin():
            rows, new = _load_chunk(db, chunk, run_id=run_id)
            result.unreadable += [
                row[0]
                for row in db.execute(
                    _UNREADABLE, {"files": [str(f.path) for f in chunk]}
                ).fetchall()
            ]
        result.files += len(chunk)
        result.rows += rows
        result.new_events += new
        if on_progress is not None:
            on_progress(result.files, len(files))
    result.seconds = time.perf_counter() - started
    return result


_WITHHOLD = """
-- Events without training consent (landed with WITHOUT_CONSENT=keep) count for nothing: listed
-- by id only, once their first landing is known.
INSERT INTO withheld_events
SELECT event_id, lake_file FROM events
WHERE list_contains($names, lake_file) AND consent_training IS NOT TRUE
"""


def insert_events(db: Any, files: Sequence[LakeFile]) -> None:
    """Insert the events of ``files`` (in landing order) whose ids ``events`` (or
    ``withheld_events``) does not hold yet, each id once: its first landing among them. Those
    without training consent go to ``withheld_events`` instead."""
    names = [relative(f) for f in files]
    paths = [str(f.path) for f in files]
    db.execute(_LOADED_BEFORE, {"files": paths})
    db.execute(_INSERT_EVENTS, {"files": paths, "names": names})
    twice = [event_id for (event_id,) in db.execute(_LANDED_TWICE, {"files": paths}).fetchall()]
    if twice:
        db.execute(_DROP_LATER_LANDINGS, {"names": names, "twice": twice})
    if db.execute(_WITHHOLD, {"names": names}).fetchone()[0]:
        db.execute(
            "DELETE FROM events WHERE list_contains($names, lake_file) "
            "AND consent_training IS NOT TRUE",
            {"names": names},
        )


def _load_chunk(db: object, chunk: Sequence[LakeFile], *, run_id: str) -> tuple[int, int]:
    """Insert a chunk's new events and record its files; returns (rows read, new events)."""
    names = [relative(f) for f in chunk]
    paths = [str(f.path) for f in chunk]
    execute = db.execute  # type: ignore[attr-defined]
    insert_events(db, chunk)
    # Row counts from the files' footers: no second scan of the data.
    rows_by_path = dict(
        execute(
            "SELECT file_name, num_rows FROM parquet_file_metadata($files)", {"files": paths}
        ).fetchall()
    )
    counts = {name: rows_by_path.get(path, 0) for name, path in zip(names, paths, strict=True)}
    new = dict(
        execute(
            "SELECT lake_file, count(*) FROM events WHERE list_contains($names, lake_file) "
            "GROUP BY ALL",
            {"names": names},
        ).fetchall()
    )
    now = datetime.now(UTC)
    execute(
        "INSERT INTO lake_files (path, topic, partition, first_offset, last_offset, rows, "
        "run_id, loaded_at, new_events, seq) SELECT *, nextval('lake_file_seq') FROM ("
        "SELECT UNNEST($path), UNNEST($topic), UNNEST($partition), UNNEST($first), "
        "UNNEST($last), UNNEST($rows), $run, $now, UNNEST($new))",
        {
            "path": names,
            "topic": [f.topic for f in chunk],
            "partition": [f.partition for f in chunk],
            "first": [f.first_offset for f in chunk],
            "last": [f.last_offset for f in chunk],
            "rows": [counts.get(name, 0) for name in names],
            "run": run_id,
            "now": now,
            "new": [new.get(name, 0) for name in names],
        },
    )
    return sum(counts.values()), sum(new.values())
