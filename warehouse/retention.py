"""Lake retention: delete lake files landed longer ago than the configured number of days.

Files are dated by their ``landed_date=`` folder (UTC). The newest file of each partition is
always kept, whatever its age: ingest workers resume after the highest offset they find in the
lake, and a partition with no file left would make them read the topic from its start again.
The warehouse keeps what it already loaded (a full refresh after expiry no longer has it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from warehouse.lake import Lake, LakeFile


@dataclass
class Expired:
    """What a retention pass removed."""

    files: int = 0
    bytes: int = 0
    kept_as_resume_point: int = 0


def expire_lake_files(lake: Lake, *, keep_days: int, today: date) -> Expired:
    """Delete files landed before ``today - keep_days`` (not the newest of any partition)."""
    cutoff = today - timedelta(days=keep_days)
    newest: dict[tuple[str, int], LakeFile] = {}
    files = list(lake.files())
    for landed in files:
        key = (landed.topic, landed.partition)
        if key not in newest or landed.last_offset > newest[key].last_offset:
            newest[key] = landed
    result = Expired()
    for landed in files:
        day = date.fromisoformat(landed.path.parent.name.removeprefix("landed_date="))
        if day >= cutoff:
            continue
        if newest[(landed.topic, landed.partition)] is landed:
            result.kept_as_resume_point += 1
            continue
        result.bytes += landed.path.stat().st_size
        landed.path.unlink()
        result.files += 1
    for folder in lake.root.glob("landed_date=*"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return result
