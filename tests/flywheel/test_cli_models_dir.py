"""``FLYWHEEL_TRANSFORMS__MODELS_DIR`` as a user sets it: ``flywheel transform run`` builds the
team's models beside the shipped ones, and each mistake in them is one red line naming the file,
exit code 3, before anything is built (or, for SQL DuckDB refuses, with the run recorded failed
and the tables as they were)."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy.keys import write_keyring
from tests.factories import generation, make_event
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import KEYRING
from tests.helpers.lake import land, query
from warehouse.lake import Lake

KEPT_RESPONSES = """-- depends_on: responses
-- refresh_by: response_id
SELECT response_id, copies + ratings_up AS kept FROM responses
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    land(Lake.in_data_dir(data_dir), [generation("r1"), make_event("copy", response_id="r1")])
    return data_dir


def models(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "team-models"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.sql"):
        old.unlink()
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


def test_transform_run_builds_the_teams_models(data_dir: Path, tmp_path: Path) -> None:
    folder = models(tmp_path, {"kept_responses.sql": KEPT_RESPONSES})

    result = flywheel(
        "transform", "run", env=env(data_dir, FLYWHEEL_TRANSFORMS__MODELS_DIR=str(folder))
    )

    assert result.returncode == 0, result.stderr
    assert "kept_responses (full)" in result.stdout
    assert query(data_dir, "SELECT * FROM kept_responses") == [("r1", 1)]
    # Unset, the shipped models alone, and the team's table is left as it is.
    again = flywheel("transform", "run", env=env(data_dir))
    assert again.returncode == 0, again.stderr
    assert "kept_responses" not in again.stdout


@pytest.mark.slow
def test_each_mistake_is_one_red_line_naming_the_file(data_dir: Path, tmp_path: Path) -> None:
    cases = [
        ({"responses.sql": "SELECT 1 AS x"}, "responses.sql) has the name of a shipped model"),
        ({"drop.sql": "DROP TABLE events"}, "drop.sql) is not one SELECT statement"),
        ({"a.sql": "-- depends_on: b\nSELECT 1 AS x", "b.sql": "-- depends_on: a\nSELECT 1 AS x"},
         "a.sql) -> b"),
        ({"lost.sql": "-- depends_on: nowhere\nSELECT 1 AS x"},
         "lost.sql) depends on unknown nowhere"),
    ]  # fmt: skip
    for files, fragment in cases:
        folder = models(tmp_path, files)
        result = flywheel(
            "transform", "run", env=env(data_dir, FLYWHEEL_TRANSFORMS__MODELS_DIR=str(folder))
        )
        assert_one_line_error(result, fragment, code=3)
    # Refused before the run began: nothing was loaded or recorded.
    assert not (data_dir / "warehouse.duckdb").exists()

    missing = env(data_dir, FLYWHEEL_TRANSFORMS__MODELS_DIR=str(tmp_path / "nowhere"))
    assert_one_line_error(flywheel("transform", "run", env=missing), "is not a directory", code=3)
    # The scheduler checks them at its start, not at its first run.
    write_keyring(KEYRING, data_dir.parent / "keys.json")
    assert_one_line_error(flywheel("schedule", "--once", env=missing), "nowhere", code=3)


def test_sql_duckdb_refuses_fails_the_run_and_keeps_the_tables(
    data_dir: Path, tmp_path: Path
) -> None:
    folder = models(tmp_path, {"kept_responses.sql": KEPT_RESPONSES})
    settings = env(data_dir, FLYWHEEL_TRANSFORMS__MODELS_DIR=str(folder))
    assert flywheel("transform", "run", env=settings).returncode == 0
    (folder / "kept_responses.sql").write_text(KEPT_RESPONSES.replace("copies", "no_such_column"))

    result = flywheel("transform", "run", "--full-refresh", env=settings)

    assert_one_line_error(result, "kept_responses.sql) failed in DuckDB", code=3)
    assert query(data_dir, "SELECT status FROM transform_runs ORDER BY started_at") == [
        ("succeeded",),
        ("failed",),
    ]
    assert query(data_dir, "SELECT * FROM kept_responses") == [("r1", 1)]
