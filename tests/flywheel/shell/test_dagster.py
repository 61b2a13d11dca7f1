"""The Dagster definitions (``flywheel.shell.dagster``): the models and the datasets as assets
partitioned by landing day, materialised in-process on a small lake; the quality gate as an
asset check; schedules and partitions as the datasets file says."""

from __future__ import annotations

import importlib
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from export.policy import load_datasets
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.errors import ConfigError, MissingExtraError, WarehouseBusyError
from flywheel.extras import EXTRAS
from flywheel.settings import Settings
from flywheel.shell.dagster import build_definitions, dagster_error
from privacy.keys import write_keyring
from tests.factories import generation
from tests.helpers.datasets import KEYRING, land
from tests.helpers.lake import land as land_events
from tests.helpers.lake import query
from transforms.models import discover
from warehouse.lake import Lake

MONDAY = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)

DATASETS = """
[schedule]
transforms = "*/30 * * * *"

[datasets.default]
kinds = ["dpo", "kto", "reward"]
min_rows = 5
schedule = "0 * * * *"

[datasets.labels-only]
kinds = ["kto"]
min_rows = 1000000
"""
"""Two datasets: ``default`` passes the gate on the small lake; ``labels-only`` asks for more
rows than it has, so its gate fails."""


def configure(
    tmp_path: Path, datasets: str = DATASETS, retention_days: int | None = None
) -> Settings:
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    write_keyring(KEYRING, tmp_path / "keys.json")
    (tmp_path / "datasets.toml").write_text(datasets)
    return Settings(
        data_dir=data_dir,
        privacy={"hmac_key_file": tmp_path / "keys.json", "lake_retention_days": retention_days},
        export={"datasets_file": tmp_path / "datasets.toml"},
        dagster={"start_date": date(2026, 3, 1)},
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A small lake: simulated traffic landed on Monday, more on Tuesday; no warehouse yet."""
    settings = configure(tmp_path)
    events = list(simulate(SimulationConfig(events=1600, seed=5, ab_rate=0.2)))
    land(settings.data_dir, events[:1000], chunk=500, now=MONDAY)
    land(settings.data_dir, events[1000:], first=1000, chunk=600, now=TUESDAY)
    return settings


def materialise(
    definitions: dg.Definitions, day: str, *datasets: str, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    """The models and ``datasets`` of one landing day, in one in-process run."""
    assets = list(definitions.assets or [])
    selection = [dg.AssetKey(["datasets", name]) for name in datasets]
    models = [key for a in assets if isinstance(a, dg.AssetsDefinition) for key in a.keys]
    return dg.materialize(
        assets,
        partition_key=day,
        selection=[k for k in models if k.path[0] == "warehouse"] + selection,
        raise_on_error=raise_on_error,
    )


def materialised(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    """Each materialised asset's metadata, by its key as a path."""
    return {
        event.asset_key.to_user_string(): {
            name: value.value
            for name, value in event.step_materialization_data.materialization.metadata.items()
        }
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    }


@pytest.mark.slow  # two transform runs and two exports with the quality gate: about 20 s
def test_a_day_builds_the_models_through_it_and_publishes_the_dataset(settings: Settings) -> None:
    definitions = build_definitions(settings)

    monday = materialise(definitions, "2026-03-02", "default")

    assert monday.success
    done = materialised(monday)
    assert {f"warehouse/{name}" for name in discover()} | {"datasets/default"} == set(done)
    assert done["warehouse/responses"]["files_loaded"] == 2  # Monday's files, not Tuesday's
    assert done["warehouse/responses"]["landed_through"] == "2026-03-02"
    # Built for the first time: every row is added.
    first = done["warehouse/responses"]
    assert (first["rows_added"], first["rows_removed"]) == (first["rows_written"], 0)
    loaded = query(settings.data_dir, "SELECT DISTINCT split_part(path, '/', 1) FROM lake_files")
    assert loaded == [("landed_date=2026-03-02",)]
    for table in ("responses", "preference_pairs", "labels", "signal_calibration"):
        [(rows,)] = query(settings.data_dir, f"SELECT count(*) FROM {table}")
        assert rows > 0, table
    assert done["datasets/default"]["published"] is True
    assert done["datasets/default"]["version"] == "v1"
    manifest = settings.data_dir / "datasets" / "default" / "v1" / "manifest.json"
    assert json.loads(manifest.read_text())["quality"]["success"] is True
    [check] = monday.get_asset_check_evaluations()
    assert (check.asset_key.to_user_string(), check.check_name, check.passed) == (
        "datasets/default", "quality_gate", True,
    )  # fmt: skip
    assert Path(str(check.metadata["report"].value)) == manifest.parent / "quality" / "index.html"
    assert manifest.parent.joinpath("quality", "index.html").is_file()

    tuesday = materialise(definitions, "2026-03-03", "default")
    again = materialise(definitions, "2026-03-03", "default")

    assert materialised(tuesday)["warehouse/responses"]["files_loaded"] == 1
    assert materialised(tuesday)["datasets/default"]["version"] == "v2"
    done = materialised(again)  # the same day again: nothing to load, nothing to publish
    assert done["warehouse/responses"]["files_loaded"] == 0
    assert done["warehouse/responses"]["mode"] == "unchanged"
    assert (
        done["warehouse/responses"]["rows_added"],
        done["warehouse/responses"]["rows_removed"],
    ) == (0, 0)
    assert (done["datasets/default"]["published"], done["datasets/default"]["version"]) == (
        False, "v2",
    )  # fmt: skip
    assert [c.passed for c in again.get_asset_check_evaluations()] == [True]


@pytest.mark.slow  # a transform run and the quality gate: about 10 s
def test_a_failed_gate_is_a_failed_check_and_nothing_is_published(settings: Settings) -> None:
    definitions = build_definitions(settings)

    result = materialise(definitions, "2026-03-03", "labels-only", raise_on_error=False)

    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert (check.asset_key.to_user_string(), check.check_name, check.passed) == (
        "datasets/labels-only", "quality_gate", False,
    )  # fmt: skip
    failed = check.metadata["failed"].value
    assert isinstance(failed, list) and failed
    assert any(line.startswith("kto: expect_table_row_count_to_be_between") for line in failed)
    report = Path(str(check.metadata["report"].value))
    assert report.name == "index.html" and report.is_file()
    assert "datasets/labels-only" not in materialised(result)  # the models were, not the dataset
    assert "warehouse/labels" in materialised(result)
    assert not list((settings.data_dir / "datasets" / "labels-only").glob("v*"))
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "the quality gate failed" in str(failure.step_failure_data.error)


def test_assets_schedules_and_partitions_follow_the_datasets_file(tmp_path: Path) -> None:
    settings = configure(tmp_path)
    definitions = build_definitions(settings)

    models = discover()
    graph = definitions.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {"lake/events", *(f"warehouse/{m}" for m in models),
                    "datasets/default", "datasets/labels-only"}  # fmt: skip

    def upstream(*key: str) -> set[str]:
        return {parent.to_user_string() for parent in graph.get(dg.AssetKey(key)).parent_keys}

    for name, model in models.items():  # the models' dependencies, the lake for the sources
        assert upstream("warehouse", name) == {
            f"warehouse/{d}" if d in models else "lake/events" for d in model.depends_on
        }
    assert upstream("datasets", "labels-only") == {  # kto rows are labels; no pairs read
        "warehouse/labels", "warehouse/responses", "warehouse/signal_calibration",
    }  # fmt: skip
    assert upstream("datasets", "default") == {
        "warehouse/preference_pairs", "warehouse/labels", "warehouse/responses",
        "warehouse/signal_calibration",
    }  # fmt: skip
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert checks == {
        ("datasets/default", "quality_gate"),
        ("datasets/labels-only", "quality_gate"),
    }

    schedules = {s.name: s for s in definitions.schedules or []}
    datasets = load_datasets(settings.export.datasets_file)
    assert {name: s.cron_schedule for name, s in schedules.items()} == {
        "flywheel_transforms": datasets.schedule.transforms,
        "flywheel_export_default": datasets.datasets["default"].schedule,
        "flywheel_lake_maintenance": datasets.schedule.lake_maintenance,
    }  # labels-only has no schedule (exported on request only), retention no period
    assert all(s.execution_timezone == "UTC" for s in schedules.values())
    assert schedules["flywheel_export_default"].job_name == "flywheel_export_default"
    assert definitions.resolve_job_def("flywheel_export_labels_only") is not None

    days = graph.get(dg.AssetKey(["datasets", "default"])).partitions_def
    assert isinstance(days, dg.DailyPartitionsDefinition) and days.timezone == "UTC"
    at = datetime(2026, 3, 5, 10, 30, tzinfo=UTC)
    # From the start date through the landing day in progress.
    keys = days.get_partition_keys(current_time=at)
    assert (keys[0], keys[-1], len(keys)) == ("2026-03-01", "2026-03-05", 5)
    tick = schedules["flywheel_transforms"]
    request = tick(dg.build_schedule_context(scheduled_execution_time=at))
    assert isinstance(request, dg.RunRequest) and request.partition_key == "2026-03-05"
    early = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 2, 1, tzinfo=UTC))
    assert isinstance(tick(early), dg.SkipReason)


def test_the_lake_upkeep_jobs_run_on_the_datasets_file_schedule(tmp_path: Path) -> None:
    settings = configure(tmp_path, retention_days=30)
    lake = Lake.in_data_dir(settings.data_dir)
    for day, first in ((5, 0), (6, 2), (7, 4)):
        land_events(
            lake, [generation(f"r{day}")], first=first, now=datetime(2026, 1, day, tzinfo=UTC)
        )
    definitions = build_definitions(settings)

    schedules = {s.name: s.cron_schedule for s in definitions.schedules or []}
    assert schedules["flywheel_lake_retention"] == "30 3 * * *"  # the shipped datasets file's
    assert schedules["flywheel_lake_maintenance"] == "0 4 * * *"
    retention = definitions.resolve_job_def("flywheel_lake_retention").execute_in_process()
    maintenance = definitions.resolve_job_def("flywheel_lake_maintenance").execute_in_process()

    assert retention.success and maintenance.success
    # Older than 30 days: the first two files go, the newest stays as the workers' resume point.
    assert [f.landed_date.day for f in lake.files()] == [7]


def test_a_datasets_file_without_schedules_gives_none(tmp_path: Path) -> None:
    settings = configure(
        tmp_path, '[schedule]\ntransforms = ""\nlake_maintenance = ""\n\n[datasets.default]\n'
    )
    definitions = build_definitions(settings)
    assert not definitions.schedules
    assert definitions.resolve_job_def("flywheel_transforms") is not None


def test_two_datasets_that_would_share_a_job_name_are_refused(tmp_path: Path) -> None:
    settings = configure(tmp_path, "[datasets.a-b]\n[datasets.a_b]\n")
    with pytest.raises(ConfigError, match="datasets 'a-b' and 'a_b' would share the Dagster job"):
        build_definitions(settings)


def test_errors_become_a_retry_when_busy_and_a_failure_otherwise() -> None:
    assert isinstance(dagster_error(WarehouseBusyError("held")), dg.RetryRequested)
    failure = dagster_error(ConfigError("FLYWHEEL_X: wrong\nmore"))
    assert isinstance(failure, dg.Failure)
    assert failure.description == "FLYWHEEL_X: wrong"
    assert failure.metadata["exit_code"].value == 3


def test_without_dagster_the_module_is_the_one_line_missing_extra_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "dagster", None)  # as if the extra were not installed
    monkeypatch.delitem(sys.modules, "flywheel.shell.dagster")
    with pytest.raises(MissingExtraError) as caught:
        importlib.import_module("flywheel.shell.dagster")
    assert str(caught.value) == (
        f"{EXTRAS['dagster']} needs the 'dagster' extra, which is not installed: "
        "pip install 'feedback-flywheel[dagster]'"
    )


def test_a_teams_models_are_assets_and_a_dataset_depends_on_its_extra_columns(
    tmp_path: Path,
) -> None:
    team = tmp_path / "team-models"
    team.mkdir()
    (team / "quick.sql").write_text(
        "-- depends_on: responses\n-- refresh_by: response_id\n"
        "SELECT response_id, copies > 0 AS quick FROM responses\n"
    )
    datasets = '[datasets.d]\nextra_columns = [{ model = "quick", columns = ["quick"] }]\n'
    settings = configure(tmp_path, datasets).model_copy(
        update={"transforms": Settings().transforms.model_copy(update={"models_dir": team})}
    )

    graph = build_definitions(settings).resolve_asset_graph()

    def upstream(*key: str) -> set[str]:
        return {parent.to_user_string() for parent in graph.get(dg.AssetKey(key)).parent_keys}

    assert upstream("warehouse", "quick") == {"warehouse/responses"}
    assert "warehouse/quick" in upstream("datasets", "d")
