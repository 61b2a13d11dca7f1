"""``flywheel transform run``'s table of changes and ``flywheel transform history``, as a user
runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from tests.factories import generation, make_event
from tests.helpers.cli import assert_one_line_error, flywheel
from tests.helpers.lake import land
from transforms.policy import load_policy
from warehouse.db import open_warehouse
from warehouse.lake import Lake


def cells(line: str) -> list[str]:
    """A row of a rich table as its cells."""
    return [cell.strip() for cell in re.split("[┃│]", line)]


@pytest.mark.slow
def test_history_lists_the_runs_newest_first_with_what_each_changed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = {"FLYWHEEL_DATA_DIR": str(data_dir)}
    land(Lake.in_data_dir(data_dir), [generation("r1"), make_event("copy", response_id="r1")])
    first = flywheel("transform", "run", env=settings)
    assert first.returncode == 0, first.stderr
    header = next(line for line in first.stdout.splitlines() if "step" in line)
    assert cells(header) == ["step", "added", "removed", "rows", "seconds"]
    responses = next(line for line in first.stdout.splitlines() if "responses (full)" in line)
    assert cells(responses)[1:4] == ["1", "0", "1"]  # one row added, none removed, one in all
    again = flywheel("transform", "run", "--full-refresh", env=settings)
    assert again.returncode == 0, again.stderr
    land(Lake.in_data_dir(data_dir), [generation("r2", conversation_id="c2")], first=2)
    third = flywheel("transform", "run", env=settings)
    assert third.returncode == 0, third.stderr
    # A run recorded before the changes were: no model rows.
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as db:
        [(oldest,)] = db.execute("SELECT min_by(run_id, started_at) FROM transform_runs").fetchall()
        db.execute("DELETE FROM transform_run_models WHERE run_id = $run", {"run": oldest})

    warehouse = (data_dir / "warehouse.duckdb").read_bytes()
    listed = flywheel("transform", "history", "--json", env=settings)
    assert (data_dir / "warehouse.duckdb").read_bytes() == warehouse  # read, never written
    assert not (data_dir / "warehouse.duckdb.wal").exists()

    assert listed.returncode == 0, listed.stderr
    runs = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(runs) == 3
    assert [run["full_refresh"] for run in runs] == [False, True, False]
    started = [datetime.fromisoformat(run["started_at"]) for run in runs]
    assert started == sorted(started, reverse=True) and started[0].tzinfo is not None
    assert {run["status"] for run in runs} == {"succeeded"}
    assert {run["policy_hash"] for run in runs} == {load_policy().digest}
    assert [run["previous_policy_hash"] for run in runs] == [load_policy().digest] * 2 + [None]
    assert [run["events_loaded"] for run in runs] == [1, 2, 2]
    assert runs[2]["models"] is None
    newest = {m["model"]: m for m in runs[0]["models"]}
    assert (newest["responses"]["mode"], newest["responses"]["added"]) == ("incremental", 1)
    assert newest["responses"]["rows"] == 2 and newest["responses"]["removed"] == 0
    assert {(m["added"], m["removed"]) for m in runs[1]["models"]} == {(0, 0)}

    table = flywheel("transform", "history", "--limit", "2", env=settings)
    assert table.returncode == 0, table.stderr
    shown = [cells(line)[0] for line in table.stdout.splitlines() if "succeeded" in line]
    assert shown == [runs[0]["run_id"][:8], runs[1]["run_id"][:8]]
    assert "responses +1 -0" in table.stdout
    assert runs[2]["run_id"][:8] not in table.stdout

    everything = flywheel("transform", "history", env=settings).stdout
    [oldest_row] = [
        cells(line) for line in everything.splitlines() if runs[2]["run_id"][:8] in line
    ]
    assert oldest_row[-1] == "-"


def test_history_without_a_warehouse_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    result = flywheel("transform", "history", env={"FLYWHEEL_DATA_DIR": str(tmp_path / "data")})
    assert_one_line_error(result, "there is no warehouse", code=6)
    assert not (tmp_path / "data" / "warehouse.duckdb").exists()


def test_history_limit_below_one_is_a_command_line_error(tmp_path: Path) -> None:
    result = flywheel(
        "transform", "history", "--limit", "0", env={"FLYWHEEL_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode == 2


HOLD = """
import sys, time, duckdb
db = duckdb.connect(sys.argv[1])
db.execute("BEGIN")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_history_while_a_run_writes_the_warehouse_is_busy(tmp_path: Path) -> None:
    open_warehouse(tmp_path).dispose()
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "warehouse.duckdb"), "30"],
        stdout=subprocess.PIPE, text=True,
    ) as holder:  # fmt: skip
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            result = flywheel("transform", "history", env={"FLYWHEEL_DATA_DIR": str(tmp_path)})
        finally:
            holder.kill()
    assert_one_line_error(result, "in use by another process", code=4)
