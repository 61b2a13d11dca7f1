"""Upkeep of the lake's table: compaction of small files, expiry of old snapshots, and deletion
of the objects nothing references any more.

**Compaction** (``compact``): ingest workers land one file per micro-batch, so a partition of a
quiet topic gathers many small files, and every reader pays for each one. Consecutive committed
files of one partition and one landing day are merged into one file of up to ``target_rows``
rows, named for the offsets it covers, and swapped for them in one snapshot
(``LakeTable.replace``). A merge never spans two landing days, so retention still deletes by
day. The merge is written under the suppression list's landing lock, without any user erased
meanwhile: an erasure that rewrote the small files after they were read must not see its users
come back in the merged file (``privacy.suppression``).

**Expiry** (``expire``): snapshots older than ``older_than`` are dropped from the table's
metadata (the current one always stays), then every object under the table's location that no
remaining snapshot references is deleted: data files a compaction or retention replaced,
duplicates a commit left out (covered twice after a fenced worker's late upload), manifests and
manifest lists of expired snapshots. Landed files not committed yet (past a partition's
committed offset) are never touched, and metadata files younger than ``grace`` are kept, since
another writer may be committing them right now. pyiceberg's own expiry leaves the files in
place (apache/iceberg-python#2604), hence this pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.lake import LakeFile, file_name, without_users
from warehouse.table import LakeTable

if TYPE_CHECKING:
    from pyiceberg.table import Table

SuppressedUsers = Callable[[], AbstractContextManager[frozenset[str]]]
"""The suppression list's landing lock (``SuppressionList.landing``): held while a merged file
is written and committed, it yields the pseudonyms erased so far."""

TARGET_ROWS = 200_000
"""Rows a merged file holds at most (about 100 MiB of events at their usual size)."""


@dataclass
class Compacted:
    """What one compaction did."""

    merged: int = 0
    """Files written, each replacing ``replaced / merged`` files on average."""
    replaced: int = 0
    dropped_erased: int = 0
    """Rows left out of a merged file because their user was erased since they landed."""
    snapshot_id: int | None = None


@dataclass
class Expired:
    """What one expiry did."""

    snapshots: int = 0
    data_files: int = 0
    metadata_files: int = 0
    bytes: int = 0
    kept: list[str] = field(default_factory=list)
    """Objects not referenced but kept: younger than the grace period."""


def compact(
    table: LakeTable,
    *,
    target_rows: int = TARGET_ROWS,
    suppressed: SuppressedUsers | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> Compacted:
    """Merge runs of consecutive small files (see the module's docstring); returns counts."""
    import polars as pl

    lake = table.lake
    current = table.table()
    if current.current_snapshot() is None:
        return Compacted()
    rows = {
        task.file.file_path: task.file.record_count
        for task in current.scan().plan_files()
        if table.lake_file(task.file.file_path) is not None
    }
    runs = list(_runs(table, rows, target_rows))
    result = Compacted()
    for done, run in enumerate(runs, start=1):
        frame = pl.concat([lake.read_frame(landed) for landed in run], how="vertical_relaxed").sort(
            "source_offset"
        )
        first, last = run[0], run[-1]
        key = f"{Path(last.path).parent.name}/" + file_name(
            first.topic, first.partition, first.first_offset, last.last_offset
        )
        with suppressed() if suppressed is not None else nullcontext(frozenset()) as erased:
            if erased:
                kept = without_users(frame, erased)
                result.dropped_erased += frame.height - kept.height
                frame = kept
            path = lake.write_frame(key, frame)
            target = LakeFile(first.topic, first.partition, first.first_offset,
                              last.last_offset, Path(path))  # fmt: skip
            # One snapshot per merge, under the lock: an erasure waits for it, then finds the
            # merged file in the table.
            result.snapshot_id = table.replace(removed=run, added=[target])
        result.merged += 1
        result.replaced += len(run)
        if on_progress is not None:
            on_progress(done, len(runs))
    return result


def _runs(table: LakeTable, rows: dict[str, int], target_rows: int) -> Iterator[list[LakeFile]]:
    """Runs of two or more consecutive files of one partition and landing day, together at
    most ``target_rows`` rows."""
    by_group: dict[tuple[str, int, str], list[LakeFile]] = {}
    for path in rows:
        landed = table.lake_file(path)
        assert landed is not None
        by_group.setdefault(
            (landed.topic, landed.partition, Path(landed.path).parent.name), []
        ).append(landed)
    for files in by_group.values():
        files.sort()
        run: list[LakeFile] = []
        total = 0
        for landed in files:
            count = rows[table.iceberg_path(landed)]
            contiguous = not run or run[-1].last_offset + 1 == landed.first_offset
            if run and (not contiguous or total + count > target_rows):
                if len(run) > 1:
                    yield run
                run, total = [], 0
            run.append(landed)
            total += count
        if len(run) > 1:
            yield run


def expire(
    table: LakeTable,
    *,
    older_than: timedelta = timedelta(days=1),
    grace: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> Expired:
    """Expire snapshots older than ``older_than`` and delete what no snapshot references (see
    the module's docstring); returns counts."""
    now = now or datetime.now(UTC)
    result = Expired()
    current = table.table()
    snapshot = current.current_snapshot()
    if snapshot is None:
        return result
    cutoff_ms = int((now - older_than).timestamp() * 1000)
    old = [s.snapshot_id for s in current.snapshots()
           if s.timestamp_ms < cutoff_ms and s.snapshot_id != snapshot.snapshot_id]  # fmt: skip
    if old:
        current.maintenance.expire_snapshots().by_ids(old).commit()
        result.snapshots = len(old)
    current = table.table()
    data, metadata = _referenced(current)
    committed = table.committed_offsets(current)
    lake = table.lake
    # Data: landed files no snapshot holds, below their partition's committed offset.
    for landed in list(lake.files()):
        if table.iceberg_path(landed) in data:
            continue
        if landed.last_offset >= committed.get(landed.topic, {}).get(landed.partition, 0):
            continue  # not committed yet: a commit will take it
        result.bytes += lake.delete(landed)
        result.data_files += 1
    # Metadata: manifests, manifest lists and table metadata of no remaining snapshot.
    result.metadata_files, freed, result.kept = _delete_unreferenced_metadata(
        table, metadata, older=now - grace
    )
    result.bytes += freed
    return result


def _referenced(table: Table) -> tuple[set[str], set[str]]:
    """The data files and the metadata files (manifest lists, manifests, table metadata) the
    table's remaining snapshots reference."""
    data: set[str] = set()
    metadata: set[str] = {table.metadata_location}
    metadata |= {entry.metadata_file for entry in table.metadata.metadata_log}
    for snapshot in table.snapshots():
        metadata.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            metadata.add(manifest.manifest_path)
        for task in table.scan(snapshot_id=snapshot.snapshot_id).plan_files():
            data.add(task.file.file_path)
    return data, {_plain_path(p) for p in metadata}


def _plain_path(path: str) -> str:
    return path.removeprefix("s3://").removeprefix("file://")


def _delete_unreferenced_metadata(
    table: LakeTable, referenced: set[str], *, older: datetime
) -> tuple[int, int, list[str]]:
    from pyarrow import fs

    location = _plain_path(table.location).rstrip("/") + "/metadata"
    filesystem = (
        table.lake.objects.filesystem() if table.lake.objects is not None else fs.LocalFileSystem()
    )
    deleted = freed = 0
    kept = []
    try:
        found = filesystem.get_file_info(fs.FileSelector(location, recursive=True))
    except FileNotFoundError:
        return 0, 0, []
    for info in found:
        if info.type != fs.FileType.File or info.path in referenced:
            continue
        mtime = info.mtime
        if mtime is not None and mtime.tzinfo is None:
            mtime = mtime.replace(tzinfo=UTC)
        if mtime is not None and mtime > older:
            kept.append(info.path)  # perhaps another writer's commit in progress
            continue
        filesystem.delete_file(info.path)
        deleted += 1
        freed += int(info.size or 0)
    return deleted, freed, kept
