"""The scheduler: cron timing with a hand-driven clock, and `flywheel schedule --once` for real."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from export.catalog import Catalog
from export.policy import DatasetPolicy, DatasetsFile, Schedule, load_datasets
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.errors import ConfigError, ExportError
from flywheel.shell.schedule import Job, Scheduler, SchedulerMetrics, build_jobs
from tests.factories import generation
from tests.helpers.datasets import KEYRING, land
from tests.helpers.lake import query
from tests.helpers.metrics import samples

T0 = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)


def recorder(ran: list[str], name: str, fail: bool = False) -> Job:
    def run() -> str:
        ran.append(name)
        if fail:
            raise ExportError("the quality gate failed")
        return "done"

    return Job(name, "*/15 * * * *" if name == "every-15" else "0 * * * *", run)


def test_jobs_fire_at_their_cron_times_in_order() -> None:
    ran: list[str] = []
    scheduler = Scheduler([recorder(ran, "every-15"), recorder(ran, "hourly")], clock=lambda: T0)

    assert scheduler.run_due(T0) == 0  # first call only schedules: 10:15 and 11:00
    assert scheduler.run_due(T0 + timedelta(minutes=10)) == 0
    assert scheduler.run_due(T0 + timedelta(minutes=15)) == 1
    assert ran == ["every-15"]
    scheduler.run_due(T0 + timedelta(minutes=60))
    assert ran == ["every-15", "every-15", "hourly"]  # both due: declared order


def test_a_failed_job_is_logged_and_the_scheduler_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []
    scheduler = Scheduler(
        [recorder(ran, "every-15", fail=True), recorder(ran, "hourly")], clock=lambda: T0
    )
    scheduler.run_due(T0)
    with caplog.at_level(logging.INFO, logger="flywheel.shell.schedule"):
        scheduler.run_due(T0 + timedelta(hours=1))
    assert ran == ["every-15", "hourly"]
    assert scheduler.jobs[0].failures == 1
    messages = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]
    assert ("scheduled run failed", {"job": "every-15", "error": "the quality gate failed"}) in [
        (m, f) for m, f in messages
    ]
    assert any(m == "scheduled run" and f["job"] == "hourly" for m, f in messages)


def test_job_runs_are_counted_by_outcome_with_time_and_last_success() -> None:
    ran: list[str] = []
    times = iter([T0, T0 + timedelta(seconds=3), T0 + timedelta(hours=1),
                  T0 + timedelta(hours=1, seconds=2)])  # fmt: skip
    jobs = [recorder(ran, "hourly"), recorder(ran, "every-15", fail=True)]
    scheduler = Scheduler(jobs, clock=lambda: next(times))
    before = samples(generate_latest(scheduler.metrics.registry).decode())
    failed = (("outcome", "failed"), ("scheduled_job", "every-15"))
    assert before[("flywheel_schedule_runs_total", failed)] == 0  # known before any run

    assert scheduler.run_job(jobs[0]) and not scheduler.run_job(jobs[1])
    got = samples(generate_latest(scheduler.metrics.registry).decode())
    ok = (("outcome", "ok"), ("scheduled_job", "hourly"))
    assert got[("flywheel_schedule_runs_total", ok)] == 1
    assert got[("flywheel_schedule_runs_total", failed)] == 1
    assert got[("flywheel_schedule_run_seconds_sum", (("scheduled_job", "hourly"),))] == 3
    assert got[("flywheel_schedule_run_seconds_sum", (("scheduled_job", "every-15"),))] == 2
    last = "flywheel_schedule_last_success_timestamp_seconds"
    assert got[(last, (("scheduled_job", "hourly"),))] == (T0 + timedelta(seconds=3)).timestamp()
    assert (last, (("scheduled_job", "every-15"),)) not in got  # it never succeeded


@pytest.mark.slow
def test_build_jobs_skips_and_publishes(data_dir: Path) -> None:
    datasets = DatasetsFile(
        schedule=Schedule(transforms="*/5 * * * *"),
        datasets={"default": DatasetPolicy(schedule="0 * * * *"), "manual": DatasetPolicy()},
    )
    metrics = SchedulerMetrics()
    jobs = build_jobs(data_dir, datasets, KEYRING, metrics=metrics)
    assert [job.name for job in jobs] == ["transforms", "export:default", "lake maintenance"]

    assert jobs[0].run() == "skipped: no new lake files"
    assert jobs[1].run() == "published v1"
    assert jobs[1].run() == "skipped: nothing new since v1"

    land(data_dir, list(simulate(SimulationConfig(events=2000, seed=3))), partition=2)
    assert jobs[0].run().startswith("loaded 1 lake files")
    assert jobs[1].run() == "published v2"
    # The fixture's six files of partition 0 are merged; the replaced files stay for the
    # snapshots younger than a day, which still name them.
    assert jobs[2].run() == "merged 6 files into 1; expired 0 snapshots and deleted 0 data files"
    assert jobs[2].run() == "skipped: nothing to compact or expire"
    # The transforms take the merged file in place of the six, then have nothing new.
    assert jobs[0].run().startswith("loaded 1 lake files")
    assert jobs[0].run() == "skipped: no new lake files"
    assert jobs[1].run() == "skipped: nothing new since v2"  # the same rows, the same version

    got = samples(generate_latest(metrics.registry).decode())
    default = (("dataset", "default"),)
    assert got[("flywheel_export_published_versions_total", default)] == 2
    passed = (("dataset", "default"), ("result", "passed"))
    assert got[("flywheel_export_gate_results_total", passed)] == 2  # a skip runs no gate
    assert got[("flywheel_transform_files_loaded_total", ())] == 2
    assert got[("flywheel_transform_events_loaded_total", ())] > 0
    v2 = Catalog.in_data_dir(data_dir).read_manifest("default", "v2")
    published_at = datetime.fromisoformat(v2.created_at).timestamp()
    assert got[("flywheel_export_last_published_timestamp_seconds", default)] == published_at
    # A scheduler started again reads the time from the target.
    restarted = SchedulerMetrics()
    restarted.export.seed(Catalog.in_data_dir(data_dir), ["default"])
    again = samples(generate_latest(restarted.registry).decode())
    assert again[("flywheel_export_last_published_timestamp_seconds", default)] == published_at


def test_an_unexpected_error_is_logged_and_a_stop_ends_the_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    def broken() -> str:
        ran.append("broken")
        raise OSError(28, "No space left on device")

    scheduler = Scheduler(
        [Job("broken", "0 * * * *", broken), recorder(ran, "hourly")], clock=lambda: T0
    )
    scheduler.run_due(T0)
    with caplog.at_level(logging.ERROR, logger="flywheel.shell.schedule"):
        scheduler.run_due(T0 + timedelta(hours=1))
    assert ran == ["broken", "hourly"]
    assert "OSError" in caplog.records[0].fields["error"]  # type: ignore[attr-defined]

    scheduler.stop.set()
    scheduler.run_due(T0 + timedelta(hours=2))
    assert ran == ["broken", "hourly"]  # nothing more runs once a stop was asked for


def test_an_empty_transforms_schedule_turns_it_off(data_dir: Path) -> None:
    datasets = DatasetsFile(
        schedule=Schedule(transforms=""), datasets={"default": DatasetPolicy(schedule="0 * * * *")}
    )
    assert [job.name for job in build_jobs(data_dir, datasets, KEYRING)] == [
        "export:default", "lake maintenance",
    ]  # fmt: skip


def test_retention_job_only_with_a_period(data_dir: Path) -> None:
    datasets = DatasetsFile(datasets={"default": DatasetPolicy()})
    assert "retention" not in [job.name for job in build_jobs(data_dir, datasets, KEYRING)]
    jobs = build_jobs(data_dir, datasets, KEYRING, lake_retention_days=30)
    [retention] = [job for job in jobs if job.name == "retention"]
    assert retention.cron == "30 3 * * *"
    assert retention.run() == "skipped: no lake file past retention"  # landed today


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("0 0 31 2 *", "never fires"),  # February has no 31st: croniter could never find a time
        ("0 0 30 2 *", "never fires"),
        ("* * * * * *", "five fields"),  # croniter reads a sixth field as seconds
        ("* * * * * * *", "five fields"),  # and a seventh as the year
        ("0 0 * *", "five fields"),
    ],
)
def test_cron_expressions_that_never_fire_or_are_not_five_fields_are_refused(
    tmp_path: Path, expression: str, problem: str
) -> None:
    for key, text in [
        ("datasets.feb.schedule", f'[datasets.feb]\nschedule = "{expression}"\n'),
        ("schedule.transforms", f'[schedule]\ntransforms = "{expression}"\n[datasets.feb]\n'),
    ]:
        path = tmp_path / "datasets.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=f"{key}: .*'{re.escape(expression)}' .*{problem}"):
            load_datasets(path)


def test_a_cron_expression_that_fires_once_in_four_years_is_accepted() -> None:
    policy = DatasetPolicy(schedule="0 0 29 2 *")
    assert policy.schedule == "0 0 29 2 *"


def test_the_transforms_job_builds_the_teams_models(data_dir: Path, tmp_path: Path) -> None:
    team = tmp_path / "team-models"
    team.mkdir()
    (team / "quick.sql").write_text(
        "-- depends_on: responses\n-- refresh_by: response_id\n"
        "SELECT response_id, copies > 0 AS quick FROM responses\n"
    )
    datasets = DatasetsFile(datasets={"default": DatasetPolicy()})
    [transforms, *_] = build_jobs(data_dir, datasets, KEYRING, models_dir=team)
    land(data_dir, [generation("team-r1", conversation_id="team-c1")], partition=3)

    assert transforms.run().startswith("loaded 1 lake files")
    assert query(data_dir, "SELECT count(*) FROM quick") == query(
        data_dir, "SELECT count(*) FROM responses"
    )
    (team / "quick.sql").write_text("SELECT 1 AS x; SELECT 2 AS y")
    with pytest.raises(ConfigError, match=r"quick.sql\) is not one SELECT"):
        build_jobs(data_dir, datasets, KEYRING, models_dir=team)
