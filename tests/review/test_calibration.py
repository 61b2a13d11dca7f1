"""The calibration from reviews on a real warehouse (precision per signal, pairs, agreement,
reward levels against scores), the suggested weights by hand, and the policy diff."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flywheel.settings import Settings
from review import service
from review.calibration import PrecisionPublic, policy_diff, suggest_weights
from review.queues import ReviewCreate, left_side
from review.stats import spearman, wilson
from tests.helpers.lake import query
from tests.helpers.review import KEYRING, build_warehouse, review_settings
from transforms.policy import DEFAULT_POLICY
from warehouse.db import open_warehouse, raw

ANA = "ana@example.com"
BO = "bo@example.com"
CURRENT = {"ab_choice": 1.0, "rating": 0.8, "edit": 0.6, "copy": 0.5, "regenerate": 0.4,
           "continued": 0.3}  # fmt: skip


def give(settings: Settings, reviewer: str, conversation: str, verdict: str) -> None:
    """Record ``verdict`` (chosen, rejected, tie, both_bad) on the item of ``conversation``,
    answered as the reviewer would (left or right, as shown to them); the chosen side scored 4
    on every dimension, the rejected side 2."""
    [(item,)] = query(settings.data_dir, "SELECT item_id FROM review_items "
                      f"WHERE conversation_id = '{conversation}'")  # fmt: skip
    side = left_side(1, item, KEYRING.pseudonym(reviewer))
    answer = verdict
    if verdict in ("chosen", "rejected"):
        answer = "left" if verdict == side else "right"
    high, low = dict.fromkeys(("correctness", "readability", "security", "efficiency"), 4), \
        dict.fromkeys(("correctness", "readability", "security", "efficiency"), 2)  # fmt: skip
    shown = {"left": high, "right": low} if side == "chosen" else {"left": low, "right": high}
    review = ReviewCreate(item_id=item, verdict=answer, scores=shown)  # type: ignore[arg-type]
    service.submit_review(settings, queue_id="q", review=review, reviewer_id=reviewer)


@pytest.fixture
def reviewed(tmp_path: Path) -> Settings:
    """Every pair of tests.helpers.review in queue ``q``, reviewed:

    Ana: copy pairs c0, c1, c2 chosen, c9 rejected; A/B pairs c3 chosen, c4 tie; the contested
    c5 rejected. Bo: c0 chosen, c3 rejected.
    """
    settings = review_settings(tmp_path / "data")
    build_warehouse(settings.data_dir)
    service.create_queue(settings, queue_id="q", seed=1, per_stratum=10, overlap=1.0)
    for conversation, verdict in [("c0", "chosen"), ("c1", "chosen"), ("c2", "chosen"),
                                  ("c9", "rejected"), ("c3", "chosen"), ("c4", "tie"),
                                  ("c5", "rejected")]:  # fmt: skip
        give(settings, ANA, conversation, verdict)
    give(settings, BO, "c0", "chosen")
    give(settings, BO, "c3", "rejected")
    return settings


def test_precision_per_signal_counts_unanimous_pairs_by_their_signals(reviewed: Settings) -> None:
    found = service.calibration(reviewed)
    assert (found.reviews, found.reviewers) == (9, 2)
    signals = {p.name: p for p in found.signals}
    assert set(signals) == {"ab_choice", "copy"}
    copy, ab = signals["copy"], signals["ab_choice"]
    # copy: c0 (twice), c1, c2 chosen; c9 rejected. The contested c5 counts for no signal.
    assert (copy.agree, copy.disagree, copy.n, copy.ties, copy.both_bad) == (4, 1, 5, 0, 0)
    assert copy.precision == 0.8
    assert (copy.wilson_low, copy.wilson_high) == wilson(4, 5)
    # ab_choice: c3 chosen (Ana) and rejected (Bo), c4 a tie.
    assert (ab.agree, ab.disagree, ab.n, ab.ties, ab.precision) == (1, 1, 2, 1, 0.5)


def test_pairs_all_unanimous_and_contested(reviewed: Settings) -> None:
    pairs = {p.name: (p.agree, p.disagree, p.ties) for p in service.calibration(reviewed).pairs}
    assert pairs == {"all": (5, 3, 1), "unanimous": (5, 2, 1), "contested": (0, 1, 0)}


def test_agreement_of_two_reviewers_on_the_same_items(reviewed: Settings) -> None:
    agreement = service.calibration(reviewed).agreement
    # c0: chosen and chosen; c3: chosen and rejected. Observed 1/2; the first reviewer said
    # chosen twice, the second chosen once and rejected once: chance (2 * 1) / 4 = 1/2; kappa 0.
    assert (agreement.items, agreement.agree, agreement.observed, agreement.kappa) == (
        2, 1, 0.5, 0.0
    )  # fmt: skip


def test_reward_levels_against_rubric_scores(reviewed: Settings) -> None:
    found = {(c.level, c.dimension): c for c in service.calibration(reviewed).reward_levels}
    assert {level for level, _ in found} == {"explicit", "implicit", "process",
                                            "constitutional", "penalty", "reward"}  # fmt: skip
    # Every review scored the chosen side 4 and the rejected side 2; the reward of each side
    # (rewards.reward, tests.helpers.review's pairs) against those scores:
    reward = {"r0a": 0.5, "r0b": 0.0, "r1a": 0.5, "r1b": 0.0, "r2a": 0.5, "r2b": 0.0,
              "r9a": 0.5, "r9b": 0.0, "r3a": 1.0, "r3b": -1.0, "r4a": 1.0, "r4b": -1.0,
              "r5a": 1.0, "r5b": -0.5}  # fmt: skip
    reviewed_pairs = ["0", "1", "2", "9", "3", "4", "5", "0", "3"]
    xs = [x for i in reviewed_pairs for x in (reward[f"r{i}a"], reward[f"r{i}b"])]
    ys = [4.0, 2.0] * len(reviewed_pairs)
    total = found[("reward", "mean")]
    assert total.n == 18
    assert total.spearman == spearman(xs, ys) and total.spearman is not None
    assert total.spearman > 0.5
    assert found[("reward", "security")].spearman == total.spearman
    # No response holds code: the process and constitutional levels are constant, so no
    # correlation.
    assert found[("process", "mean")].spearman is None
    assert found[("constitutional", "mean")].spearman is None


def test_the_constitutional_level_against_rubric_scores(reviewed: Settings) -> None:
    # As if every chosen side's code kept the principles and every rejected side's broke them.
    engine = open_warehouse(reviewed.data_dir)
    with engine.begin() as connection:
        raw(connection).execute(
            "UPDATE rewards SET constitutional_score = "
            "CASE WHEN response_id LIKE '%a' THEN 1.0 ELSE -0.5 END"
        )
    engine.dispose()
    found = {(c.level, c.dimension): c for c in service.calibration(reviewed).reward_levels}
    level = found[("constitutional", "mean")]
    # Every review scored the chosen ("a") side 4 and the other 2.
    assert level.n == 18 and level.spearman == spearman([1.0, -0.5] * 9, [4.0, 2.0] * 9) == 1.0


def test_one_queue_or_all(reviewed: Settings) -> None:
    assert service.calibration(reviewed, queue_id="q").reviews == 9
    service.create_queue(reviewed, queue_id="empty", seed=2, per_stratum=1)
    empty = service.calibration(reviewed, queue_id="empty")
    assert empty.reviews == 0 and empty.signals == [] and empty.agreement.kappa is None


def precision(name: str, agree: int, n: int) -> PrecisionPublic:
    low, high = wilson(agree, n)  # type: ignore[misc]
    return PrecisionPublic(name=name, agree=agree, disagree=n - agree, n=n, ties=0, both_bad=0,
                           precision=agree / n, wilson_low=low, wilson_high=high)  # fmt: skip


def test_suggested_weights_by_hand() -> None:
    measured = [precision("copy", 45, 50), precision("edit", 40, 50),
                precision("regenerate", 30, 50), precision("rating", 5, 5)]  # fmt: skip
    weights = {w.signal: w for w in suggest_weights(CURRENT, measured)}
    # Wilson lower bounds: copy 45/50 -> 0.786395, edit 40/50 -> 0.669626 (0.6696265 rounded
    # half up from the SQL's formula), regenerate 30/50 -> 0.461812 (not above chance: 0).
    # log-odds: copy ln(0.786395 / 0.213605) = 1.303331, edit ln(0.669626 / 0.330374) = 0.706494.
    # Scaled to the measured signals' current sum 0.6 + 0.5 + 0.4 = 1.5:
    # copy 1.303331 / 2.009825 * 1.5 = 0.9727 -> 0.97, edit 0.706494 / 2.009825 * 1.5 = 0.5273.
    assert weights["copy"].suggested == 0.97
    assert weights["edit"].suggested == 0.53
    assert weights["regenerate"].suggested == 0.0
    assert "chance" in weights["regenerate"].reason
    # rating: 5 verdicts, under the 20 needed; the others unmeasured: kept.
    for name in ("rating", "ab_choice", "continued"):
        assert weights[name].suggested == CURRENT[name]
        assert "kept" in weights[name].reason
    assert list(weights) == list(CURRENT)


def test_nothing_is_suggested_without_enough_reviews() -> None:
    weights = suggest_weights(CURRENT, [precision("copy", 9, 10)])
    assert [w.suggested for w in weights] == list(CURRENT.values())


def test_the_policy_diff_changes_only_the_weights_and_writes_nothing(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    shutil.copy(DEFAULT_POLICY, policy)
    before = policy.read_bytes()
    measured = [precision("copy", 45, 50), precision("edit", 40, 50)]
    diff = policy_diff(policy, suggest_weights(CURRENT, measured))
    assert policy.read_bytes() == before
    changed = [line for line in diff.splitlines() if line[:1] in "+-"]
    # Scaled to 0.6 + 0.5 = 1.1: copy 1.303331 / 2.009825 * 1.1 = 0.7133, edit 0.3867.
    assert changed == [
        f"--- {policy}",
        f"+++ {policy} (suggested)",
        "-edit = 0.6",
        "-copy = 0.5",
        "+edit = 0.39",
        "+copy = 0.71",
    ]
    assert "# Evidence strength per signal" in diff  # context lines keep the comments
    assert policy_diff(policy, suggest_weights(CURRENT, [])) == ""


def test_when_no_measured_signal_beats_chance_the_weights_are_kept() -> None:
    measured = [precision("copy", 25, 50), precision("edit", 20, 50)]
    weights = {w.signal: w for w in suggest_weights(CURRENT, measured)}
    assert {name: w.suggested for name, w in weights.items()} == CURRENT
    assert "better than chance" in weights["copy"].reason
    assert policy_diff(DEFAULT_POLICY, list(weights.values())) == ""


def test_suggest_policy_from_the_reviews(reviewed: Settings) -> None:
    suggestion = service.suggest_policy(reviewed, min_reviews=2)
    weights = {w.signal: w for w in suggestion.weights}
    # copy: 4 of 5 -> Wilson low 0.375528 (not above chance); ab_choice: 1 of 2 -> low 0.094531.
    # No measured signal beats chance: zero for both would leave nothing to vote with, so the
    # weights are kept and the policy's diff is empty.
    assert weights["copy"].wilson_low == wilson(4, 5)[0]  # type: ignore[index]
    assert weights["copy"].suggested == weights["copy"].current == 0.5
    assert weights["ab_choice"].suggested == weights["ab_choice"].current
    assert "better than chance" in weights["copy"].reason
    assert suggestion.diff == ""
    assert suggestion.policy_file == str(DEFAULT_POLICY)
