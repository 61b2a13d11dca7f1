"""Embedded mode: the API's sink runs the ingest pipeline in-process, with no Kafka at all.

Accepted requests become micro-batches of the pseudo-topic ``embedded`` (partition 0):
validated again, deduplicated, anonymised and landed in the lake before the API answers 202.
Everything downstream of the lake is the same as with Kafka. Offsets are the lake's own
sequence, so a restart continues where the lake ends.

**Group commit.** ``publish`` queues a request and waits. One writer thread takes every request
waiting when it is free (whole requests, up to ``max_batch_events`` events) and lands them as one
batch: one file, written under a temporary name, fsynced, renamed, its folder fsynced. Only then
are the requests answered, so a 202 still means the events are on disk, and a request's events
are always in one file: the rename lands all of them or none. No timer: a group is what arrived
while the previous file was being written, so a lone client waits for nothing, and 100 concurrent
ones share a file instead of paying a fsync each.

**One process per data dir.** Two embedded processes would number files from the same sequence
and overwrite each other's. The sink holds an exclusive ``flock`` on ``lake/embedded.lock``
from construction to ``close``; a second process is refused at start with a ``ConfigError``
(the CLI's one red line, exit code 1). The kernel releases the lock when a process dies, so a
crash leaves nothing to clean up.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.errors import ConfigError, FlywheelError, SinkUnavailableError, TransientError
from flywheel.settings import Settings
from ingest.contract import EncodedEvent
from ingest.pipeline import (
    DedupeWindow,
    Pipeline,
    ProcessedBatch,
    RawMessage,
    build_pipeline,
    frame_users,
    rename_batch,
)
from privacy.keys import Keyring
from warehouse.lake import Lake, open_lake, polars_errno

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

EMBEDDED_TOPIC = "embedded"
LOCK_NAME = "embedded.lock"
EMBEDDED_SINK = "the embedded sink (FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS unset)"
"""What refuses a lake on object storage: it renames its files and locks the lake's folder."""
"""Beside the lake's ``events`` folder: ``<data dir>/lake/embedded.lock``."""
FULL_DISK_RETRY_AFTER_S = 30
"""A full disk is not freed in seconds; clients that resend sooner only add load."""


def storage_failure(exc: BaseException, action: str) -> SinkUnavailableError | None:
    """The 503 a failed lake read or write deserves when the file system refused it (full,
    read-only, an I/O error, a file where a folder belongs), or None for anything else (a bug).

    polars reports its own writes' file system errors as ``ComputeError`` ("... No space left on
    device (os error 28)"), not as ``OSError``; the errno is read from that text.
    """
    if isinstance(exc, OSError):
        number, name = exc.errno, type(exc).__name__
    else:
        import polars.exceptions

        found = polars_errno(exc)
        if not isinstance(exc, polars.exceptions.PolarsError) or found is None:
            return None
        number, name = found, type(exc).__name__
    reason = os.strerror(number) if number is not None else "no errno"
    full = number in (errno.ENOSPC, errno.EDQUOT)
    return SinkUnavailableError(
        f"could not {action} the lake ({name}: {reason}, errno {number})",
        retry_after_s=FULL_DISK_RETRY_AFTER_S if full else 5,
    )


def hold_lock(lake: Lake) -> int:
    """Lock the lake's embedded partition for this process; returns the lock's descriptor.

    Raises ``ConfigError`` naming the holder's pid when another process holds it.
    """
    import fcntl

    # Beside the events folder on a local disk; beside the spool for a lake on object storage,
    # which only this host's processes see (one embedded API per lake: docs/operations.md).
    path = lake.spool.parent / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise ConfigError(
            f"the lake {lake.location} is already served in embedded mode (pid {holder} holds "
            f"{path}); two processes would overwrite each other's lake files: stop it, or set "
            "another FLYWHEEL_DATA_DIR or FLYWHEEL_LAKE__URL, or run with Kafka "
            "(FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS)"
        ) from None
    except BaseException:
        os.close(descriptor)
        raise
    # The pid is only for the message above; the lock itself is the kernel's.
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor


class LocalDisk:
    """What readiness asks the lake's file system; tests pass a twin that fails on purpose."""

    def free_bytes(self, folder: Path) -> int:
        """Bytes an unprivileged writer may still use on ``folder``'s file system."""
        stats = os.statvfs(folder)
        return stats.f_bavail * stats.f_frsize

    def writable(self, folder: Path) -> bool:
        """Whether files may be created in ``folder`` (false on a read-only mount too)."""
        return os.access(folder, os.W_OK | os.X_OK)

    def write_probe(self, folder: Path) -> None:
        """Create, write, fsync and remove a small hidden file in ``folder``; raises ``OSError``."""
        path = folder / f".ready-probe-{os.getpid()}"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(descriptor, b"\0" * 4096)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
            path.unlink(missing_ok=True)


@dataclass(eq=False)
class _Request:
    """One request waiting for its file."""

    events: Sequence[EncodedEvent]
    done: Future[int] = field(default_factory=Future)


class EmbeddedSink:
    """An ``EventSink`` that lands events in the lake itself, concurrent requests in one file."""

    def __init__(
        self,
        *,
        lake: Lake,
        pipeline: Pipeline,
        dedupe_window: int,
        max_batch_events: int = 5000,
        min_free_bytes: int = 0,
        disk: LocalDisk | None = None,
    ) -> None:
        self.lake = lake
        self.min_free_bytes = min_free_bytes
        self.disk = disk or LocalDisk()
        self._storage_failure: str | None = None
        """Why the last landing failed on storage; cleared by a landing or a probe write."""
        self.pipeline = pipeline
        self.dedupe_window = dedupe_window
        self.max_batch_events = max_batch_events
        self._lock_descriptor: int | None = hold_lock(lake)
        self._landing = threading.Lock()
        self._next_offset: int | None = None
        self._window = DedupeWindow(dedupe_window)
        self._waiting: deque[_Request] = deque()
        self._wakeup = threading.Condition()
        self._writer: threading.Thread | None = None
        self._closing = False
        self.landed = 0
        self.duplicates = 0
        self.without_consent = 0
        self.suppressed = 0
        self.files = 0

    @property
    def waiting(self) -> int:
        """Requests queued for the next file."""
        with self._wakeup:
            return len(self._waiting)

    def _start(self) -> int:
        if self._next_offset is None:
            try:
                self.lake.remove_temporary_files(EMBEDDED_TOPIC, 0)
                self._next_offset = self.lake.landed_offsets(EMBEDDED_TOPIC).get(0, -1) + 1
                recent = self.lake.recent_event_ids(EMBEDDED_TOPIC, 0, limit=self.dedupe_window)
            except Exception as exc:
                self._next_offset = None
                failure = storage_failure(exc, "read")
                if failure is None:
                    raise
                self._storage_failure = str(failure)
                raise failure from None
            self._window = DedupeWindow(self.dedupe_window, recent)
        return self._next_offset

    def land(self, events: Sequence[EncodedEvent]) -> int:
        """Validate, anonymise and land the events as one file; returns how many landed."""
        return self._land([events])

    def _land(self, requests: Sequence[Sequence[EncodedEvent]]) -> int:
        """Land several requests' events as one batch, in one file; returns how many landed."""
        with self._landing:
            if self._lock_descriptor is None:
                raise SinkUnavailableError("the embedded sink is closed")
            first = self._start()
            events = [event for request in requests for event in request]
            if not events:
                return 0
            messages = [
                RawMessage(EMBEDDED_TOPIC, 0, first + i, event.key, event.value)
                for i, event in enumerate(events)
            ]
            batch = self.pipeline.process(messages, self._window)
            if batch.dead_letters:
                # The API validated these with the same contract; this is a bug, not bad input.
                raise FlywheelError(
                    f"{len(batch.dead_letters)} events passed the API but not the pipeline"
                )
            if batch.kept:
                frame = self.pipeline.frame(batch)  # counts batch.suppressed
                batch.suppressed += self._write(frame, batch)
                self._next_offset = batch.last_offset + 1
                for event_id in batch.event_ids:
                    self._window.add(event_id)
            # With nothing new no file is needed: the lake's own offsets need none to move on.
            self.duplicates += batch.duplicates
            self.without_consent += batch.without_consent
            self.suppressed += batch.suppressed
            self.landed += len(batch.kept) - batch.suppressed
            return len(batch.kept) - batch.suppressed

    def _write(self, frame: pl.DataFrame, batch: ProcessedBatch) -> int:
        """The landing step, the only place the embedded writer writes the lake: the batch's file
        is written, fsynced and renamed, its folder fsynced, before this returns. It lands without
        users an erasure listed since the batch was framed (``rename_batch``); returns how many
        events that removed."""
        try:
            temporary, final = self.lake.write_temporary(
                frame, topic=EMBEDDED_TOPIC, partition=0, first_offset=batch.first_offset,
                last_offset=batch.last_offset,
            )  # fmt: skip
            removed = rename_batch(
                self.lake, self.pipeline.suppression, temporary, final, frame_users(frame)
            )
            self.lake.sync_landed(final)
        except Exception as exc:
            # Read the lake again before the next batch: a failure after the rename (the folder's
            # fsync) leaves the file, and offsets and the dedupe window must count it.
            self._next_offset = None
            self._remove_temporary_files()
            failure = storage_failure(exc, "write")
            if failure is None:
                raise
            self._storage_failure = str(failure)
            raise failure from None
        self._storage_failure = None
        self.files += 1
        return removed

    def _remove_temporary_files(self) -> None:
        try:
            self.lake.remove_temporary_files(EMBEDDED_TOPIC, 0)
        except OSError as exc:
            # The next batch's start tries again; nothing reads hidden files meanwhile.
            log.warning(
                "could not remove a half-written lake file",
                extra={"fields": {"error": type(exc).__name__, "errno": exc.errno}},
            )

    async def publish(self, events: Sequence[EncodedEvent]) -> None:
        """Return once the events are landed (in the next file the writer thread writes)."""
        request = _Request(events)
        with self._wakeup:
            if self._closing:
                raise SinkUnavailableError("the embedded sink is closed")
            self._waiting.append(request)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="flywheel-embedded-writer", daemon=True
                )
                self._writer.start()
            self._wakeup.notify()
        await asyncio.wrap_future(request.done)

    def _write_loop(self) -> None:
        while True:
            with self._wakeup:
                while not self._waiting and not self._closing:
                    self._wakeup.wait()
                if not self._waiting:
                    return
                group = self._next_group()
            self._commit(group)

    def _next_group(self) -> list[_Request]:
        """Whole waiting requests, oldest first, up to ``max_batch_events`` (at least one)."""
        group: list[_Request] = []
        count = 0
        while self._waiting:
            size = len(self._waiting[0].events)
            if group and count + size > self.max_batch_events:
                break
            request = self._waiting.popleft()
            if request.done.set_running_or_notify_cancel():  # False: the client went away
                group.append(request)
                count += size
        return group

    def _commit(self, group: list[_Request]) -> None:
        """Land a group and answer its requests; never raises (the writer thread goes on)."""
        if not group:
            return
        try:
            landed = self._land([request.events for request in group])
        except Exception as exc:
            if len(group) > 1 and not isinstance(exc, TransientError):
                # One request's fault (a bug) must not fail the others: each lands on its own.
                for request in group:
                    self._commit([request])
                return
            for request in group:
                request.done.set_exception(exc)
            return
        for request in group:
            request.done.set_result(landed)

    async def readiness(self) -> str | None:
        """None if a landing is expected to succeed now: the lake folder is writable, its file
        system has ``min_free_bytes`` free, and, after a landing failed on storage, a probe
        file could be written there again."""
        return await asyncio.to_thread(self._check_storage)

    def _check_storage(self) -> str | None:
        folder = self.lake.spool
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not self.disk.writable(folder):
                return f"the lake folder {folder} is not writable (read-only or no permission)"
            free = self.disk.free_bytes(folder)
            if free < self.min_free_bytes:
                return (
                    f"{free} bytes free on the lake's file system ({folder}); "
                    f"at least {self.min_free_bytes} needed"
                )
            failed = self._storage_failure
            if failed is not None:
                try:
                    self.disk.write_probe(folder)
                except OSError as exc:
                    return f"the last landing failed ({failed}); a probe write failed too " + (
                        f"({type(exc).__name__}: {os.strerror(exc.errno) if exc.errno else exc})"
                    )
                if self._storage_failure == failed:
                    self._storage_failure = None
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
            return f"the lake folder {folder} cannot be used ({reason})"
        return None

    def close(self) -> None:
        """Land what is queued, stop the writer and release the data dir's lock."""
        with self._wakeup:
            self._closing = True
            self._wakeup.notify()
            writer = self._writer
        if writer is not None:
            writer.join()
        with self._landing:
            if self._lock_descriptor is not None:
                os.close(self._lock_descriptor)  # releases the flock
                self._lock_descriptor = None


def embedded_sink(settings: Settings, keyring: Keyring) -> EmbeddedSink:
    """The embedded sink of a configuration: its lake (``FLYWHEEL_LAKE__URL``, on a local disk:
    the sink renames its files and locks the lake with ``flock``), the configured pipeline."""
    return EmbeddedSink(
        lake=open_lake(settings),
        pipeline=build_pipeline(settings, keyring),
        dedupe_window=settings.ingest.dedupe_window,
        max_batch_events=settings.ingest.batch_max_events,
        min_free_bytes=settings.api.ready_min_free_bytes,
    )
