"""``flywheel transform plan`` as a user runs it: tables or JSON, nothing changed, and a bad
policy, a missing warehouse or an unknown dataset each one red line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.lake import query
from transforms.policy import DEFAULT_POLICY, load_policy
from warehouse.db import warehouse_path

pytestmark = pytest.mark.slow


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_plan_as_tables_and_as_json_changes_nothing(data_dir: Path, tmp_path: Path) -> None:
    custom = tmp_path / "custom.toml"
    custom.write_text(DEFAULT_POLICY.read_text().replace("copy = 0.5", "copy = 0.1"))
    before = digest(warehouse_path(data_dir))
    runs = query(data_dir, "SELECT count(*) FROM transform_runs")
    configured = env(data_dir, FLYWHEEL_TRANSFORMS__POLICY_FILE=str(custom))

    shown = flywheel("transform", "plan", env=configured)
    assert shown.returncode == 0, shown.stderr
    assert f"policy: {custom} ({load_policy(custom).digest[:8]})" in shown.stdout
    assert "every model would be rebuilt" in shown.stdout
    assert "dataset default: the next version (nothing published yet)" in shown.stdout
    assert "nothing was changed" in shown.stdout

    as_json = flywheel("transform", "plan", "--json", "--no-datasets", env=configured)
    assert as_json.returncode == 0, as_json.stderr
    plan = json.loads(as_json.stdout)
    assert plan["policy_hash"] == load_policy(custom).digest
    assert plan["built_with_policy_hash"] == load_policy().digest
    assert plan["datasets"] == []
    pairs = next(m for m in plan["models"] if m["name"] == "preference_pairs")
    [(rows,)] = query(data_dir, "SELECT count(*) FROM preference_pairs")
    assert pairs["rows_before"] == rows
    assert pairs["mode"] == "full"
    assert pairs["changed"] > 0  # copies weigh less: the same pairs, other confidences
    assert digest(warehouse_path(data_dir)) == before
    assert query(data_dir, "SELECT count(*) FROM transform_runs") == runs


def test_bad_input_is_one_line(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_POLICY.read_text().replace("[edit]", "[edits]"))
    assert_one_line_error(
        flywheel("transform", "plan", "--policy", str(bad), env=env(data_dir)), "edit", code=3
    )
    unknown = flywheel("transform", "plan", "--dataset", "nope", env=env(data_dir))
    assert_one_line_error(unknown, "nope", code=3)
    on_spark = flywheel("transform", "plan", env=env(data_dir, FLYWHEEL_TRANSFORMS__ENGINE="spark"))
    assert_one_line_error(on_spark, "not supported", code=3)
    (tmp_path / "empty").mkdir()
    missing = flywheel("transform", "plan", env=env(tmp_path / "empty"))
    assert_one_line_error(missing, "flywheel transform run", code=6)
