"""The erasure request log: what each erasure request asked and did, and its status.

``<data dir>/privacy/erasure-log.jsonl`` is append-only JSON Lines, pseudonyms only (never a raw
id). ``begin_erasure`` opens a request: it logs it (``started``) and lists its users' pseudonyms
for suppression, both ``privacy``'s own, so the API can do it before it answers. What walks the
stages afterwards (``flywheel.shell.erasure.finish_erasure``) logs each step (``note_step``), a
resumption, a failure, a retry and the outcome here, under the lock that lets one erasure of a
data dir run at a time (``one_erasure_at_a_time``, from the CLI or any API process).
``erasure_status`` reads a request's state back; ``unfinished_erasures`` lists the requests a
crash or a failure left unfinished, to be resumed.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.errors import FlywheelError
from flywheel.settings import Settings
from privacy.keys import Keyring
from privacy.suppression import add_suppressed, suppression_file

ERASURE_LOG = Path("privacy") / "erasure-log.jsonl"
ERASURE_LOCK = Path("privacy") / "erasure.lock"
MAX_USERS_PER_REQUEST = 1000


@dataclass
class ErasureRecord:
    """What one erasure request did (what the log's ``completed`` line holds)."""

    request: str
    started_at: str
    pseudonyms: dict[str, list[str]]
    """Pseudonyms by key version."""
    newly_suppressed: int = 0
    lake_files_rewritten: list[dict[str, Any]] = field(default_factory=list)
    lake_events_removed: int = 0
    warehouse_rows_deleted: dict[str, int] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    kafka_raw_until: list[dict[str, Any]] = field(default_factory=list)
    """Kafka topics still holding the users' raw events (Kafka cannot delete single records):
    per topic its ``retention_ms`` and ``until``, when the last of them expires."""
    finished_at: str | None = None

    def all_pseudonyms(self) -> list[str]:
        """The users' pseudonyms under every key version, each once."""
        return sorted({p for found in self.pseudonyms.values() for p in found})


def erasure_log(data_dir: Path) -> Path:
    """The append-only erasure log of a data dir (JSON Lines)."""
    return data_dir / ERASURE_LOG


def _append(path: Path, entry: dict[str, Any]) -> None:
    """Add one line to the log, flushed to disk. A line a crash cut off (no newline at its end)
    is ended first, so that it does not swallow this one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        cut_off = handle.tell() > 0 and not _ends_a_line(handle)
        line = json.dumps(entry, sort_keys=True).encode() + b"\n"
        handle.write(b"\n" + line if cut_off else line)
        handle.flush()
        os.fsync(handle.fileno())


def _ends_a_line(handle: Any) -> bool:
    handle.seek(-1, os.SEEK_END)
    return bool(handle.read(1) == b"\n")


def _failure(exc: Exception) -> str:
    """How the log records why a step failed: a platform error's message (it names what to fix)
    or the file system's reason; of anything else (a bug) only its type, since a library's
    message may quote data (the traceback goes to whoever called)."""
    if isinstance(exc, FlywheelError):
        return str(exc).splitlines()[0]
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return f"internal error ({type(exc).__name__}); see the log of what ran it"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def begin_erasure(settings: Settings, raw_ids: list[str], keyring: Keyring) -> ErasureRecord:
    """Step 1 of an erasure: log the request (pseudonyms only) and suppress the users' future
    events. Quick; ``flywheel.shell.erasure.finish_erasure`` does the rest. Raises
    ``FlywheelError`` for a bad request
    (no ids, too many)."""
    # Ids exactly as given: a user id is normalised when it is pseudonymised (see
    # ``privacy.keys.normalise_user_id``), and events landed before that are found by the id as
    # it was sent, padding and case included.
    ids = sorted({i for i in raw_ids if i.strip()})
    if not ids:
        raise FlywheelError("no user id to erase")
    if len(ids) > MAX_USERS_PER_REQUEST:
        raise FlywheelError(
            f"{len(ids)} user ids in one request; at most {MAX_USERS_PER_REQUEST} per request"
        )
    by_version: dict[str, set[str]] = {}
    for raw_id in ids:
        for found in (keyring.all_pseudonyms(raw_id), keyring.verbatim_pseudonyms(raw_id)):
            for version, pseudonym in found.items():
                by_version.setdefault(str(version), set()).add(pseudonym)
    record = ErasureRecord(
        request=uuid.uuid4().hex,
        started_at=_now(),
        pseudonyms={version: sorted(found) for version, found in sorted(by_version.items())},
    )
    log = erasure_log(settings.data_dir)
    _append(log, {"event": "started", "request": record.request, "at": record.started_at,
                  "users": len(ids), "pseudonyms": record.pseudonyms})  # fmt: skip
    try:
        record.newly_suppressed = add_suppressed(
            suppression_file(settings.data_dir), record.all_pseudonyms()
        )
    except Exception as exc:
        _append(log, {"event": "failed", "request": record.request, "at": _now(),
                      "error": _failure(exc)})  # fmt: skip
        raise
    return record


def note_step(data_dir: Path, request: str, name: str, **done: Any) -> None:
    """Log what one step of an attempt did (the ``completed`` line adds up every attempt's)."""
    _append(erasure_log(data_dir), {"event": "step", "step": name, "request": request,
                                    "at": _now(), **done})  # fmt: skip


def note_resumed(data_dir: Path, request: str) -> None:
    """Log that an unfinished request is being finished again."""
    _append(erasure_log(data_dir), {"event": "resumed", "request": request, "at": _now()})


def note_failed(data_dir: Path, request: str, exc: Exception) -> None:
    """Log that an attempt failed, and why (``_failure``: never a library's message)."""
    _append(erasure_log(data_dir), {"event": "failed", "request": request, "at": _now(),
                                    "error": _failure(exc)})  # fmt: skip


def note_completed(data_dir: Path, record: ErasureRecord) -> None:
    """Log a request's outcome: the record, now finished, with what every attempt did."""
    record.finished_at = _now()
    _append(erasure_log(data_dir), {"event": "completed", **asdict(record)})


def add_logged_steps(data_dir: Path, record: ErasureRecord) -> None:
    """Set the record's counts to what every attempt's steps logged (a resumed request's
    earlier attempts did part of the work)."""
    _add_steps(record, _entries_by_request(data_dir)[record.request])


def _add_steps(record: ErasureRecord, entries: list[dict[str, Any]]) -> None:
    """Set the record's counts to the sum of what the steps logged in ``entries`` did."""
    record.lake_files_rewritten, record.lake_events_removed = [], 0
    record.warehouse_rows_deleted, record.datasets = {}, []
    for entry in entries:
        if entry["event"] != "step":
            continue
        record.lake_files_rewritten += entry.get("lake_files_rewritten", [])
        record.lake_events_removed += entry.get("lake_events_removed", 0)
        for table, count in entry.get("warehouse_rows_deleted", {}).items():
            record.warehouse_rows_deleted[table] = (
                record.warehouse_rows_deleted.get(table, 0) + count
            )
        record.datasets += entry.get("datasets", [])


def note_retry(data_dir: Path, request: str, *, in_seconds: float) -> None:
    """Log that a request that failed on a busy warehouse or dataset will be tried again: its
    status is ``pending`` again, not ``failed``."""
    _append(erasure_log(data_dir), {"event": "waiting", "request": request, "at": _now(),
                                    "retry_in_s": in_seconds})  # fmt: skip


def erasure_status(data_dir: Path, request: str) -> dict[str, Any]:
    """What the log says of one request: ``{}`` if it names none; else its ``status``
    (``completed``, ``failed`` with the ``error``, or ``pending``: queued, running, or cut off
    by a crash), its start and pseudonyms, and once completed what it did."""
    return _status(request, _entries_by_request(data_dir).get(request, []))


def _status(request: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """``erasure_status`` from one request's log entries, oldest first."""
    started = next((e for e in entries if e["event"] == "started"), None)
    if started is None:  # none, or its start was a line a crash cut off: nothing to tell
        return {}
    last = entries[-1]
    status = {"completed": "completed", "failed": "failed"}.get(last["event"], "pending")
    found: dict[str, Any] = {"request": request, "status": status, "started_at": started["at"],
                             "pseudonyms": started["pseudonyms"]}  # fmt: skip
    if status == "completed":
        found.update({k: v for k, v in last.items() if k not in ("event", "at")})
    elif status == "failed":
        found.update(error=last["error"], failed_at=last["at"])
    return found


def completed_record(data_dir: Path, request: str) -> ErasureRecord:
    """What a completed request did, as the log's ``completed`` line holds it."""
    found = erasure_status(data_dir, request)
    names = [f.name for f in fields(ErasureRecord) if f.name in found]
    return ErasureRecord(**{name: found[name] for name in names})


def unfinished_erasures(data_dir: Path) -> list[ErasureRecord]:
    """Requests the log shows started but not completed (failed, or cut off by a crash), oldest
    first, ready for ``finish_erasure(..., resumed=True)``."""
    unfinished = []
    for request, entries in _entries_by_request(data_dir).items():
        found = _status(request, entries)
        if found and found["status"] != "completed":
            unfinished.append(ErasureRecord(request=request, started_at=found["started_at"],
                                            pseudonyms=found["pseudonyms"]))  # fmt: skip
    return unfinished


def _entries_by_request(data_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The log's entries of each request, oldest first; requests in the order they started."""
    entries: dict[str, list[dict[str, Any]]] = {}
    for entry in _read_log(data_dir):
        entries.setdefault(entry["request"], []).append(entry)
    return entries


def _read_log(data_dir: Path) -> list[dict[str, Any]]:
    """The erasure log's entries, oldest first (none before the first erasure). A line cut off
    by a crash while it was written is skipped: its request either never started (no
    ``started``) or is finished again as unfinished (no outcome)."""
    return [entry for entry in read_log_lines(erasure_log(data_dir)) if "request" in entry]


def append_log_line(path: Path, entry: dict[str, Any]) -> None:
    """Append one entry to a JSON Lines log as the erasure log's lines are appended (flushed
    and synced; a line a crash cut off before is ended first)."""
    _append(path, entry)


def read_log_lines(path: Path) -> list[dict[str, Any]]:
    """The entries of a JSON Lines log with an ``event`` each, oldest first; a line cut off by
    a crash while it was written is skipped."""
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "event" in entry:
            entries.append(entry)
    return entries


@contextmanager
def one_erasure_at_a_time(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's erasure lock: erasures (from the CLI, or any API process) rewrite the
    same files, so they run one after the other. The lock goes with the process holding it."""
    path = data_dir / ERASURE_LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
