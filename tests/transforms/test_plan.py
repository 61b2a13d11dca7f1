"""``transforms.plan``: the plan is what the run then does, and making it changes nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest

from flywheel.dev.simulator import SimulationConfig, simulate
from tests.helpers.datasets import land
from tests.helpers.lake import query
from tests.helpers.policies import custom_policy
from transforms.models import quote
from transforms.plan import planned
from transforms.runner import run_transforms
from warehouse.db import warehouse_path
from warehouse.lake import Lake
from warehouse.table import LakeTable, default_catalog_uri

pytestmark = pytest.mark.slow

PAIRS = (
    "SELECT signal, count(*) FROM (SELECT unnest(signals) AS signal FROM preference_pairs) "
    "GROUP BY signal ORDER BY signal"
)


def lake_table(data_dir: Path) -> LakeTable:
    return LakeTable(Lake.in_data_dir(data_dir), default_catalog_uri(data_dir))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def differences(before: Path, after: Path, model: str) -> tuple[int, int]:
    """(added, removed) rows of ``model`` between two warehouse files, counted here."""
    with duckdb.connect() as db:
        db.execute(f"ATTACH '{before}' AS b (READ_ONLY)")
        db.execute(f"ATTACH '{after}' AS a (READ_ONLY)")
        table = quote(model)
        [(added,)] = db.execute(
            f"SELECT count(*) FROM (FROM a.{table} EXCEPT ALL FROM b.{table})"
        ).fetchall()
        [(removed,)] = db.execute(
            f"SELECT count(*) FROM (FROM b.{table} EXCEPT ALL FROM a.{table})"
        ).fetchall()
    return added, removed


def test_the_plan_is_what_the_run_then_does(data_dir: Path, tmp_path: Path) -> None:
    # New events landed (not yet committed to the lake's table) and another policy.
    land(data_dir, list(simulate(SimulationConfig(events=3000, seed=7))), partition=3)
    policy = custom_policy(tmp_path)
    table = lake_table(data_dir)
    warehouse = warehouse_path(data_dir)
    before, snapshot = digest(warehouse), table.table().current_snapshot()

    with planned(data_dir, lake=table.lake, table=table, policy_file=policy) as (plan, copy):
        assert warehouse_path(copy).is_file()
    assert not copy.exists()  # the copy is gone
    assert digest(warehouse) == before  # nothing written to the warehouse
    assert lake_table(data_dir).table().current_snapshot() == snapshot  # nor to the lake's table
    assert plan.summary.files_loaded > 0
    assert plan.summary.events_loaded > 0

    kept = tmp_path / "before.duckdb"
    shutil.copy(warehouse, kept)
    run = run_transforms(data_dir, policy_file=policy)

    assert (plan.summary.files_loaded, plan.summary.events_loaded) == (
        run.files_loaded,
        run.events_loaded,
    )
    modes = {step.name: step.mode for step in run.steps}
    recorded = {step.name: (step.added, step.removed) for step in run.steps}
    assert [m.name for m in plan.models] == [s.name for s in run.steps if s.name in modes][1:]
    for model in plan.models:
        assert model.mode == modes[model.name] == "full"  # another policy: every model rebuilt
        [(rows,)] = query(data_dir, f"SELECT count(*) FROM {quote(model.name)}")
        assert model.rows_after == rows, model
        assert (model.added, model.removed) == differences(kept, warehouse, model.name), model
        assert (model.added, model.removed) == recorded[model.name]  # what the run recorded
        assert model.rows_before - model.removed + model.added == model.rows_after
    changed = {m.name: m for m in plan.models if m.added or m.removed}
    assert {"labels", "preference_pairs", "rewards"} <= set(changed)
    pairs = changed["preference_pairs"]
    assert 0 < pairs.changed <= min(pairs.added, pairs.removed)  # same pair id, new confidence
    assert [(c.name, c.after) for c in plan.pairs] == query(data_dir, PAIRS)
    labels = query(data_dir, "SELECT label, count(*) FROM labels GROUP BY label")
    expected = {("desirable" if label else "undesirable"): n for label, n in labels}
    assert {c.name: c.after for c in plan.labels} == expected


def test_a_plan_with_nothing_new_changes_nothing(data_dir: Path) -> None:
    table = lake_table(data_dir)
    table.commit()
    with planned(data_dir, lake=table.lake, table=table) as (plan, _):
        pass
    assert plan.summary.files_loaded == 0
    assert plan.models
    assert all(m.mode == "unchanged" or (m.added, m.removed) == (0, 0) for m in plan.models)
    assert all(count.before == count.after for count in [*plan.pairs, *plan.labels])
    assert plan.summary.previous_policy_hash == plan.summary.policy_hash


def test_a_copy_left_by_a_killed_plan_is_removed_by_the_next(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    tempfile.tempdir = None  # read TMPDIR again
    try:
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        stale = tmp_path / f"flywheel-plan-{gone.stdout.strip()}-abc123"
        (stale / "data").mkdir(parents=True)
        alive = tmp_path / f"flywheel-plan-{os.getppid()}-def456"  # a plan still running
        alive.mkdir()
        table = lake_table(data_dir)
        with planned(data_dir, lake=table.lake, table=table, select=["responses"]) as (_, copy):
            assert copy.is_relative_to(tmp_path)
        assert not stale.exists()
        assert alive.exists()
    finally:
        tempfile.tempdir = None
