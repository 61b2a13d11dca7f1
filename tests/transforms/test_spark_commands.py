"""The ways in to the Spark engine: `flywheel transform run --engine spark` (and the setting that
makes it the default, for exports too), the spark-submit job, and the one line each mistake
ends in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from export.policy import load_datasets
from flywheel.errors import ConfigError, TransientError
from flywheel.settings import SparkSettings
from flywheel.shell.schedule import build_jobs
from privacy.keys import write_keyring
from tests.factories import generation, make_event
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import KEYRING
from tests.helpers.lake import land
from transforms import spark_job
from transforms.spark import PACKAGES, _catalog_error, _session_error, session_properties
from warehouse.lake import Lake
from warehouse.table import MODELS_NAMESPACE, LakeTable, default_catalog_uri

# pyspark reads each result from the JVM over a local socket it leaves to the garbage collector.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <socket.socket fd=\d+, family=2, type=1, proto=6, "
    r"laddr=\('127.0.0.1', \d+\), raddr=\('127.0.0.1', \d+\)>"
    ":pytest.PytestUnraisableExceptionWarning"
)

EVENTS = [
    generation("r1", "m1", conversation_id="c1"),
    generation("r2", "m1", conversation_id="c1"),
    make_event("copy", response_id="r1", text="answer", conversation_id="c1"),
]


def small_lake(data_dir: Path) -> LakeTable:
    land(Lake.in_data_dir(data_dir), EVENTS)
    return LakeTable(Lake.in_data_dir(data_dir), default_catalog_uri(data_dir))


@pytest.mark.slow
def test_transform_run_with_the_spark_engine_builds_the_tables(
    tmp_path: Path, spark_settings: SparkSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In this process, on the test run's Spark application (a new one is most of a minute).
    from flywheel.shell.cli import app

    data_dir = tmp_path / "data"
    table = small_lake(data_dir)
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(data_dir))
    monkeypatch.setenv("FLYWHEEL_TRANSFORMS__ENGINE", "spark")
    result = CliRunner().invoke(app, ["transform", "run"])
    assert result.exit_code == 0, result.output
    assert "responses (full)" in result.output and "on Spark" in result.output
    pairs = table.catalog().load_table((MODELS_NAMESPACE, "preference_pairs")).scan().to_arrow()
    assert pairs.num_rows == 1  # the copied answer over its sibling
    assert not (data_dir / "warehouse.duckdb").exists()  # the DuckDB warehouse is not touched
    # The scheduler's transforms job on the Spark engine: nothing new since.
    [job] = [j for j in build_jobs(data_dir, load_datasets(), KEYRING, table=table,
                                   spark=spark_settings) if j.name == "transforms"]  # fmt: skip
    assert "no new lake files, models unchanged" in job.run()
    # Each run keeps the current snapshot of each table only (an erased or replaced row does
    # not stay in an old one).
    events_table = table.catalog().load_table((MODELS_NAMESPACE, "events"))
    assert len(events_table.metadata.snapshots) == 1
    # An erasure drops Spark's tables with every file of theirs.
    write_keyring(KEYRING, tmp_path / "keys.json")
    monkeypatch.setenv("FLYWHEEL_PRIVACY__HMAC_KEY_FILE", str(tmp_path / "keys.json"))
    erased = CliRunner().invoke(app, ["erase", "--user", "user-1"])
    assert erased.exit_code == 0, erased.output
    assert table.catalog().list_tables(MODELS_NAMESPACE) == []
    assert [p for p in (data_dir / "lake" / "models").rglob("*") if p.is_file()] == []


@pytest.mark.slow
def test_spark_submit_runs_the_job(tmp_path: Path, spark_settings: SparkSettings) -> None:
    data_dir = tmp_path / "data"
    table = small_lake(data_dir)
    # The jars as the test run's sessions get them (resolved once into the cache).
    properties = session_properties(spark_settings)
    jars = (
        ["--jars", properties["spark.jars"]]
        if "spark.jars" in properties
        else [
            "--packages",
            ",".join(PACKAGES),
            "--conf",
            f"spark.jars.ivy={properties['spark.jars.ivy']}",
        ]
    )
    submit = Path(sys.executable).parent / "spark-submit"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    done = subprocess.run(
        [str(submit), "--master", "local[1]", "--conf", "spark.ui.enabled=false", *jars,
         spark_job.__file__, "--select", "responses"],
        env={**clean, **env(data_dir), "PYSPARK_PYTHON": sys.executable,
             "PYSPARK_DRIVER_PYTHON": sys.executable},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "responses (full)" in done.stdout
    responses = table.catalog().load_table((MODELS_NAMESPACE, "responses")).scan().to_arrow()
    assert sorted(responses.column("response_id").to_pylist()) == ["r1", "r2"]
    assert (
        responses.column("copies").to_pylist()[responses["response_id"].to_pylist().index("r1")]
        == 1
    )


def test_the_job_prints_its_submit_command() -> None:
    command = subprocess.run(
        [sys.executable, "-m", "transforms.spark_job", "--command"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert command.startswith("spark-submit --master ")
    assert ",".join(PACKAGES) in command and command.strip().endswith("spark_job.py")


def test_a_catalog_naming_another_lake_is_one_line_before_spark_starts(tmp_path: Path) -> None:
    small_lake(tmp_path / "first" / "data").commit()
    moved = tmp_path / "moved" / "data"
    shutil.copytree(tmp_path / "first" / "data", moved)
    result = flywheel("transform", "run", "--engine", "spark", env=env(moved))
    assert_one_line_error(result, "holds the table of the lake at", code=3)


def test_through_is_refused_with_the_spark_engine(tmp_path: Path) -> None:
    result = flywheel(
        "transform", "run", "--engine", "spark", "--through", "2026-01-05",
        env=env(tmp_path / "data"),
    )  # fmt: skip
    assert_one_line_error(result, "--through is not supported with --engine spark", code=3)


def test_an_export_from_spark_tables_that_were_never_built_says_what_to_run(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    small_lake(data_dir).commit()
    write_keyring(KEYRING, tmp_path / "keys.json")
    result = flywheel("export", "run", env=env(data_dir, FLYWHEEL_TRANSFORMS__ENGINE="spark"))
    assert_one_line_error(result, "run `flywheel transform run --engine spark` first", code=6)


@pytest.mark.parametrize(
    ("message", "kind", "fragment"),
    [
        (":: problems summary :: unresolved dependency: org.apache.iceberg#iceberg",
         ConfigError, "could not fetch its jars"),
        ("Java gateway process exited before sending its port number",
         ConfigError, "Java 17 or later"),
        ("Application has been killed. Reason: All masters are unresponsive! Giving up.",
         TransientError, "Spark master spark://10.0.0.9:7077 is unreachable"),
    ],
)  # fmt: skip
def test_a_session_that_cannot_start_is_one_line(
    message: str, kind: type[Exception], fragment: str
) -> None:
    error = _session_error(RuntimeError(message), SparkSettings(master="spark://10.0.0.9:7077"))
    assert isinstance(error, kind) and fragment in str(error) and "\n" not in str(error)


@pytest.mark.parametrize(
    ("message", "kind", "fragment"),
    [
        ("[CATALOG_PLUGIN_CLASS_NOT_FOUND] Cannot find catalog plugin class for catalog "
         "'flywheel': org.apache.iceberg.spark.SparkCatalog", ConfigError, "Spark runtime"),
        ("java.sql.SQLException: No suitable driver found for jdbc:postgresql://db/lake",
         ConfigError, "no JDBC driver"),
        ("Connection refused", TransientError, "could not open the lake's catalog"),
    ],
)  # fmt: skip
def test_a_catalog_spark_cannot_open_is_one_line(
    message: str, kind: type[Exception], fragment: str
) -> None:
    error = _catalog_error(RuntimeError(message))
    assert isinstance(error, kind) and fragment in str(error) and "\n" not in str(error)
