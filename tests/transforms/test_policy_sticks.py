"""A policy of one's own sticks: ``FLYWHEEL_TRANSFORMS__POLICY_FILE`` is what every run, the
scheduler and the reviews' suggestion use, and a run whose policy differs from the last
successful run's says so in one line and records both hashes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from export.policy import DatasetPolicy, DatasetsFile, Schedule
from flywheel.settings import Settings
from flywheel.shell.schedule import build_jobs
from review.service import suggest_policy
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import KEYRING
from tests.helpers.lake import query
from tests.helpers.policies import custom_policy
from transforms.policy import DEFAULT_POLICY, load_policy

pytestmark = pytest.mark.slow

CHANGED = "the policy changed since the last run"


def built(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """What the policy decides: every label and every pair's confidence."""
    return {
        "labels": query(data_dir, "SELECT * FROM labels ORDER BY ALL"),
        "pairs": query(data_dir, "SELECT pair_id, confidence FROM preference_pairs ORDER BY ALL"),
    }


def runs(data_dir: Path) -> list[tuple[str, str | None]]:
    """(policy_hash, previous_policy_hash) of every run, oldest first."""
    return [
        (policy, previous)
        for policy, previous in query(
            data_dir,
            "SELECT policy_hash, previous_policy_hash FROM transform_runs ORDER BY started_at",
        )
    ]


def test_a_configured_policy_sticks_across_plain_runs(data_dir: Path, tmp_path: Path) -> None:
    custom = custom_policy(tmp_path)
    shipped, mine = load_policy().digest, load_policy(custom).digest
    configured = env(data_dir, FLYWHEEL_TRANSFORMS__POLICY_FILE=str(custom))
    with_shipped = built(data_dir)

    first = flywheel("transform", "run", env=configured)
    assert first.returncode == 0, first.stderr
    changed = [line for line in first.stderr.splitlines() if CHANGED in line]
    assert changed == [
        f"{CHANGED} ({shipped[:8]} -> {mine[:8]}): every model was rebuilt with {custom}; "
        "FLYWHEEL_TRANSFORMS__POLICY_FILE keeps one policy for every run"
    ]
    with_mine = built(data_dir)
    assert with_mine["labels"] != with_shipped["labels"]  # the policy matters here
    assert with_mine["pairs"] != with_shipped["pairs"]

    plain = flywheel("transform", "run", env=configured)
    assert plain.returncode == 0, plain.stderr
    assert CHANGED not in plain.stderr
    assert built(data_dir) == with_mine  # not rebuilt with the shipped weights
    assert runs(data_dir)[-2:] == [(mine, shipped), (mine, mine)]

    override = flywheel("transform", "run", "--policy", str(DEFAULT_POLICY), env=configured)
    assert override.returncode == 0, override.stderr
    assert f"{CHANGED} ({mine[:8]} -> {shipped[:8]})" in override.stderr
    assert built(data_dir) == with_shipped
    assert runs(data_dir)[-1] == (shipped, mine)
    history = flywheel("transform", "history", "--limit", "2", env=configured)
    assert history.returncode == 0, history.stderr
    rows = [line for line in history.stdout.splitlines() if "succeeded" in line]
    assert f"{shipped[:8]} (changed)" in rows[0]  # the run that went back to the shipped one
    assert "(changed)" not in rows[1]  # the plain run kept the configured policy


def test_the_scheduler_rebuilds_when_the_configured_policy_changes(
    data_dir: Path, tmp_path: Path
) -> None:
    custom = custom_policy(tmp_path)
    datasets = DatasetsFile(
        schedule=Schedule(transforms="*/5 * * * *"), datasets={"default": DatasetPolicy()}
    )
    shipped_job = build_jobs(data_dir, datasets, KEYRING)[0]
    assert shipped_job.run() == "skipped: no new lake files"

    job = build_jobs(data_dir, datasets, KEYRING, policy_file=custom)[0]
    assert job.name == "transforms"
    outcome = job.run()
    assert outcome.startswith("loaded 0 lake files, 0 new events; " + CHANGED), outcome
    assert runs(data_dir)[-1] == (load_policy(custom).digest, load_policy().digest)
    assert job.run() == "skipped: no new lake files"  # the models carry the policy now


def test_a_policy_file_that_does_not_validate_is_one_line(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_POLICY.read_text().replace("copy = 0.5", "copy = -1"))
    configured = env(data_dir, FLYWHEEL_TRANSFORMS__POLICY_FILE=str(bad))
    before = runs(data_dir)

    assert_one_line_error(flywheel("transform", "run", env=configured), "copy", code=3)
    (tmp_path / "datasets.toml").write_text('[schedule]\ntransforms = "*/5 * * * *"\n')
    scheduled = {**configured, "FLYWHEEL_EXPORT__DATASETS_FILE": str(tmp_path / "datasets.toml")}
    assert_one_line_error(flywheel("schedule", "--once", env=scheduled), "copy", code=3)
    assert runs(data_dir) == before  # nothing ran


def test_the_reviews_suggest_weights_for_the_configured_policy(
    data_dir: Path, tmp_path: Path
) -> None:
    custom = custom_policy(tmp_path)
    settings = Settings(
        data_dir=data_dir,
        privacy={"hmac_key_file": tmp_path / "keys.json"},
        transforms={"policy_file": custom},
    )
    suggestion = suggest_policy(settings)
    assert suggestion.policy_file == str(custom)
    copy = next(weight for weight in suggestion.weights if weight.signal == "copy")
    assert copy.current == 0.1
