"""The suppression list: pseudonyms of erased users, whose later events are dropped at ingest.

One pseudonym per line in ``<data dir>/privacy/suppressed-pseudonyms.txt`` (the pseudonyms
under every key version held when the user was erased; never a raw id). Erasure appends to it
before touching anything else, so events landing during an erasure are already dropped. Readers
(the ingest pipeline) reload it when its modification time or size changes, checked at most once
a second.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FILE = Path("privacy") / "suppressed-pseudonyms.txt"


def suppression_file(data_dir: Path) -> Path:
    """Where a data dir's suppression list lives."""
    return data_dir / FILE


def add_suppressed(path: Path, pseudonyms: list[str]) -> int:
    """Append the pseudonyms not listed yet (durably); returns how many were new."""
    known = SuppressionList(path).current()
    new = sorted(set(pseudonyms) - known)
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write("".join(f"{p}\n" for p in new))
            handle.flush()
            os.fsync(handle.fileno())
    return len(new)


class SuppressionList:
    """The suppressed pseudonyms, re-read when the file changes."""

    def __init__(self, path: Path, *, check_every_s: float = 1.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        self._pseudonyms: frozenset[str] = frozenset()

    def current(self) -> frozenset[str]:
        """The pseudonyms listed now (re-read if the file changed since the last look)."""
        now = time.monotonic()
        if now - self._checked < self.check_every_s:
            return self._pseudonyms
        self._checked = now
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._pseudonyms = None, frozenset()
            return self._pseudonyms
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            lines = self.path.read_text().split()
            self._pseudonyms = frozenset(lines)
            self._stamp = stamp
        return self._pseudonyms
