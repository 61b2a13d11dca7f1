"""Erasure: forget users everywhere the platform holds them, and keep them out from then on.

``erase_users`` takes raw user ids and works only with their pseudonyms (under every key version
held), in this order:

1. the erasure log records the request (pseudonyms, never a raw id) and the suppression list
   gets the pseudonyms, so events arriving from now on are dropped at ingest;
2. the lake: files holding their events are rewritten without them (``warehouse.erase``);
3. the warehouse: their rows leave every table, derived ones included, and ``lake_files``
   row counts follow the rewritten files;
4. the datasets: versions holding them are replaced by a version without them and superseded
   (``export.erasure``);
5. the log records what was touched.

Every step is idempotent, so an erasure that crashed or failed halfway (the warehouse busy with a
transform run, say) is finished by running it again; the log then shows both attempts.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flywheel.errors import FlywheelError
from flywheel.settings import Settings
from ingest.keys import Keyring
from ingest.suppression import add_suppressed, suppression_file

ERASURE_LOG = Path("privacy") / "erasure-log.jsonl"
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
    finished_at: str | None = None


def erasure_log(data_dir: Path) -> Path:
    """The append-only erasure log of a data dir (JSON Lines)."""
    return data_dir / ERASURE_LOG


def _append(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def erase_users(
    settings: Settings,
    raw_ids: list[str],
    keyring: Keyring,
    *,
    fault: Callable[[str], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ErasureRecord:
    """Erase the users ``raw_ids`` from lake, warehouse and datasets; suppress their future
    events; log it. Raises ``FlywheelError`` for a bad request (no ids, too many)."""
    from export.erasure import erase_from_datasets
    from warehouse.db import connected, warehouse_path
    from warehouse.erase import erase_from_lake, erase_from_warehouse, refresh_lake_file_rows
    from warehouse.lake import Lake

    ids = sorted({i for i in raw_ids if i.strip()})
    if not ids:
        raise FlywheelError("no user id to erase")
    if len(ids) > MAX_USERS_PER_REQUEST:
        raise FlywheelError(
            f"{len(ids)} user ids in one request; at most {MAX_USERS_PER_REQUEST} per request"
        )
    step = on_step or (lambda _: None)
    crash = fault or (lambda _: None)
    by_version: dict[str, set[str]] = {}
    for raw_id in ids:
        for version, pseudonym in keyring.all_pseudonyms(raw_id).items():
            by_version.setdefault(str(version), set()).add(pseudonym)
    pseudonyms = sorted(p for found in by_version.values() for p in found)
    record = ErasureRecord(
        request=uuid.uuid4().hex,
        started_at=_now(),
        pseudonyms={version: sorted(found) for version, found in sorted(by_version.items())},
    )
    data_dir = settings.data_dir
    log = erasure_log(data_dir)
    _append(log, {"event": "started", "request": record.request, "at": record.started_at,
                  "users": len(ids), "pseudonyms": record.pseudonyms})  # fmt: skip
    try:
        step("suppressing future events")
        record.newly_suppressed = add_suppressed(suppression_file(data_dir), pseudonyms)
        step("rewriting lake files")
        lake = Lake.in_data_dir(data_dir)
        rewrites = erase_from_lake(lake, pseudonyms)
        record.lake_files_rewritten = [asdict(r) for r in rewrites]
        record.lake_events_removed = sum(r.removed for r in rewrites)
        crash("erase_after_lake")
        if warehouse_path(data_dir).exists():
            step("deleting warehouse rows")
            with connected(data_dir, action="erase from") as db:
                record.warehouse_rows_deleted = erase_from_warehouse(db, pseudonyms)
                refresh_lake_file_rows(db, lake)
        crash("erase_after_warehouse")
        step("replacing dataset versions")
        record.datasets = [
            asdict(result)
            for result in erase_from_datasets(
                data_dir,
                pseudonyms,
                keyring,
                request_id=record.request,
                delete_files=settings.privacy.delete_superseded_files,
            )
        ]
    except FlywheelError as exc:
        _append(log, {"event": "failed", "request": record.request, "at": _now(),
                      "error": str(exc).splitlines()[0]})  # fmt: skip
        raise
    record.finished_at = _now()
    _append(log, {"event": "completed", **asdict(record)})
    return record
