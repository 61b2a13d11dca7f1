"""Incremental load of lake files into the warehouse: once per event, atomic per chunk."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.errors import FlywheelError
from ingest.pipeline import DedupeWindow, RawMessage
from tests.factories import make_event, warehouse_held
from tests.helpers.lake import ALL_TEXTS, PIPELINE, land, query
from transforms.runner import run_transforms
from warehouse.lake import Lake

EVENTS_SQL = "SELECT * EXCLUDE (lake_file) FROM events ORDER BY event_id"


def test_incremental_runs_load_each_file_once(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    land(lake, [make_event("generation"), make_event("copy")])
    first = run_transforms(tmp_path)
    assert (first.files_loaded, first.events_loaded) == (1, 2)
    assert (run_transforms(tmp_path).files_loaded, run_transforms(tmp_path).events_loaded) == (0, 0)
    land(lake, [make_event("rating")], first=2)
    third = run_transforms(tmp_path)
    assert (third.files_loaded, third.events_loaded) == (1, 1)
    assert query(tmp_path, "SELECT count(*) FROM events") == [(3,)]
    assert query(tmp_path, "SELECT status, count(*) FROM transform_runs GROUP BY ALL") == [
        ("succeeded", 4)
    ]


def test_an_event_landed_twice_keeps_its_first_landing(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    original = make_event("rating", value="up")
    land(lake, [original, make_event("copy")])
    land(lake, [{**original, "value": "down"}, make_event("edit")], first=2)  # same event id
    run_transforms(tmp_path)
    assert query(tmp_path, f"SELECT rating_value, source_offset FROM events "
                           f"WHERE event_id = '{original['event_id']}'") == [("up", 0)]  # fmt: skip
    assert query(tmp_path, "SELECT rows, new_events FROM lake_files ORDER BY path") == [
        (2, 2),
        (2, 1),
    ]


def test_an_event_landed_twice_in_one_file_has_one_text_the_first(tmp_path: Path) -> None:
    import polars as pl

    generation = make_event("generation", response_id="r1", response="```python\nok = 1\n```")
    resent = make_event("generation", response_id="r1", response="```python\nbroken = (\n```")
    messages = [RawMessage("t", 0, i, b"c", json.dumps(e).encode())
                for i, e in enumerate([generation, resent])]  # fmt: skip
    frame = PIPELINE.frame(PIPELINE.process(messages, DedupeWindow(0)))
    # The resend carries the same event id (a client retry after the dedupe window).
    frame = frame.with_columns(event_id=pl.lit(generation["event_id"]))
    Lake.in_data_dir(tmp_path).land(frame, topic="t", partition=0, first_offset=0, last_offset=1)
    run_transforms(tmp_path)
    assert query(tmp_path, "SELECT count(*) FROM events") == [(1,)]
    assert query(tmp_path, "SELECT text FROM lake_texts", texts=ALL_TEXTS) == [
        (generation["response"],)
    ]
    assert query(tmp_path, "SELECT python_blocks, python_parsed FROM code_checks") == [(1, 1)]
    assert query(tmp_path, "SELECT process_score FROM rewards") == [(1.0,)]


def test_incremental_and_full_refresh_give_the_same_events(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    resent = make_event("edit")
    batches = [
        [make_event("generation"), resent],
        [make_event("ab_choice"), {**resent, "edited_text": "changed"}],
        [make_event("regenerate"), make_event("rating", reason="too long")],
    ]
    offset = 0
    for events in batches:
        land(lake, events, first=offset)
        offset += len(events)
        run_transforms(tmp_path)
    incremental = query(tmp_path, EVENTS_SQL)
    summary = run_transforms(tmp_path, full_refresh=True)
    assert (summary.files_loaded, summary.events_loaded) == (3, 5)
    assert query(tmp_path, EVENTS_SQL) == incremental
    assert len(incremental) == 5


def test_texts_stay_in_the_lake_and_are_read_from_the_file_each_event_was_loaded_from(
    tmp_path: Path,
) -> None:
    lake = Lake.in_data_dir(tmp_path)
    first = make_event("generation", response="the first landing")
    edit = make_event("edit", edited_text="an edited text")
    land(lake, [first, edit])
    # The same event landed again later, with other bytes: the warehouse keeps the first.
    land(lake, [{**first, "response": "a later copy"}], first=2)
    run_transforms(tmp_path)
    columns = {c for (c,) in query(tmp_path, "SELECT column_name FROM duckdb_columns() "
                                             "WHERE table_name = 'events'")}  # fmt: skip
    assert not columns & {"prompt", "response", "edited_text", "copy_text", "rating_reason"}
    rows = query(tmp_path, "SELECT event_id, prompt, text FROM lake_texts ORDER BY text",
                 texts=ALL_TEXTS)  # fmt: skip
    assert [(e, t) for e, _, t in rows] == [
        (edit["event_id"], "an edited text"),
        (first["event_id"], "the first landing"),
    ]
    assert json.loads(rows[1][1]) == [
        {"role": "user", "content": "How do I reverse a list in Python?", "response_id": None}
    ]


def test_an_event_whose_lake_file_is_gone_has_no_texts(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    land(lake, [make_event("generation")])
    land(lake, [make_event("generation", response="kept")], first=1)
    run_transforms(tmp_path)
    next(f for f in lake.files() if f.first_offset == 0).path.unlink()
    assert query(tmp_path, "SELECT text FROM lake_texts", texts=ALL_TEXTS) == [("kept",)]


def test_a_file_that_cannot_be_read_loads_nothing_of_its_chunk(tmp_path: Path) -> None:
    lake = Lake.in_data_dir(tmp_path)
    land(lake, [make_event("rating")])
    broken = next(lake.files()).path.with_name(
        "t+0+00000000000000000001+00000000000000000001.parquet"
    )
    broken.write_bytes(b"not parquet")
    # The commit to the lake's table reads every footer first, and commits nothing.
    with pytest.raises(FlywheelError, match=re.escape(f"the lake file {broken} is not a readable")):
        run_transforms(tmp_path)
    assert query(tmp_path, "SELECT count(*) FROM events") == [(0,)]
    assert query(tmp_path, "SELECT count(*) FROM lake_files") == [(0,)]
    assert query(tmp_path, "SELECT status FROM transform_runs") == [("failed",)]


def test_cli_transform_run_prints_a_table_and_a_second_run_is_told_the_warehouse_is_busy(
    tmp_path: Path,
) -> None:
    import os

    land(Lake.in_data_dir(tmp_path), [make_event("rating"), make_event("copy")])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")},
           "FLYWHEEL_DATA_DIR": str(tmp_path), "COLUMNS": "120"}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "flywheel", "transform", "run"],
                            env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 lake files loaded, 2 new events" in result.stdout

    with warehouse_held(tmp_path / "warehouse.duckdb"):
        busy = subprocess.run([sys.executable, "-m", "flywheel", "transform", "run"],
                              env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert busy.returncode == 4  # busy: try again later
    assert "Traceback" not in busy.stderr
    assert "in use by another process" in busy.stderr


def test_cli_transform_run_refuses_a_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    """A mistyped FLYWHEEL_DATA_DIR used to get a new, empty warehouse and a table of zeros."""
    from tests.helpers.cli import assert_one_line_error, flywheel

    missing = tmp_path / "dta"
    result = flywheel("transform", "run", env={"FLYWHEEL_DATA_DIR": str(missing)})

    assert_one_line_error(result, f"the data dir {missing} does not exist", code=3)
    assert not missing.exists()


def test_cli_transform_run_on_a_damaged_lake_file_prints_only_the_error(tmp_path: Path) -> None:
    """Not on a terminal, the progress bar draws nothing: the error is the first line."""
    from tests.helpers.cli import assert_one_line_error, flywheel

    land(Lake.in_data_dir(tmp_path), [make_event("rating")])
    damaged = next(Lake.in_data_dir(tmp_path).files()).path
    damaged.write_bytes(b"garbage")

    result = flywheel("transform", "run", env={"FLYWHEEL_DATA_DIR": str(tmp_path)})

    # The transforms commit the landed files to the lake's table first, reading their footers.
    assert_one_line_error(result, f"the lake file {damaged} is not a readable Parquet file")
    assert result.stderr.startswith("error: ")
