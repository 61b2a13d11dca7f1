"""Lake retention: delete lake files landed longer ago than the configured number of days.

Files are dated by their ``landed_date=`` folder (UTC). The newest file of each partition is
always kept, whatever its age: ingest workers resume after the highest offset they find in the
lake, and a partition with no file left would make them read the topic from its start again.

The warehouse keeps no texts (they are read from the lake), so it follows the lake:
``forget_missing_files`` deletes the events of every loaded file that is no longer in the lake,
and their ``lake_files`` rows, and clears the models' state so the next transform run rebuilds
them from what is left. That is what a full refresh would give, and it finds the files by
looking, so a pass interrupted between the two steps is finished by the next one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flywheel.errors import WarehouseError
from warehouse.lake import Lake, LakeFile
from warehouse.load import insert_events, landing_order
from warehouse.table import LakeTable


@dataclass
class Expired:
    """What a retention pass removed."""

    files: int = 0
    bytes: int = 0
    kept_as_resume_point: int = 0


def expire_lake_files(table: LakeTable, *, keep_days: int, today: date) -> Expired:
    """Delete files landed before ``today - keep_days`` (not the newest of any partition) from
    the lake: first out of the lake's table (one snapshot), then from the disk."""
    lake = table.lake
    cutoff = today - timedelta(days=keep_days)
    newest: dict[tuple[str, int], LakeFile] = {}
    files = list(lake.files())
    for landed in files:
        key = (landed.topic, landed.partition)
        if key not in newest or landed.last_offset > newest[key].last_offset:
            newest[key] = landed
    result = Expired()
    expired = []
    for landed in files:
        day = date.fromisoformat(landed.path.parent.name.removeprefix("landed_date="))
        if day >= cutoff:
            continue
        if newest[(landed.topic, landed.partition)] is landed:
            result.kept_as_resume_point += 1
            continue
        expired.append(landed)
    # Out of the table first: a crash in between leaves files no reader takes, deleted by the
    # next pass, never a table naming files that are gone.
    table.replace(removed=expired)
    for landed in expired:
        result.bytes += lake.delete(landed)
        result.files += 1
    if lake.objects is None:  # object storage has no folders to leave empty
        for folder in lake.root.glob("landed_date=*"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return result


def forget_missing_files(
    db: Any, lake: Lake, files: Iterable[LakeFile] | None = None
) -> tuple[int, int]:
    """Delete, in one transaction, the events of loaded files that are no longer in the lake
    and those files' rows, and clear the model state if any went; returns (files, events).

    An event landed again in a file still loaded (a resend older than the workers' dedupe
    window) is not lost: its next landing becomes the loaded one, as a full refresh would have
    it. A lake that holds none of the loaded files is refused (a wrong data dir, a lake not
    mounted), not taken as everything expired: retention always keeps each partition's newest
    file. ``files``: the lake's files to compare with (the transforms give the table's current
    files, so that files a compaction replaced are forgotten too); unset, every landed file."""
    recorded = [path for (path,) in db.execute("SELECT path FROM lake_files").fetchall()]
    in_lake = {
        lake.relative(landed): landed for landed in (lake.files() if files is None else files)
    }
    missing = [path for path in recorded if path not in in_lake]
    if not missing:
        return 0, 0
    if len(missing) == len(recorded) and not _covered(db, in_lake.values()):
        raise WarehouseError(
            f"the lake at {lake.root} holds none of the {len(recorded):,} files the warehouse "
            "loaded: is the data dir right? Nothing was deleted"
        )
    kept = set(recorded) - set(missing)
    present = lake.readable(f for name, f in in_lake.items() if name in kept)
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute(
            "CREATE OR REPLACE TEMP TABLE forgotten AS SELECT DISTINCT event_id FROM ("
            "SELECT event_id, lake_file FROM events UNION ALL "
            "SELECT event_id, lake_file FROM withheld_events) "
            "WHERE list_contains($paths, lake_file)",
            {"paths": missing},
        )
        [(events,)] = db.execute(
            "DELETE FROM events WHERE list_contains($paths, lake_file)", {"paths": missing}
        ).fetchall()
        db.execute(
            "DELETE FROM withheld_events WHERE list_contains($paths, lake_file)", {"paths": missing}
        )
        db.execute("DELETE FROM lake_files WHERE list_contains($paths, path)", {"paths": missing})
        holding = {filename for (filename,) in db.execute(
            "SELECT DISTINCT filename FROM read_parquet($files, filename = true) "
            "WHERE event_id IN (SELECT event_id FROM forgotten)",
            {"files": [str(f.path) for f in present]},
        ).fetchall()} if present else set()  # fmt: skip
        if holding:
            # Every other id of these files is in events: only the forgotten ones go in.
            insert_events(db, landing_order(f for f in present if str(f.path) in holding))
        db.execute("DELETE FROM model_state")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(missing), int(events)


def _covered(db: Any, files: Iterable[LakeFile]) -> bool:
    """Whether ``files`` cover the offsets of some file the warehouse loaded: files that replaced
    them (a compaction merges a partition's files into one), not a lake of something else."""
    by_partition: dict[tuple[str, int], list[LakeFile]] = {}
    for landed in files:
        by_partition.setdefault((landed.topic, landed.partition), []).append(landed)
    loaded = db.execute("SELECT topic, partition, first_offset FROM lake_files").fetchall()
    return any(
        f.first_offset <= first <= f.last_offset
        for topic, partition, first in loaded
        for f in by_partition.get((topic, partition), ())
    )
