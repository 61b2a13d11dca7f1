"""``flywheel transform history``: the recent transform runs and what each changed per model.

Read from ``transform_runs`` and ``transform_run_models`` with a read-only connection, so it takes
no write lock and runs beside readers (not beside a run: DuckDB lets one process write the file
or any number read it). A warehouse not migrated yet to the revision that added
``transform_run_models`` (0011), or a run recorded before it, has no per-model rows: ``models`` is
then None, not an empty list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from warehouse.db import BUSY_WAIT_S, translate, warehouse_path


@dataclass(frozen=True)
class ModelChange:
    """What one run did to one model."""

    model: str
    mode: str
    rows: int
    added: int | None
    removed: int | None
    seconds: float


@dataclass(frozen=True)
class RunRecord:
    """One transform run as ``transform_runs`` holds it, with its models."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    full_refresh: bool
    policy_hash: str | None
    previous_policy_hash: str | None
    """The policy hash of the last run that succeeded before this one (migration 0010; None
    for the first run and for runs recorded before)."""
    principles_hash: str | None
    files_loaded: int
    events_loaded: int
    models: list[ModelChange] | None
    """None: the run was recorded before the changes were (or the warehouse has no table of
    them yet)."""

    @property
    def policy_changed(self) -> bool:
        """Whether this run's policy differs from the last successful run's before it."""
        return self.previous_policy_hash not in (None, self.policy_hash)

    @property
    def seconds(self) -> float | None:
        """How long the run took (None while running, or if it never recorded its end)."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def as_json(self) -> dict[str, Any]:
        """Every value in full: ISO timestamps, whole hashes, the per-model list."""
        return {
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": self.seconds,
            "status": self.status,
            "full_refresh": self.full_refresh,
            "policy_hash": self.policy_hash,
            "previous_policy_hash": self.previous_policy_hash,
            "principles_hash": self.principles_hash,
            "files_loaded": self.files_loaded,
            "events_loaded": self.events_loaded,
            "models": None
            if self.models is None
            else [
                {"model": m.model, "mode": m.mode, "rows": m.rows, "added": m.added,
                 "removed": m.removed, "seconds": m.seconds}
                for m in self.models
            ],
        }  # fmt: skip


def recent_runs(
    data_dir: Path, *, limit: int = 20, busy_wait_s: float = BUSY_WAIT_S
) -> list[RunRecord]:
    """The ``limit`` most recent runs, newest first, read as ``flywheel sql`` reads
    (``warehouse.query.read_only``). No warehouse: ``NotFoundError``; one a run writes:
    ``WarehouseBusyError`` once ``busy_wait_s`` is over."""
    import duckdb

    from warehouse.query import read_only

    with read_only(data_dir, busy_wait_s=busy_wait_s) as db:
        try:
            return _read(db, limit)
        except duckdb.Error as exc:
            raise translate(exc, path=warehouse_path(data_dir), action="read") from None


def _read(db: Any, limit: int) -> list[RunRecord]:
    tables = {name for (name,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "transform_runs" not in tables:
        return []
    columns = {
        name
        for (name,) in db.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = 'transform_runs'"
        ).fetchall()
    }
    # principles_hash came in 0009; a warehouse migrated before it reads as NULL.
    principles = "principles_hash" if "principles_hash" in columns else "NULL"
    # previous_policy_hash came in 0010.
    previous = "previous_policy_hash" if "previous_policy_hash" in columns else "NULL"
    runs = db.execute(
        "SELECT run_id, started_at, finished_at, status, full_refresh, policy_hash, "
        f"{previous}, {principles}, files_loaded, events_loaded FROM transform_runs "
        "ORDER BY started_at DESC, run_id LIMIT $limit",
        {"limit": limit},
    ).fetchall()
    models: dict[str, list[ModelChange]] = {}
    if "transform_run_models" in tables and runs:
        for run_id, *change in db.execute(
            "SELECT run_id, model, mode, rows, added, removed, seconds FROM transform_run_models "
            "WHERE run_id IN (SELECT unnest($runs)) ORDER BY run_id, rowid",
            {"runs": [run[0] for run in runs]},
        ).fetchall():
            models.setdefault(run_id, []).append(ModelChange(*change))
    return [
        RunRecord(
            run_id=run_id, started_at=started, finished_at=finished, status=status,
            full_refresh=bool(full), policy_hash=policy, previous_policy_hash=previous_hash,
            principles_hash=principles_hash, files_loaded=int(files), events_loaded=int(events),
            models=models.get(run_id),
        )
        for (run_id, started, finished, status, full, policy, previous_hash, principles_hash,
             files, events) in runs
    ]  # fmt: skip
