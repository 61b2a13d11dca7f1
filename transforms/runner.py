"""``flywheel transform run``: load new lake files into the warehouse, then build the models.

Each run is recorded in ``transform_runs``, and what it did to each model (the rows it added and
removed, transforms/changes.py) in ``transform_run_models``, in the models' transaction. Only
one run at a time: DuckDB allows one writer per file, and a second run fails at once with
``WarehouseBusyError`` (a clear message, exit 1) instead of waiting on a lock. A run is the
incremental load, then the SQL models (transforms/models/*.sql) built in one transaction, so
readers never see half a run: in full, or
incrementally for what the newly loaded events touch (transforms/incremental.py).

An event whose ``occurred_at`` no reader can take (NULL, or outside years 1 to 9999 in UTC:
``warehouse.load.READABLE_TIME``) is left out, counted in the summary and logged with its id; one
that an earlier version loaded is removed, and the models are then built in full without it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import FlywheelError
from transforms.checks import principles
from transforms.models import Built, discover, ordered, run_models
from transforms.policy import Policy, load_policy
from warehouse.db import open_warehouse, raw, translate, warehouse_path
from warehouse.lake import Lake
from warehouse.load import load_lake
from warehouse.retention import forget_missing_files
from warehouse.reviews import refresh_review_rows
from warehouse.table import LakeTable, default_catalog_uri

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


@dataclass
class StepResult:
    """One step of a run: its name, its table's rows afterwards, its time, what it changed."""

    name: str
    rows: int
    seconds: float
    mode: str = ""
    """For a model: ``full``, ``incremental`` or ``unchanged``."""
    added: int | None = None
    """Rows the step added (a changed row is one added and one removed); None: not counted."""
    removed: int | None = None
    """Rows the step removed; None: not counted."""


@dataclass
class RunSummary:
    """What a run did."""

    run_id: str
    full_refresh: bool
    committed_files: int = 0
    """Landed files this run committed to the lake's table before loading."""
    files_loaded: int = 0
    events_loaded: int = 0
    excluded_events: list[str] = field(default_factory=list)
    """Ids of the events left out (or removed) for a time no reader can take."""
    steps: list[StepResult] = field(default_factory=list)
    policy_hash: str = ""
    """The sha256 of the policy this run built with (``Policy.digest``)."""
    previous_policy_hash: str | None = None
    """The policy hash of the last run that succeeded before this one (None: there was none)."""
    policy_source: str = "the shipped policy"
    """Where the policy came from: its file, or the shipped one."""
    interrupted: int = 0
    """Earlier runs found still ``running`` (killed before they ended), marked ``interrupted``."""
    overhead: dict[str, float] = field(default_factory=dict)
    """Seconds spent outside the steps, by part: ``open`` (the engine and the migration check),
    ``record`` (the run's row in ``transform_runs``, written at the start and the end),
    ``commit_lake`` (committing landed files to the lake's table, listing its files and, on
    object storage, copying new ones to this host), ``plan`` and ``scope`` (see
    ``run_models``), ``commit`` (the models' transaction) and
    ``close`` (closing the warehouse). DuckDB checkpoints (writes the run's changes into the
    database file) at the first commit after its write-ahead log passes 16 MiB, else at close."""

    @property
    def policy_change(self) -> str | None:
        """One line for a run whose policy differs from the last successful run's (every
        model's fingerprint hashes the policy, so each was rebuilt in full); None otherwise."""
        previous = self.previous_policy_hash
        if previous is None or previous == self.policy_hash:
            return None
        return (
            f"the policy changed since the last run ({previous[:8]} -> "
            f"{self.policy_hash[:8]}): every model was rebuilt with {self.policy_source}; "
            "FLYWHEEL_TRANSFORMS__POLICY_FILE keeps one policy for every run"
        )


def run_transforms(
    data_dir: Path,
    *,
    full_refresh: bool = False,
    select: list[str] | None = None,
    policy_file: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    lake: Lake | None = None,
    table: LakeTable | None = None,
    through: date | None = None,
    commit_lake: bool = True,
    models_dir: Path | None = None,
) -> RunSummary:
    """Commit the landed files to the lake's table, load the files of its current snapshot not
    loaded yet (all of them with ``full_refresh``), build the models (those in ``select`` and
    what they need), and record the run with the hashes of the policy and the principles.

    ``lake``: the configuration's (``warehouse.lake.open_lake``), unset the data dir's; on
    object storage its files are copied to this host (``Lake.readable``) for DuckDB. ``table``:
    the lake's table (``LakeTable.of``), unset the one in the data dir's catalog.
    ``through``: load only the files landed on or before that day (their ``landed_date=``
    folder, UTC); later ones wait for a later run. Without ``commit_lake`` the landed files are
    read as a commit would add them, and the lake's table is left as it is (a preview's run on
    a copy of the warehouse, transforms/plan.py). ``models_dir``: the team's own models
    (``FLYWHEEL_TRANSFORMS__MODELS_DIR``), built beside the shipped ones."""
    lake = lake or Lake.in_data_dir(data_dir)
    table = table or LakeTable(lake, default_catalog_uri(data_dir))
    policy = load_policy(policy_file)
    # An unknown model, a cycle or a bad file of the team's fails before anything runs.
    ordered(discover(custom=models_dir), select)
    started = time.perf_counter()
    engine = open_warehouse(data_dir)
    summary = RunSummary(
        run_id=uuid.uuid4().hex,
        full_refresh=full_refresh,
        policy_hash=policy.digest,
        policy_source=str(policy_file) if policy_file else "the shipped policy",
    )
    summary.overhead["open"] = time.perf_counter() - started
    try:
        _run(
            engine, lake, table, summary, policy, select, on_progress, through, commit_lake,
            models_dir,
        )  # fmt: skip
    except BaseException as exc:
        _record_failure(engine, summary.run_id)
        if isinstance(exc, FlywheelError) or not isinstance(exc, Exception):
            raise
        raise translate(exc, path=warehouse_path(data_dir), action="load into") from None
    finally:
        closing = time.perf_counter()
        engine.dispose()
        summary.overhead["close"] = time.perf_counter() - closing
    return summary


def last_policy_hash(db: Any) -> str | None:
    """The policy hash of the last run that succeeded (the policy the models were built with),
    None before the first."""
    last = db.execute(
        "SELECT policy_hash FROM transform_runs WHERE status = 'succeeded' "
        "ORDER BY started_at DESC LIMIT 1"
    ).fetchall()
    return last[0][0] if last else None


def _record_failure(engine: Engine, run_id: str) -> None:
    """Mark a run that raised as ``failed`` (its models' transaction was rolled back), if its
    row was written; a warehouse that cannot take even that leaves it ``running``, and the next
    run marks it ``interrupted``."""
    try:
        with engine.begin() as connection:
            raw(connection).execute(
                "UPDATE transform_runs SET status = 'failed', finished_at = $now "
                "WHERE run_id = $run AND status = 'running'",
                {"now": datetime.now(UTC), "run": run_id},
            )
    except Exception:  # noqa: BLE001 - the run's own error is the one to report
        log.warning("could not record the failed run", extra={"fields": {"run": run_id}})


def _run(
    engine: Engine,
    lake: Lake,
    table: LakeTable,
    summary: RunSummary,
    policy: Policy,
    select: list[str] | None,
    on_progress: Callable[[str, int, int], None] | None,
    through: date | None = None,
    commit_lake: bool = True,
    models_dir: Path | None = None,
) -> None:
    full_refresh = summary.full_refresh
    overhead = summary.overhead
    with engine.connect() as connection:
        db = raw(connection)
        started = time.perf_counter()
        with connection.begin():
            # DuckDB lets one process write the file: a run still ``running`` is one that was
            # killed (or its machine lost power) before it could record how it ended.
            [(summary.interrupted,)] = db.execute(
                "UPDATE transform_runs SET status = 'interrupted' WHERE status = 'running'"
            ).fetchall()
            # The policy the warehouse's models were last built with: a run with another one
            # rebuilds them (their fingerprints hash it), which the caller tells the user.
            summary.previous_policy_hash = last_policy_hash(db)
            db.execute(
                "INSERT INTO transform_runs (run_id, started_at, full_refresh, policy_hash, "
                "previous_policy_hash, principles_hash, status) "
                "VALUES ($run, $now, $full, $policy, $previous, $principles, 'running')",
                {
                    "run": summary.run_id,
                    "now": datetime.now(UTC),
                    "full": full_refresh,
                    "policy": policy.digest,
                    "previous": summary.previous_policy_hash,
                    "principles": principles().digest,
                },
            )
        overhead["record"] = time.perf_counter() - started
        started = time.perf_counter()
        if commit_lake:
            summary.committed_files = len(table.commit().files)
            lake_files = lake.readable(table.data_files())
        else:
            lake_files = lake.readable(sorted(table.data_files() + table.pending()))
        overhead["commit_lake"] = time.perf_counter() - started
        [(events_before,)] = db.execute("SELECT count(*) FROM events").fetchall()
        # Files the table no longer holds (a compaction merged them, retention expired them):
        # their events go, and come back from the files that replaced them.
        forgotten_files, _ = forget_missing_files(db, lake, lake_files)
        loaded = load_lake(
            connection,
            [f for f in lake_files if through is None or f.landed_date <= through],
            run_id=summary.run_id,
            full_refresh=full_refresh,
            on_progress=(lambda done, total: on_progress("load", done, total))
            if on_progress
            else None,
        )
        summary.files_loaded = loaded.files
        summary.events_loaded = loaded.new_events
        summary.excluded_events = sorted({*loaded.unreadable, *loaded.removed})
        if summary.excluded_events:
            log.warning(
                "events left out: occurred_at is missing or outside years 1 to 9999 in UTC",
                extra={"fields": {"run_id": summary.run_id,
                                  "events": len(summary.excluded_events),
                                  "removed_from_warehouse": len(loaded.removed),
                                  "event_ids": summary.excluded_events[:20]}},
            )  # fmt: skip
        [(events_after,)] = db.execute("SELECT count(*) FROM events").fetchall()
        summary.steps.append(
            StepResult(
                "events (load)",
                events_after,
                loaded.seconds,
                # A full refresh loads every event again: what changed is not counted.
                added=None if full_refresh else loaded.new_events,
                removed=None if full_refresh else events_before + loaded.new_events - events_after,
            )
        )
        with connection.begin():
            built = run_models(
                db,
                policy,
                lake_root=lake.cache,
                select=select,
                # Removed events leave no new file to scope an incremental build by.
                full_refresh=full_refresh or bool(loaded.removed) or bool(forgotten_files),
                run_id=summary.run_id,
                on_progress=(lambda done, total: on_progress("models", done, total))
                if on_progress
                else None,
                overhead=overhead,
                models_dir=models_dir,
                after_build=_add_review_rows,
            )
            # signal_calibration's rows against the reviewers' verdicts: from the warehouse's
            # reviews, not the lake's events, so they are added to what the models built (when
            # it is built, as part of its build, so its changes count them).
            if "signal_calibration" not in {b.name for b in built}:
                refresh_review_rows(db)
            _record_models(db, summary.run_id, built)
            committing = time.perf_counter()
        overhead["commit"] = time.perf_counter() - committing
        summary.steps += [
            StepResult(b.name, b.rows, b.seconds, b.mode, b.added, b.removed) for b in built
        ]
        started = time.perf_counter()
        with connection.begin():
            db.execute(
                "UPDATE transform_runs SET finished_at = $now, files_loaded = $files, "
                "events_loaded = $events, status = 'succeeded' WHERE run_id = $run",
                {
                    "now": datetime.now(UTC),
                    "files": loaded.files,
                    "events": loaded.new_events,
                    "run": summary.run_id,
                },
            )
        overhead["record"] += time.perf_counter() - started


def _add_review_rows(db: Any, model: str) -> None:
    if model == "signal_calibration":
        refresh_review_rows(db)


def _record_models(db: Any, run_id: str, built: list[Built]) -> None:
    """What the run did to each model, in ``transform_run_models`` (in the models'
    transaction: a run that fails records nothing of them)."""
    if not built:
        return
    db.execute(
        "INSERT INTO transform_run_models (run_id, model, mode, rows, added, removed, seconds) "
        "SELECT $run, unnest($models), unnest($modes), unnest($rows), unnest($added), "
        "unnest($removed), unnest($seconds)",
        {"run": run_id, "models": [b.name for b in built], "modes": [b.mode for b in built],
         "rows": [b.rows for b in built], "added": [b.added for b in built],
         "removed": [b.removed for b in built], "seconds": [b.seconds for b in built]},
    )  # fmt: skip
