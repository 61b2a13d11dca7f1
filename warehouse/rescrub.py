"""Scrubbing landed lake files again, after the scrubber learned to find more (the rescrub's lake
and warehouse steps; the shell's ``flywheel.shell.rescrub`` walks them and the datasets).

The lake: every landed file (committed to the table or not) is read and handed to a rescrub
function (the anonymiser's, ``ingest.scrubbing.ScrubbingAnonymiser.rescrub``, which this layer
does not import); a file whose texts or identifiers it changes is rewritten in place as erasure
rewrites one (``Lake.rewrite``: a hidden name renamed over it, or the object uploaded again
whole), so it keeps its name, its offsets and its rows. A file the current scrubber already
finds nothing in is left alone: a rescrub that ran to the end, run again, rewrites nothing.

The warehouse: it holds no texts, but it does hold the identifier columns the scrubber may now
replace (``ingest.anonymiser.IDENTIFIER_COLUMNS``), and the models built from the old texts.
``forget_rescrubbed`` deletes the events loaded from the rewritten files and those files'
``lake_files`` rows, and clears the models' state: the next transform run loads the files again
as new ones and rebuilds every model from the clean texts, which is what it does for files a
compaction replaced (``warehouse.retention.forget_missing_files``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from warehouse.lake import Lake, LakeFile

if TYPE_CHECKING:
    import polars as pl

RESCRUB_PREFIX = ".rescrubbing-"

Rescrub = Callable[["pl.DataFrame"], "tuple[pl.DataFrame, Counter[str]]"]
"""A landed frame scrubbed again, and the count per kind of the values it replaced."""


@dataclass
class FileRescrub:
    """One lake file the scrubber changes: where, and how many values of each kind."""

    path: str
    """Relative to the lake root (``landed_date=.../<name>``)."""
    values: dict[str, int] = field(default_factory=dict)

    @property
    def replaced(self) -> int:
        """Values replaced, all kinds together."""
        return sum(self.values.values())


def files_to_rescrub(
    lake: Lake, rescrub: Rescrub, *, on_file: Callable[[int, int], None] | None = None
) -> Iterator[tuple[LakeFile, FileRescrub]]:
    """The landed files ``rescrub`` would change, in path order, with what it would replace
    (nothing is written; a file's rows are held only while it is looked at)."""
    files = sorted(lake.files())
    for done, landed in enumerate(files, start=1):
        _, counts = rescrub(lake.read_frame(landed))
        if on_file is not None:
            on_file(done, len(files))
        if counts:
            yield landed, FileRescrub(lake.relative(landed), dict(sorted(counts.items())))


def rewrite_rescrubbed(lake: Lake, landed: LakeFile, rescrub: Rescrub) -> FileRescrub | None:
    """Rewrite ``landed`` scrubbed again, if that changes it; what was replaced, or None (the
    file was already clean: a re-run after a crash finds the files it rewrote so)."""
    frame, counts = rescrub(lake.read_frame(landed))
    if not counts:
        return None
    lake.rewrite(landed, frame, temporary_prefix=RESCRUB_PREFIX)
    return FileRescrub(lake.relative(landed), dict(sorted(counts.items())))


def remove_leftovers(lake: Lake) -> int:
    """Delete the hidden files of a rescrub cut off between writing and renaming (local lakes
    only: an object is uploaded whole or not at all); returns how many."""
    if lake.objects is None and lake.root.is_dir():
        leftovers = list(lake.root.glob(f"landed_date=*/{RESCRUB_PREFIX}*"))
        for leftover in leftovers:
            leftover.unlink(missing_ok=True)
        return len(leftovers)
    return 0


def forget_rescrubbed(db: Any, paths: list[str]) -> int:
    """Delete, in one transaction, the events loaded from the lake files ``paths`` (relative to
    the lake root) and their ``lake_files`` rows, and clear the model state: the next transform
    run loads them again and rebuilds every model. Returns the events deleted."""
    if not paths:
        return 0
    db.execute("BEGIN TRANSACTION")
    try:
        [(events,)] = db.execute(
            "DELETE FROM events WHERE list_contains($paths, lake_file)", {"paths": paths}
        ).fetchall()
        db.execute(
            "DELETE FROM withheld_events WHERE list_contains($paths, lake_file)", {"paths": paths}
        )
        db.execute("DELETE FROM lake_files WHERE list_contains($paths, path)", {"paths": paths})
        db.execute("DELETE FROM model_state")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return int(events)
