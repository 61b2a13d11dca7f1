"""``flywheel review ...`` as a user runs it: queues created, listed and shown, the calibration
as a table and as JSON, the suggested policy as a unified diff that `patch` applies; bad input
in one red line with its exit code."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from review import service
from review.queues import ReviewCreate, left_side
from tests.helpers.cli import assert_one_line_error, flywheel
from tests.helpers.review import KEYRING, review_settings, scores
from transforms.policy import DEFAULT_POLICY

# Each runs several `flywheel` processes (about 10 s).
pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(review_data_dir: Path) -> Path:
    """The review's warehouse, copied, with its key file beside it."""
    return review_data_dir


def env(data_dir: Path) -> dict[str, str]:
    return {
        "FLYWHEEL_DATA_DIR": str(data_dir),
        "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(data_dir.parent / f"{data_dir.name}-keys.json"),
    }


def test_create_list_and_show_a_queue(data_dir: Path) -> None:
    created = flywheel("review", "queue", "create", "week-1", "--seed", "4", "--per-stratum", "2",
                       env=env(data_dir))  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "review queue week-1: 5 item(s) drawn from 7 pair(s) with seed 4" in created.stdout
    assert "copy/mid/unanimous" in created.stdout
    listed = flywheel("review", "queue", "list", "--json", env=env(data_dir))
    [queue] = json.loads(listed.stdout)
    assert (queue["queue_id"], queue["seed"], queue["items"], queue["overlap"]) == (
        "week-1", 4, 5, 0.1
    )  # fmt: skip
    shown = flywheel("review", "queue", "show", "week-1", "--json", env=env(data_dir))
    assert json.loads(shown.stdout) == queue
    table = flywheel("review", "queue", "show", "week-1", env=env(data_dir))
    assert "week-1" in table.stdout and "ab_choice/high/unanimous" in table.stdout


def test_a_label_queue_and_a_kind_that_is_not_one(data_dir: Path) -> None:
    created = flywheel("review", "queue", "create", "labels-1", "--kind", "label", "--seed", "4",
                       "--json", env=env(data_dir))  # fmt: skip
    assert created.returncode == 0, created.stderr
    queue = json.loads(created.stdout)
    assert queue["kind"] == "label" and queue["items"] == queue["candidates"] > 0
    listed = flywheel("review", "queue", "list", env=env(data_dir))
    assert "labels-1" in listed.stdout and "label" in listed.stdout
    wrong = flywheel("review", "queue", "create", "w", "--kind", "pairs", "--seed", "1",
                     env=env(data_dir))  # fmt: skip
    assert_one_line_error(wrong, "kind", code=2)
    nothing = flywheel("review", "queue", "create", "w", "--seed", "1", "--stratum",
                       "zzz/low/unanimous", env=env(data_dir))  # fmt: skip
    assert_one_line_error(nothing, "strata", code=2)


def test_bad_input_is_one_line_with_its_exit_code(data_dir: Path) -> None:
    bad_name = flywheel("review", "queue", "create", "Week 1", "--seed", "1", env=env(data_dir))
    assert_one_line_error(bad_name, "queue_id", code=2)
    bad_overlap = flywheel("review", "queue", "create", "w", "--seed", "1", "--overlap", "3",
                           env=env(data_dir))  # fmt: skip
    assert_one_line_error(bad_overlap, "overlap", code=2)
    flywheel("review", "queue", "create", "w", "--seed", "1", env=env(data_dir))
    taken = flywheel("review", "queue", "create", "w", "--seed", "1", env=env(data_dir))
    assert_one_line_error(taken, "exists already", code=1)
    missing = flywheel("review", "queue", "show", "nope", env=env(data_dir))
    assert_one_line_error(missing, "no review queue named nope", code=6)
    no_dir = flywheel("review", "queue", "list", env=env(data_dir.parent / "absent"))
    assert_one_line_error(no_dir, "does not exist", code=3)
    bad_rubric = data_dir.parent / "rubric.toml"
    bad_rubric.write_text('[dimensions.speed]\ndescription = "fast?"\nmin = 3\nmax = 3\n')
    rubric_env = {**env(data_dir), "FLYWHEEL_REVIEW__RUBRIC_FILE": str(bad_rubric)}
    refused = flywheel("review", "queue", "create", "x", "--seed", "1", env=rubric_env)
    assert_one_line_error(refused, "dimensions.speed", code=3)


def test_calibration_and_the_suggested_policy(data_dir: Path, tmp_path: Path) -> None:
    settings = review_settings(data_dir)
    service.create_queue(settings, queue_id="q", seed=1, per_stratum=10)
    while item := service.next_item(settings, queue_id="q", reviewer_id="ana"):
        review = ReviewCreate(item_id=item.item_id, verdict="tie", scores=scores())  # type: ignore[arg-type]
        service.submit_review(settings, queue_id="q", review=review, reviewer_id="ana")
    table = flywheel("review", "calibration", env=env(data_dir))
    assert table.returncode == 0, table.stderr
    assert "Human precision (7 reviews by 1 reviewer(s))" in table.stdout
    assert "Cohen's kappa n/a" in table.stdout
    as_json = json.loads(flywheel("review", "calibration", "--json", env=env(data_dir)).stdout)
    assert as_json["reviews"] == 7 and as_json["pairs"][0]["ties"] == 7
    one = flywheel("review", "calibration", "--queue", "q", "--json", env=env(data_dir))
    assert json.loads(one.stdout)["queue_id"] == "q"
    # Ties decide nothing: no signal has verdicts, no weight changes.
    unchanged = flywheel("review", "suggest-policy", "--min-reviews", "1", env=env(data_dir))
    assert unchanged.returncode == 0 and unchanged.stdout == ""
    assert "no change suggested" in unchanged.stderr


def test_the_suggested_diff_applies_with_patch(data_dir: Path, tmp_path: Path) -> None:
    settings = review_settings(data_dir)
    service.create_queue(settings, queue_id="q", seed=1, per_stratum=10)
    while item := service.next_item(settings, queue_id="q", reviewer_id="ana"):
        # Always the chosen side: copy's 4 of 4 beat chance (Wilson low 0.51), ab_choice's 2 of
        # 2 do not (0.34), so copy takes the weight of both.
        chosen_left = left_side(1, item.item_id, KEYRING.pseudonym("ana")) == "chosen"
        verdict = "left" if chosen_left else "right"
        review = ReviewCreate(item_id=item.item_id, verdict=verdict, scores=scores())  # type: ignore[arg-type]
        service.submit_review(settings, queue_id="q", review=review, reviewer_id="ana")
    policy = tmp_path / "policy.toml"
    shutil.copy(DEFAULT_POLICY, policy)
    before = policy.read_text()
    result = flywheel("review", "suggest-policy", "--policy", str(policy), "--min-reviews", "1",
                      env=env(data_dir))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert policy.read_text() == before  # nothing written
    assert result.stdout.startswith(f"--- {policy}\n+++ {policy} (suggested)\n")
    assert "copy: 0.5 ->" in result.stderr
    if shutil.which("patch"):
        subprocess.run(["patch", str(policy)], input=result.stdout, text=True, check=True,
                       capture_output=True)  # fmt: skip
        assert policy.read_text() != before
