"""``flywheel transform run --through DAY``: only the lake files landed on or before the day are
loaded, so a scheduler can run the command once per landing day; a second run for the same or an
earlier day loads nothing and changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from flywheel.errors import ConfigError
from flywheel.shell.cli import landing_day
from tests.factories import generation, make_event
from tests.helpers.cli import assert_one_line_error, flywheel
from tests.helpers.lake import land, query
from transforms.models import discover
from transforms.runner import run_transforms
from warehouse.lake import Lake

MONDAY = datetime(2026, 1, 5, 23, 59, tzinfo=UTC)
WEDNESDAY = datetime(2026, 1, 7, 0, 1, tzinfo=UTC)


def warehouse(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every loaded event and every model table's rows, in a fixed order."""
    import duckdb

    tables = ["events", *sorted(discover())]
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        return {table: db.execute(f'SELECT * FROM "{table}" ORDER BY ALL').fetchall()
                for table in tables}  # fmt: skip


def loaded_days(data_dir: Path) -> list[str]:
    return [path.split("/")[0] for (path,) in query(data_dir, "SELECT path FROM lake_files")]


@pytest.mark.slow  # each command is a process of its own: about 6 s a run on two cores
def test_through_loads_only_the_files_landed_by_that_day(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    lake = Lake.in_data_dir(data_dir)
    land(lake, [generation("r1"), make_event("copy", response_id="r1")], now=MONDAY)
    land(lake, [generation("r2", parent="m2"), make_event("copy", response_id="r2")],
         first=2, now=WEDNESDAY)  # fmt: skip
    env = {"FLYWHEEL_DATA_DIR": str(data_dir)}

    tuesday = flywheel("transform", "run", "--through", "2026-01-06", env=env)

    assert tuesday.returncode == 0, tuesday.stderr
    assert "1 lake files loaded, 2 new events (landed through 2026-01-06)" in tuesday.stdout
    assert loaded_days(data_dir) == ["landed_date=2026-01-05"]
    assert query(data_dir, "SELECT response_id FROM responses") == [("r1",)]
    before = warehouse(data_dir)

    again = flywheel("transform", "run", "--through", "2026-01-06", env=env)

    assert again.returncode == 0, again.stderr
    assert "0 lake files loaded, 0 new events (landed through 2026-01-06)" in again.stdout
    assert warehouse(data_dir) == before
    assert run_transforms(data_dir, through=date(2026, 1, 5)).files_loaded == 0  # an earlier day
    assert warehouse(data_dir) == before

    assert run_transforms(data_dir).events_loaded == 2  # no day: everything landed
    everything = warehouse(data_dir)
    assert sorted(everything["responses"])[1][0] == "r2"
    # A day before files already loaded forgets none of them.
    assert run_transforms(data_dir, through=date(2026, 1, 6)).files_loaded == 0
    assert warehouse(data_dir) == everything


def test_a_day_that_is_not_a_date_is_one_line(tmp_path: Path) -> None:
    result = flywheel("transform", "run", "--through", "2026-13-01",
                      env={"FLYWHEEL_DATA_DIR": str(tmp_path)})  # fmt: skip

    assert_one_line_error(result, "--through must be a day as YYYY-MM-DD, not '2026-13-01'", code=3)
    assert not (tmp_path / "warehouse.duckdb").exists()
    for day in ("20260105", "2026-1-5", "yesterday", "2026-01-05T00:00"):
        with pytest.raises(ConfigError, match="--through must be a day as YYYY-MM-DD"):
            landing_day(day)
    assert landing_day("2026-01-05") == date(2026, 1, 5)
