"""Each build counts the rows it added and removed, as multisets: checked against a count made
here from copies of the tables before and after each run (Python multisets of the rows)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from flywheel.dev.simulator import SimulationConfig, simulate
from tests.helpers.datasets import land
from tests.helpers.lake import query
from transforms.changes import Changes, count_changes
from transforms.models import discover
from transforms.policy import DEFAULT_POLICY
from transforms.runner import RunSummary, run_transforms

MODELS = sorted(discover())


def rows(path: Path) -> dict[str, Counter[tuple[str, ...]]]:
    """Every model table of the warehouse file ``path`` as a multiset of its rows (by their
    values' repr: a NaN equals itself there)."""
    copy = path.with_name("copy-" + path.name)
    shutil.copy(path, copy)  # read a copy: the next run writes the file
    with duckdb.connect(str(copy), read_only=True) as db:
        tables = {
            name for (name,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        found = {
            name: Counter(
                tuple(map(repr, row)) for row in db.execute(f'SELECT * FROM "{name}"').fetchall()
            )
            for name in MODELS
            if name in tables
        }
    copy.unlink()
    return found


def expected(
    before: dict[str, Counter[tuple[str, ...]]], after: dict[str, Counter[tuple[str, ...]]]
) -> dict[str, tuple[int, int]]:
    empty: Counter[tuple[str, ...]] = Counter()
    return {
        name: (
            sum((after[name] - before.get(name, empty)).values()),
            sum((before.get(name, empty) - after[name]).values()),
        )
        for name in after
    }


def counted(summary: RunSummary) -> dict[str, tuple[int | None, int | None]]:
    return {step.name: (step.added, step.removed) for step in summary.steps[1:]}


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(simulate(SimulationConfig(events=1_500, seed=5, ab_rate=0.3)))


@pytest.mark.slow
def test_every_build_counts_what_it_changed_as_multisets(
    events: list[dict[str, Any]], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    warehouse = data_dir / "warehouse.duckdb"
    land(data_dir, events[:1000])

    first = run_transforms(data_dir)  # built for the first time: every row added
    after_first = rows(warehouse)
    assert counted(first) == expected({}, after_first)
    assert all(
        added == step.rows
        for step, (added, _) in zip(first.steps[1:], counted(first).values(), strict=True)
    )
    assert sum(step.rows for step in first.steps[1:]) > 0

    same = run_transforms(data_dir, full_refresh=True)  # rebuilt identical: nothing changed
    assert {step.mode for step in same.steps[1:]} == {"full"}
    assert counted(same) == dict.fromkeys(MODELS, (0, 0))
    assert rows(warehouse) == after_first

    policy = tmp_path / "policy.toml"  # other weights change confidences and rewards
    policy.write_text(
        DEFAULT_POLICY.read_text()
        .replace("copy = 0.5", "copy = 0.9")
        .replace("implicit = 0.5", "implicit = 0.7")
    )
    reweighed = run_transforms(data_dir, policy_file=policy)
    after_policy = rows(warehouse)
    assert counted(reweighed) == expected(after_first, after_policy)
    assert counted(reweighed)["rewards"][0] > 0
    assert counted(reweighed)["responses"] == (0, 0)  # the weights change nothing of it

    land(data_dir, events[1000:], first=1000)  # new events: incremental builds
    more = run_transforms(data_dir, policy_file=policy)
    assert {step.name: step.mode for step in more.steps[1:]}["labels"] == "incremental"
    assert counted(more) == expected(after_policy, rows(warehouse))
    assert counted(more)["responses"][0] > 0

    # What the summary said is what the warehouse recorded, run by run.
    recorded = query(
        data_dir,
        "SELECT run_id, model, mode, rows, added, removed FROM transform_run_models",
    )
    assert sorted(recorded) == sorted(
        (run.run_id, s.name, s.mode, s.rows, s.added, s.removed)
        for run in (first, same, reweighed, more)
        for s in run.steps[1:]
    )


def test_a_run_left_unchanged_counts_nothing(events: list[dict[str, Any]], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    land(data_dir, events[:300])
    run_transforms(data_dir)
    again = run_transforms(data_dir)
    assert {s.mode for s in again.steps[1:] if s.mode != "full"} == {"unchanged"}
    assert counted(again) == dict.fromkeys(MODELS, (0, 0))
    assert (again.steps[0].added, again.steps[0].removed) == (0, 0)


@pytest.mark.parametrize(
    ("before", "after", "changes"),
    [
        ([(1, "a"), (1, "a"), (2, None)], [(1, "a"), (2, None), (3, "c")], Changes(1, 1)),
        ([(1, "a")], [(1, "a"), (1, "a"), (1, "a")], Changes(2, 0)),
        ([(1, "a"), (2, "b")], [(1, "a"), (2, "B")], Changes(1, 1)),
        ([], [(1, "a")], Changes(1, 0)),
        ([(1, "a"), (2, "b")], [], Changes(0, 2)),
    ],
)
def test_changes_are_multisets_with_nulls_equal(
    before: list[tuple[int, str | None]], after: list[tuple[int, str | None]], changes: Changes
) -> None:
    db = duckdb.connect()
    for name, values in (("old", before), ("new", after)):
        db.execute(f"CREATE TABLE {name} (n INTEGER, s VARCHAR)")
        if values:
            db.executemany(f"INSERT INTO {name} VALUES (?, ?)", values)
    assert count_changes(db, "old", "new") == changes
    assert count_changes(db, "new", "old") == Changes(changes.removed, changes.added)


def test_other_columns_replace_every_row() -> None:
    db = duckdb.connect()
    db.execute("CREATE TABLE old AS SELECT 1 AS n, 'a' AS s")
    db.execute("CREATE TABLE new AS SELECT 1 AS n, 'a' AS s, 2 AS extra UNION ALL SELECT 2, 'b', 3")
    assert count_changes(db, "old", "new") == Changes(added=2, removed=1)


def test_an_identity_column_tells_changed_rows_from_rows_that_came_or_went() -> None:
    with duckdb.connect() as db:
        db.execute(
            "CREATE TABLE old AS FROM (VALUES ('a', 1), ('b', 2), ('c', 3), ('c', 3)) t(id, v)"
        )
        db.execute(
            "CREATE TABLE new AS FROM (VALUES ('a', 1), ('b', 5), ('d', 4), ('c', 3)) t(id, v)"
        )
        # b changed its value, d came, one of the two c rows went.
        assert count_changes(db, "old", "new", identity='"id"') == Changes(2, 2, changed=1)
        assert count_changes(db, "old", "new") == Changes(2, 2)
