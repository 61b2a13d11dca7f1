"""The suppression list: pseudonyms of erased users, whose later events are dropped at ingest.

One pseudonym per line in ``<data dir>/privacy/suppressed-pseudonyms.txt`` (the pseudonyms
under every key version held when the user was erased; never a raw id). Erasure appends to it
before touching anything else. Readers (the ingest pipeline) reload it when its modification
time or size changes, checked at most once a second while batches are prepared.

That check alone would let an erasure miss events: a batch prepared a moment before the users
were listed, then renamed into the lake after the erasure scanned it, would survive the erasure
(and a Kafka worker prepares batches ahead of landing them). So landing and listing take turns on
a lock file beside the list (``landing.lock``, ``fcntl.flock``): every landing holds it shared
from its last look at the list (``SuppressionList.landing``) until its file has its final name,
and ``add_suppressed`` holds it exclusively while it lists users. A batch therefore either
landed before its users were listed, and the erasure's scan of the lake, which comes after,
finds it; or it sees them listed and drops their events. The lock is advisory and needs every
writer of the lake on one host, or on a shared file system with working ``flock``.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILE = Path("privacy") / "suppressed-pseudonyms.txt"
LANDING_LOCK = "landing.lock"
"""The lock file's name, beside the list."""


def suppression_file(data_dir: Path) -> Path:
    """Where a data dir's suppression list lives."""
    return data_dir / FILE


@contextmanager
def _landing_lock(path: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the lock file beside the list ``path`` (shared by landings, exclusive to listing)."""
    lock = path.with_name(LANDING_LOCK)
    lock.parent.mkdir(parents=True, exist_ok=True)
    # One open file description per holder: flock then also orders threads of one process.
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def add_suppressed(path: Path, pseudonyms: list[str]) -> int:
    """Append the pseudonyms not listed yet (durably); returns how many were new. Waits for the
    batches landing now, and holds new landings back until the users are listed."""
    with _landing_lock(path, exclusive=True):
        known = SuppressionList(path).current()
        new = sorted(set(pseudonyms) - known)
        if new:
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

    @contextmanager
    def landing(self) -> Iterator[frozenset[str]]:
        """Hold the landing lock while a batch gets its final name in the lake, and yield the
        pseudonyms listed now (looked at afresh): the batch must not land any of them."""
        with _landing_lock(self.path, exclusive=False):
            yield self.current(fresh=True)

    def current(self, *, fresh: bool = False) -> frozenset[str]:
        """The pseudonyms listed now (re-read if the file changed since the last look, which is
        at most ``check_every_s`` ago unless ``fresh``)."""
        now = time.monotonic()
        if not fresh and now - self._checked < self.check_every_s:
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
