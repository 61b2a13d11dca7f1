"""Removing users' events from the lake and every warehouse table (the erasure's first steps).

Both steps are idempotent: a user's events that are already gone are simply not found again,
so an erasure interrupted anywhere can be run again from the start.

The lake: the files holding any of the pseudonyms are found with one DuckDB scan of the
``user_pseudonym`` column, and each is rewritten without those rows under a temporary name
beside it, flushed, and renamed over the original (``os.replace``: readers see the old file or
the new one, never half of one). The file keeps its name, so the offsets it covers, and with
them the ingest workers' resume points, stay the same. A file left with no rows is kept, empty,
for the same reason.

The warehouse: rows are deleted from every table that holds the users' events or what was
derived from them: by pseudonym, by the conversations those events belong to, and, in the
model tables, by any column naming one of those events or one of the responses generated in
those conversations (a pair's rejected side, an A/B comparison's loser, an edit, an event in a
pair's lineage, whatever the row's own conversation); a review queue's items go by the same
columns, reviews with their items and by their reviewer's pseudonym; ``lake_files`` row counts
are updated to match the rewritten files, and the models' incremental state is cleared, so the
next transform run rebuilds them in full from what is left (``signal_calibration`` and
``signal_days``, counts only, wait for that run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import WarehouseError
from warehouse.lake import Lake, LakeFile, without_users
from warehouse.lineage import LABEL_LINEAGE
from warehouse.reviews import refresh_review_rows

if TYPE_CHECKING:
    from warehouse.table import LakeTable

ERASE_PREFIX = ".erasing-"


@dataclass
class LakeRewrite:
    """One lake file rewritten without some rows."""

    path: str
    """Relative to the lake root."""
    removed: int
    kept: int


def erase_from_lake(
    lake: Lake, pseudonyms: list[str], table: LakeTable | None = None
) -> list[LakeRewrite]:
    """Rewrite every lake file that holds one of ``pseudonyms`` without those rows: every file
    landed, committed to the lake's table or not. ``table``: the lake's table, whose entries of
    the rewritten files are then replaced in one snapshot (their row counts and sizes change,
    their names do not)."""
    files = sorted(lake.files())
    if not files or not pseudonyms:
        return []
    wanted = set(pseudonyms)
    hits = _files_holding(lake, files, pseudonyms)
    rewrites = []
    for landed in hits:
        if lake.objects is None:
            path = Path(landed.path)
            removed, kept = Lake.rewrite_without_users(
                path, wanted, temporary=path.with_name(ERASE_PREFIX + path.name)
            )
        else:
            removed, kept = _rewrite_object(lake, landed, wanted)
        rewrites.append(LakeRewrite(path=lake.relative(landed), removed=removed, kept=kept))
    if table is not None and hits:
        table.replace(refreshed=hits)
    return rewrites


def _files_holding(lake: Lake, files: list[LakeFile], pseudonyms: list[str]) -> list[LakeFile]:
    """The files with a row of one of ``pseudonyms``: one DuckDB scan of the ``user_pseudonym``
    column on a local disk, that column of each file through pyarrow on object storage."""
    if lake.objects is not None:
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = pa.array(pseudonyms, pa.string())
        return [
            landed for landed in files
            if pc.any(pc.is_in(
                lake.read_table(landed, ["user_pseudonym"]).column("user_pseudonym"), wanted
            )).as_py()
        ]  # fmt: skip
    import duckdb

    by_path = {str(f.path): f for f in files}
    with duckdb.connect() as db:
        try:
            hits = db.execute(
                "SELECT DISTINCT filename FROM read_parquet($files, filename = true, "
                "union_by_name = true) WHERE user_pseudonym IN (SELECT unnest($users)) "
                "ORDER BY filename",
                {"files": list(by_path), "users": pseudonyms},
            ).fetchall()
        except duckdb.Error as exc:  # a damaged file: DuckDB's first line names it
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WarehouseError(f"could not read the lake {lake.root}: {first[:300]}") from None
    return [by_path[filename] for (filename,) in hits]


def _rewrite_object(lake: Lake, landed: LakeFile, pseudonyms: set[str]) -> tuple[int, int]:
    """Rewrite a lake object without the rows of ``pseudonyms``: uploaded again under its own
    key, which replaces it whole (an object is never half written), and this host's copy of it
    dropped. Returns (events removed, events kept)."""
    frame = lake.read_frame(landed)
    keep = without_users(frame, pseudonyms)
    lake.rewrite(landed, keep, temporary_prefix=ERASE_PREFIX)
    return frame.height - keep.height, keep.height


def erase_from_warehouse(db: Any, pseudonyms: list[str]) -> dict[str, int]:
    """Delete the users' rows from every table (in one transaction); rows deleted per table."""
    tables = {
        name: {column for (column,) in db.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = $t", {"t": name}
        ).fetchall()}
        for (name,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    }  # fmt: skip
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute(
            "CREATE OR REPLACE TEMP TABLE erased_users AS SELECT unnest($users) AS user_pseudonym",
            {"users": pseudonyms},
        )
        db.execute(
            "CREATE OR REPLACE TEMP TABLE erased_conversations AS SELECT DISTINCT conversation_id "
            "FROM events WHERE user_pseudonym IN (SELECT user_pseudonym FROM erased_users)"
        )
        # The responses generated in those conversations (not those their copies, ratings or
        # A/B choices named: another user's answer an erased user copied stays theirs).
        db.execute(
            "CREATE OR REPLACE TEMP TABLE erased_responses AS SELECT DISTINCT response_id "
            "FROM events WHERE type = 'generation' AND response_id IS NOT NULL AND "
            "conversation_id IN (SELECT conversation_id FROM erased_conversations)"
        )
        db.execute(
            "CREATE OR REPLACE TEMP TABLE erased_events AS SELECT event_id FROM events "
            "WHERE user_pseudonym IN (SELECT user_pseudonym FROM erased_users) "
            "OR conversation_id IN (SELECT conversation_id FROM erased_conversations)"
        )
        # The labels whose lineage names an erased event (their evidence counted it): found
        # before any table loses its rows, as the lineage is computed from them.
        if "labels" in tables:
            db.execute(
                "CREATE OR REPLACE TEMP TABLE erased_labels AS SELECT response_id "
                f"FROM ({LABEL_LINEAGE}) "
                "WHERE list_has_any(event_ids, (SELECT list(event_id) FROM erased_events))"
            )
        deleted: dict[str, int] = {}
        for table, columns in sorted(tables.items()):
            conditions = []
            for column in sorted(c for c in columns if c.endswith("pseudonym")):
                # user_pseudonym, and reviewer_pseudonym: a reviewer's id is pseudonymised as
                # a user id is, so erasing that id erases the reviews written under it.
                conditions.append(f"{column} IN (SELECT user_pseudonym FROM erased_users)")
            if "conversation_id" in columns:
                conditions.append(
                    "conversation_id IN (SELECT conversation_id FROM erased_conversations)"
                )
            if table != "events":
                # Model rows naming an erased event or response, from any conversation. (Other
                # users' events naming a response of theirs stay: they are not the users' data.)
                for column in sorted(columns):
                    if column.endswith(("response_id", "response_a_id", "response_b_id")):
                        conditions.append(f"{column} IN (SELECT response_id FROM erased_responses)")
                    elif column.endswith("event_id"):
                        conditions.append(f"{column} IN (SELECT event_id FROM erased_events)")
                    elif column.endswith("event_ids"):  # lineage: the events behind a row
                        conditions.append(
                            f"list_has_any({column}, (SELECT list(event_id) FROM erased_events))"
                        )
            if table == "labels":
                conditions.append("response_id IN (SELECT response_id FROM erased_labels)")
            if not conditions:
                continue
            [(count,)] = db.execute(
                f"DELETE FROM {table} WHERE {' OR '.join(conditions)}"  # noqa: S608
            ).fetchall()
            if count:
                deleted[table] = int(count)
        if {"reviews", "review_items"} <= tables.keys():
            # A review goes with its item, whichever rule removed the item (its lineage named
            # an erased event of another conversation, say).
            [(count,)] = db.execute(
                "DELETE FROM reviews WHERE item_id NOT IN (SELECT item_id FROM review_items)"
            ).fetchall()
            if count:
                deleted["reviews"] = deleted.get("reviews", 0) + int(count)
        # The reviews left give signal_calibration's human precision at once (the other rows
        # wait for the next run, which rebuilds them from what is left).
        refresh_review_rows(db)
        if "model_state" in tables:
            # Rows elsewhere may have counted the erased events (a copy or an A/B choice that
            # named another conversation's response): the next run rebuilds every model.
            db.execute("DELETE FROM model_state")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return deleted


def refresh_lake_file_rows(db: Any, lake: Lake) -> int:
    """Set ``lake_files.rows`` to each file's row count (from its Parquet footer) where they
    differ, as after a rewrite; returns how many rows were corrected. Reading every footer
    (not only this run's rewrites) lets a re-run after a crash correct what the first run did."""
    recorded = dict(db.execute("SELECT path, rows FROM lake_files").fetchall())
    corrected = 0
    for landed in lake.files():
        relative = lake.relative(landed)
        if relative not in recorded:
            continue
        rows = lake.read_metadata(landed).num_rows
        if rows != recorded[relative]:
            db.execute(
                "UPDATE lake_files SET rows = $rows WHERE path = $path",
                {"rows": rows, "path": relative},
            )
            corrected += 1
    return corrected
