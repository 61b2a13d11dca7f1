"""The transforms and the exports as Dagster assets (the ``dagster`` extra), built from the
process's ``FLYWHEEL_*`` settings: ``dagster dev -m flywheel.shell.dagster``.

Assets, partitioned by landing day (UTC; the lake's ``landed_date=`` folders), from
``FLYWHEEL_DAGSTER__START_DATE`` through today:

- ``lake/events``: the lake's Iceberg table, which the ingest workers write (an external asset).
- ``warehouse/<model>``: one per transform model, depending on the models it reads (and on the
  lake for the events and texts it reads). One op builds them all, as ``flywheel transform run
  --through DAY`` does: the models are built in one transaction, never one by one.
- ``datasets/<name>``: one per dataset of the datasets file, depending on the model tables its
  export reads; its op is ``flywheel export run --dataset NAME``, and its asset check
  ``quality_gate`` is the export's quality gate. A failed gate is a failed check, with every
  failed critical expectation and the report's path in its metadata, and a failed run; nothing
  is published.

The warehouse and the datasets are cumulative, not sliced by day: materialising a day loads
what landed up to its end and was not loaded yet, and publishes a version if anything is new.
Materialising a day again, or an earlier one, changes nothing.

Schedules follow the datasets file, as ``flywheel schedule`` does: ``flywheel_transforms`` on
``[schedule] transforms`` and ``flywheel_export_<name>`` on each dataset's ``schedule``; each
tick materialises the partition of its own day. ``flywheel_lake_maintenance`` (``[schedule]
lake_maintenance``) and, with ``FLYWHEEL_PRIVACY__LAKE_RETENTION_DAYS`` set,
``flywheel_lake_retention`` (``[schedule] retention``) are plain jobs, not assets. Schedules
start stopped, as Dagster's do. Every op writes the warehouse or the lake's table, and the
warehouse has one writer: they share the concurrency pool ``flywheel_warehouse`` (give it a
limit of 1), and an op that finds the warehouse or the dataset busy (the commands' exit code 4)
asks Dagster to retry it later.
"""

# No ``from __future__ import annotations``: Dagster checks an op's ``context`` annotation as the
# object it is, and a string is refused.
import re
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.extras import require

require("dagster", extra="dagster")  # one line naming the extra when it is not installed

import dagster as dg  # noqa: E402

from export.policy import DatasetPolicy, DatasetsFile, load_datasets  # noqa: E402
from flywheel.errors import ConfigError, FlywheelError, QualityGateError  # noqa: E402
from transforms.models import Model, discover, ordered  # noqa: E402

if TYPE_CHECKING:
    from flywheel.settings import Settings
    from warehouse.table import LakeTable

LAKE_EVENTS = dg.AssetKey(["lake", "events"])
GATE = "quality_gate"
POOL = "flywheel_warehouse"
TRANSFORMS_JOB = "flywheel_transforms"
BUSY_RETRIES = 3
BUSY_WAIT_S = 60
"""An op that finds the warehouse or its dataset busy is retried this many times, this long
apart."""


def model_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", name])


def dataset_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["datasets", name])


def partitions(settings: "Settings") -> dg.DailyPartitionsDefinition:
    """One partition per landing day (UTC), today's included."""
    return dg.DailyPartitionsDefinition(
        start_date=settings.dagster.start_date.isoformat(), timezone="UTC", end_offset=1
    )


def tables_read(policy: DatasetPolicy) -> list[str]:
    """The model tables an export of ``policy`` reads: the rows of its kinds (pairs, labels),
    the responses and calibration every export reads, and its ``extra_columns``' models."""
    from export.build import SOURCE_OF_KIND
    from export.publish import MODEL_TABLES

    rows_of = {"pairs": "preference_pairs", "labels": "labels"}
    unread = {rows_of[source] for source in rows_of} - {
        rows_of[SOURCE_OF_KIND[kind]] for kind in policy.kinds
    }
    extra = [e.model for e in policy.extra_columns if e.model not in MODEL_TABLES]
    return [table for table in MODEL_TABLES if table not in unread] + list(dict.fromkeys(extra))


def job_name(dataset: str) -> str:
    """The export job of a dataset (Dagster's names take letters, digits and ``_`` only)."""
    return "flywheel_export_" + re.sub(r"[^A-Za-z0-9_]", "_", dataset)


def dagster_error(exc: FlywheelError) -> Exception:
    """A platform error as Dagster takes it: busy or unavailable (the commands' exit code 4) is
    a retry later; any other a failure without retry, with the first line of the message the
    commands print and their exit code."""
    from flywheel.shell.cli import exit_code

    code = exit_code(exc)
    if code == 4:
        return dg.RetryRequested(max_retries=BUSY_RETRIES, seconds_to_wait=BUSY_WAIT_S)
    return dg.Failure(
        description=str(exc).partition("\n")[0],
        metadata={"error": type(exc).__name__, "exit_code": code},
        allow_retries=False,
    )


def landing_day(context: dg.AssetExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def transforms_asset(
    settings: "Settings", models: dict[str, Model], days: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """Every model as an asset, built by one op: the transform run through the partition's day."""

    def reads(model: Model) -> list[dg.AssetKey]:
        """The models ``model`` reads, and the lake for the sources (events, texts) it reads."""
        keys = {model_key(d) if d in models else LAKE_EVENTS for d in model.depends_on}
        return sorted(keys, key=dg.AssetKey.to_user_string)

    specs = [
        dg.AssetSpec(
            model_key(model.name),
            deps=reads(model),
            description=f"The warehouse's {model.name} table (transforms/models).",
            group_name="warehouse",
        )
        for model in ordered(models)
    ]

    @dg.multi_asset(
        name="transforms",
        specs=specs,
        partitions_def=days,
        pool=POOL,
        description="flywheel transform run --through the partition's day.",
    )
    def transforms(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult[Any]]:
        from flywheel.shell.cli import require_data_dir
        from transforms.runner import run_transforms
        from warehouse.lake import open_lake
        from warehouse.table import LakeTable

        day = landing_day(context)
        try:
            lake = open_lake(settings)
            table = LakeTable.of(settings, lake)
            require_data_dir(settings)
            summary = run_transforms(
                settings.data_dir,
                lake=lake,
                table=table,
                through=day,
                policy_file=settings.transforms.policy_file,
                models_dir=settings.transforms.models_dir,
            )
        except FlywheelError as exc:
            raise dagster_error(exc) from exc
        if summary.policy_change:
            context.log.warning(summary.policy_change)
        context.log.info(
            f"transform run {summary.run_id[:8]} through {day}: {summary.files_loaded} lake "
            f"files loaded, {summary.events_loaded} new events"
        )
        steps = {step.name: step for step in summary.steps}
        for spec in specs:
            step = steps[spec.key.path[-1]]
            yield dg.MaterializeResult(
                asset_key=spec.key,
                metadata={
                    "mode": step.mode,
                    "rows_written": step.rows,
                    # What the build changed, as flywheel transform history shows it.
                    "rows_added": step.added,
                    "rows_removed": step.removed,
                    "seconds": round(step.seconds, 3),
                    "transform_run": summary.run_id,
                    "policy_hash": summary.policy_hash,
                    "files_loaded": summary.files_loaded,
                    "events_loaded": summary.events_loaded,
                    "landed_through": day.isoformat(),
                },
            )

    return transforms


def dataset_asset(
    settings: "Settings", name: str, datasets: DatasetsFile, days: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    """A dataset as an asset, published by the export; the quality gate is its check."""
    policy = datasets.dataset(name)
    key = dataset_key(name)

    @dg.asset(
        key=key,
        deps=[model_key(table) for table in tables_read(policy)],
        partitions_def=days,
        pool=POOL,
        group_name="datasets",
        description=policy.description or f"The {name} dataset (flywheel export run).",
        check_specs=[
            dg.AssetCheckSpec(
                GATE, asset=key, description="The export's quality gate (export/quality.py)."
            )
        ],
    )
    def export(
        context: dg.AssetExecutionContext,
    ) -> Iterator[dg.MaterializeResult[Any] | dg.AssetCheckResult]:
        from export.catalog import open_catalog
        from export.publish import export_dataset
        from flywheel.shell.evaluation import export_evaluator
        from privacy.keys import keyring_for
        from warehouse.lake import open_lake

        try:
            lake = open_lake(settings)
            catalog = open_catalog(settings)
            result = export_dataset(
                settings.data_dir,
                name,
                keyring_for(settings),
                datasets=datasets,
                keep_failed=settings.export.keep_failed_attempts,
                lake=lake,
                catalog=catalog,
                evaluator=export_evaluator(),
            )
        except QualityGateError as gate:
            # The check reports the gate before the run fails (nothing was published).
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=GATE,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={
                    "failed": dg.MetadataValue.json(gate.failed),
                    "report": dg.MetadataValue.path(Path(gate.report) / "quality" / "index.html"),
                },
            )
            raise dagster_error(gate) from gate
        except FlywheelError as exc:
            raise dagster_error(exc) from exc
        manifest = result.manifest
        metadata: dict[str, Any] = {
            "published": result.published,
            "version": manifest.version,
            "rows": dg.MetadataValue.json({k: c.rows for k, c in manifest.counts.items()}),
        }
        check: dict[str, Any]
        if result.gate is None:
            check = {"gate": f"not run: nothing new since {manifest.version}, which passed it"}
            context.log.info(f"dataset {name}: nothing new since {manifest.version}")
        else:
            metadata["url"] = result.url or ""
            check = {
                "expectations": len(result.gate.outcomes),
                "warnings": dg.MetadataValue.json(
                    [o.line() for o in result.gate.failed("warning")]
                ),
                "report": f"{result.url}/quality/index.html",
            }
            context.log.info(f"dataset {name}: published {result.version} at {result.url}")
        yield dg.MaterializeResult(
            asset_key=key,
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    asset_key=key,
                    check_name=GATE,
                    passed=manifest.quality.success,
                    metadata=check,
                )
            ],
        )

    return export


def day_schedule(
    name: str, cron: str, job: "dg.UnresolvedAssetJobDefinition", first: date
) -> dg.ScheduleDefinition:
    """A schedule on ``cron`` (UTC) whose every tick materialises the partition of its day."""

    @dg.schedule(name=name, cron_schedule=cron, job=job, execution_timezone="UTC")
    def tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        day = (context.scheduled_execution_time or datetime.now(UTC)).astimezone(UTC).date()
        if day < first:
            return dg.SkipReason(f"{day} is before the first partition, {first}")
        return dg.RunRequest(partition_key=day.isoformat())

    return tick


def upkeep_job(
    settings: "Settings", name: str, description: str, work: "Callable[[LakeTable], str]"
) -> dg.JobDefinition:
    """A job of one op that runs ``work`` on the lake's table (not partitioned: it keeps the
    lake in shape, it builds no asset)."""

    @dg.op(name=name.removeprefix("flywheel_"), pool=POOL, description=description)
    def upkeep(context: dg.OpExecutionContext) -> None:
        from warehouse.lake import open_lake
        from warehouse.table import LakeTable

        try:
            outcome = work(LakeTable.of(settings, open_lake(settings)))
        except FlywheelError as exc:
            raise dagster_error(exc) from exc
        context.log.info(f"{name}: {outcome}")

    @dg.job(name=name, description=description)
    def job() -> None:
        upkeep()

    return job


def upkeep_jobs(
    settings: "Settings", datasets: DatasetsFile
) -> dict[str, tuple[str, dg.JobDefinition]]:
    """The lake's compaction and, with a retention period set, its retention, by job name, each
    with its cron expression from the datasets file: what ``flywheel schedule`` also runs."""
    from flywheel.shell.schedule import maintenance_job, retention_job

    data_dir = settings.data_dir
    jobs = {}
    if datasets.schedule.lake_maintenance:
        name = "flywheel_lake_maintenance"
        compact = "flywheel lake compact: merge small lake files, expire old snapshots."
        jobs[name] = (
            datasets.schedule.lake_maintenance,
            upkeep_job(settings, name, compact, lambda table: maintenance_job(data_dir, table)),
        )
    days = settings.privacy.lake_retention_days
    if days is not None and datasets.schedule.retention:
        name = "flywheel_lake_retention"
        expire = f"Delete lake files landed over {days} days ago, then their events."
        jobs[name] = (
            datasets.schedule.retention,
            upkeep_job(settings, name, expire, lambda table: retention_job(data_dir, days, table)),
        )
    return jobs


def build_definitions(settings: "Settings") -> dg.Definitions:
    """The assets, checks, jobs and schedules of a configuration and its datasets file."""
    datasets = load_datasets(settings.export.datasets_file)
    days = partitions(settings)
    models = discover(custom=settings.transforms.models_dir)
    transforms = transforms_asset(settings, models, days)
    lake = dg.AssetSpec(
        LAKE_EVENTS,
        description="The lake's Iceberg table flywheel.events, landed by the ingest workers.",
        group_name="lake",
        partitions_def=days,
    )
    exports = {name: dataset_asset(settings, name, datasets, days) for name in datasets.datasets}
    names: dict[str, str] = {}
    for name in exports:
        if (other := names.setdefault(job_name(name), name)) != name:
            raise ConfigError(
                f"datasets {other!r} and {name!r} would share the Dagster job {job_name(name)}: "
                "rename one"
            )
    transforms_job = dg.define_asset_job(TRANSFORMS_JOB, selection=[transforms])
    export_jobs = {
        name: dg.define_asset_job(job_name(name), selection=[asset])
        for name, asset in exports.items()
    }
    first = settings.dagster.start_date
    schedules = []
    if datasets.schedule.transforms:
        schedules.append(
            day_schedule(TRANSFORMS_JOB, datasets.schedule.transforms, transforms_job, first)
        )
    for name, policy in datasets.datasets.items():
        if policy.schedule:
            schedules.append(
                day_schedule(job_name(name), policy.schedule, export_jobs[name], first)
            )
    upkeep = upkeep_jobs(settings, datasets)
    schedules += [
        dg.ScheduleDefinition(name=name, cron_schedule=cron, job=job, execution_timezone="UTC")
        for name, (cron, job) in upkeep.items()
    ]
    return dg.Definitions(
        assets=[lake, transforms, *exports.values()],
        jobs=[transforms_job, *export_jobs.values(), *(job for _, job in upkeep.values())],
        schedules=schedules,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What ``dagster dev -m flywheel.shell.dagster`` loads: this process's configuration."""
    from flywheel.settings import load_settings

    return build_definitions(load_settings())
