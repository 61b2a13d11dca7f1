"""``flywheel schedule``: run the transforms and the exports on the cron expressions of the
datasets file, skipping what has nothing new, logging every run.

Jobs: ``transforms`` (the ``[schedule] transforms`` expression), ``export:<dataset>`` for each
dataset with a ``schedule``, and ``retention`` (``[schedule] retention``) when a lake retention
period is set. Each fires at the times its expression gives (UTC); when several are
due at once they run in that order, so an export sees the transform run of the same minute. A run
that fails is logged with its error and retried at the next time; the scheduler keeps going.

The same work runs from cron or Airflow without this process, through the commands' exit codes:
``flywheel transform run`` and ``flywheel export run --dataset NAME`` exit 0 when they did their
work or found nothing new, 1 on any error (the quality gate included).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from export.metrics import ExportMetrics
from export.policy import DatasetsFile
from flywheel.errors import FlywheelError
from privacy.keys import Keyring
from transforms.metrics import TransformMetrics

if TYPE_CHECKING:
    from export.catalog import Catalog
    from export.publish import ExportResult
    from flywheel.settings import SparkSettings
    from warehouse.lake import Lake
    from warehouse.table import LakeTable

log = logging.getLogger(__name__)


@dataclass
class Job:
    """Something to run on a cron expression; ``run`` returns what it did, in a few words."""

    name: str
    cron: str
    run: Callable[[], str]
    next_at: datetime | None = None
    runs: int = 0
    failures: int = 0


def next_time(cron: str, after: datetime) -> datetime:
    """The first time after ``after`` that the expression fires."""
    from croniter import croniter

    found: datetime = croniter(cron, after).get_next(datetime)
    return found


class SchedulerMetrics:
    """Job runs by outcome, their times, each job's last success; with the metrics of the
    transform and export runs the jobs make, all in one registry (``flywheel schedule
    --metrics-port`` serves it). The label is ``scheduled_job``: Prometheus gives ``job`` to
    the scrape target and would rename an exposed one to ``exported_job``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.runs = Counter(
            "flywheel_schedule_runs",
            "Scheduled job runs, by job and outcome (ok, failed).",
            ["scheduled_job", "outcome"],
            registry=self.registry,
        )
        self.run_seconds = Histogram(
            "flywheel_schedule_run_seconds",
            "Time of one scheduled job run, failed runs included, by job.",
            ["scheduled_job"],
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
            registry=self.registry,
        )
        self.last_success = Gauge(
            "flywheel_schedule_last_success_timestamp_seconds",
            "When the job last ended without an error (a skip included), Unix time.",
            ["scheduled_job"],
            registry=self.registry,
        )
        self.export = ExportMetrics(self.registry)
        self.transforms = TransformMetrics(self.registry)

    def know(self, jobs: list[Job]) -> None:
        """Start every job's counters at 0, so the first failure is an increase to alert on
        (a series that appears at 1 has no increase)."""
        for job in jobs:
            for outcome in ("ok", "failed"):
                self.runs.labels(job.name, outcome)


@dataclass
class Scheduler:
    """Runs due jobs, then waits for the next due time (or for ``stop``)."""

    jobs: list[Job]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    stop: threading.Event = field(default_factory=threading.Event)
    metrics: SchedulerMetrics = field(default_factory=SchedulerMetrics)

    def __post_init__(self) -> None:
        self.metrics.know(self.jobs)

    def run_due(self, now: datetime) -> int:
        """Run every job whose time has come, in order; return how many ran."""
        ran = 0
        for job in self.jobs:
            if job.next_at is None:
                job.next_at = next_time(job.cron, now)
            if self.stop.is_set():
                break  # a stop request lets the running job finish, not the rest of the round
            if job.next_at <= now:
                self.run_job(job)
                job.next_at = next_time(job.cron, now)
                ran += 1
        return ran

    def run_job(self, job: Job) -> bool:
        """Run one job now and log the outcome; False when it failed."""
        started = self.clock()
        job.runs += 1
        try:
            outcome = job.run()
        except Exception as exc:  # noqa: BLE001 - a scheduler outlives any one failed run
            job.failures += 1
            self.metrics.runs.labels(job.name, "failed").inc()
            self.metrics.run_seconds.labels(job.name).observe(
                (self.clock() - started).total_seconds()
            )
            message = str(exc).splitlines()[0] if str(exc) else ""
            if not isinstance(exc, FlywheelError):  # an unexpected error: name its type
                message = f"{type(exc).__name__}: {message}"
            log.error("scheduled run failed", extra={"fields": {"job": job.name, "error": message}})
            return False
        ended = self.clock()
        seconds = (ended - started).total_seconds()
        self.metrics.runs.labels(job.name, "ok").inc()
        self.metrics.run_seconds.labels(job.name).observe(seconds)
        self.metrics.last_success.labels(job.name).set(ended.timestamp())
        log.info(
            "scheduled run",
            extra={"fields": {"job": job.name, "outcome": outcome, "seconds": round(seconds, 2)}},
        )
        return True

    def run_forever(self, *, max_runs: int | None = None) -> None:
        """Run due jobs until ``stop`` is set (or ``max_runs`` job runs happened)."""
        total = 0
        while not self.stop.is_set():
            now = self.clock()
            total += self.run_due(now)
            if max_runs is not None and total >= max_runs:
                return
            upcoming = min(job.next_at for job in self.jobs if job.next_at is not None)
            # Wake at the due time, or within a second to notice a stop request.
            self.stop.wait(min(max((upcoming - self.clock()).total_seconds(), 0.05), 1.0))


def transforms_job(
    data_dir: Path,
    lake: Lake,
    table: LakeTable,
    metrics: TransformMetrics | None = None,
    policy_file: Path | None = None,
    models_dir: Path | None = None,
) -> str:
    """Commit the landed files to the lake's table, then run the transforms with
    ``policy_file`` (unset: the shipped policy) and the team's own models in ``models_dir`` if
    the table holds files the warehouse has not loaded or the policy is not the one the models
    were last built with."""
    from transforms.policy import load_policy
    from transforms.runner import last_policy_hash, run_transforms
    from warehouse.db import open_warehouse, raw
    from warehouse.load import pending_files

    policy = load_policy(policy_file)
    table.commit()
    engine = open_warehouse(data_dir)
    try:
        with engine.connect() as connection:
            pending = len(pending_files(connection, table.data_files()))
            built_with = last_policy_hash(raw(connection))
    finally:
        engine.dispose()
    if not pending and built_with in (None, policy.digest):
        return "skipped: no new lake files"
    summary = run_transforms(
        data_dir, lake=lake, table=table, policy_file=policy_file, models_dir=models_dir
    )
    if metrics is not None:
        metrics.record(summary)
    outcome = f"loaded {summary.files_loaded} lake files, {summary.events_loaded} new events"
    return f"{outcome}; {summary.policy_change}" if summary.policy_change else outcome


def spark_transforms_job(
    spark: SparkSettings,
    table: LakeTable,
    policy_file: Path | None = None,
    models_dir: Path | None = None,
) -> str:
    """The models on Spark (``flywheel transform run --engine spark``) with ``policy_file`` and
    the team's own models in ``models_dir``; a run with no new file leaves them unchanged."""
    from transforms.spark import run_transforms_on_spark

    run = run_transforms_on_spark(spark, table, policy_file=policy_file, models_dir=models_dir)
    built = [step.name for step in run.steps if step.mode != "unchanged"]
    if any(step.mode == "unchanged" for step in run.steps) and all(
        step.mode == "unchanged" or not _keyed(step.name, models_dir) for step in run.steps
    ):
        return f"Spark run {run.run_id[:8]}: no new lake files, models unchanged"
    return f"Spark run {run.run_id[:8]}: {run.events:,} events; built {', '.join(built)}"


def _keyed(model: str, models_dir: Path | None = None) -> bool:
    """Whether a model is built incrementally (it names keys); the others are always built."""
    from transforms.models import discover

    return bool(discover(custom=models_dir)[model].refresh_by)


def export_job(
    data_dir: Path,
    name: str,
    keyring: Keyring,
    datasets: DatasetsFile,
    lake: Lake,
    catalog: Catalog | None = None,
    models: LakeTable | None = None,
    metrics: ExportMetrics | None = None,
) -> str:
    """Export a dataset (to ``catalog``, the target; unset the data dir's; from Spark's tables
    in ``models``' catalog, unset the warehouse); nothing new is a skip."""
    from export.publish import export_dataset
    from flywheel.shell.evaluation import export_evaluator

    def run() -> ExportResult:
        return export_dataset(
            data_dir,
            name,
            keyring,
            datasets=datasets,
            lake=lake,
            catalog=catalog,
            models=models,
            evaluator=export_evaluator(),
        )

    result = run() if metrics is None else metrics.observe(name, run)
    if not result.published:
        return f"skipped: nothing new since {result.manifest.version}"
    return f"published {result.version}"


def retention_job(data_dir: Path, keep_days: int, table: LakeTable) -> str:
    """Delete lake files older than the retention period, then their events in the warehouse
    (texts are read from the lake: the warehouse follows it)."""
    from warehouse.db import connected, warehouse_path
    from warehouse.retention import expire_lake_files, forget_missing_files

    lake = table.lake
    expired = expire_lake_files(table, keep_days=keep_days, today=datetime.now(UTC).date())
    forgotten = 0
    if warehouse_path(data_dir).exists():
        with connected(data_dir, action="apply lake retention to") as db:
            _, forgotten = forget_missing_files(db, lake)
    if not expired.files and not forgotten:
        return "skipped: no lake file past retention"
    return (
        f"deleted {expired.files} lake files ({expired.bytes / 2**20:,.1f} MiB) and "
        f"{forgotten:,} of their events from the warehouse"
    )


def maintenance_job(data_dir: Path, table: LakeTable) -> str:
    """Compact the lake's table, expire its snapshots older than a day, delete what no snapshot
    references (``flywheel lake compact``)."""
    from privacy.suppression import SuppressionList, suppression_file
    from warehouse.maintenance import compact, expire

    compacted = compact(table, suppressed=SuppressionList(suppression_file(data_dir)).landing)
    expired = expire(table)
    if not compacted.merged and not expired.snapshots and not expired.data_files:
        return "skipped: nothing to compact or expire"
    return (
        f"merged {compacted.replaced} files into {compacted.merged}; expired "
        f"{expired.snapshots} snapshots and deleted {expired.data_files} data files"
    )


def build_jobs(
    data_dir: Path,
    datasets: DatasetsFile,
    keyring: Keyring,
    *,
    lake_retention_days: int | None = None,
    lake: Lake | None = None,
    table: LakeTable | None = None,
    catalog: Catalog | None = None,
    spark: SparkSettings | None = None,
    metrics: SchedulerMetrics | None = None,
    policy_file: Path | None = None,
    models_dir: Path | None = None,
) -> list[Job]:
    """The transforms job, one export job per scheduled dataset, and the retention job, on
    ``lake`` (the configuration's, ``open_lake``; unset, the data dir's), publishing to
    ``catalog`` (the target, ``open_catalog``; unset, the data dir's). With ``spark`` (the
    Spark engine's settings) the transforms run on Spark and the exports read its tables.
    The transforms build with ``policy_file`` (``FLYWHEEL_TRANSFORMS__POLICY_FILE``; unset,
    the shipped policy).
    With ``metrics``, the transform and export runs count into it (the job runs themselves
    count in the ``Scheduler``'s). ``models_dir``: the team's own models, checked here so that
    a bad one stops the scheduler at its start, not at its first run."""
    from warehouse.lake import Lake
    from warehouse.table import LakeTable, default_catalog_uri

    if models_dir is not None:
        from transforms.models import discover, ordered

        ordered(discover(custom=models_dir))
    every = lake or Lake.in_data_dir(data_dir)
    table = table or LakeTable(every, default_catalog_uri(data_dir))
    jobs = []
    if datasets.schedule.transforms:
        jobs.append(
            Job(
                "transforms",
                datasets.schedule.transforms,
                (lambda: spark_transforms_job(spark, table, policy_file, models_dir))
                if spark is not None
                else (
                    lambda: transforms_job(
                        data_dir,
                        every,
                        table,
                        metrics.transforms if metrics else None,
                        policy_file,
                        models_dir,
                    )  # fmt: skip
                ),
            )
        )
    for name, policy in datasets.datasets.items():
        if policy.schedule:

            def run(name: str = name) -> str:
                models = table if spark is not None else None
                return export_job(
                    data_dir, name, keyring, datasets, every, catalog, models,
                    metrics.export if metrics else None,
                )  # fmt: skip

            jobs.append(Job(f"export:{name}", policy.schedule, run))
    if datasets.schedule.lake_maintenance:
        jobs.append(
            Job(
                "lake maintenance",
                datasets.schedule.lake_maintenance,
                lambda: maintenance_job(data_dir, table),
            )
        )
    if lake_retention_days is not None and datasets.schedule.retention:
        days = lake_retention_days
        jobs.append(
            Job(
                "retention",
                datasets.schedule.retention,
                lambda: retention_job(data_dir, days, table),
            )
        )
    return jobs
