"""The calibration's statistics against values computed by hand, and the Wilson interval against
the SQL of transforms/models/signal_calibration.sql."""

from __future__ import annotations

import duckdb
import pytest

from review.stats import cohen_kappa, pearson, ranks, round_half_up, spearman, wilson
from transforms.models import MODELS, define_functions


def test_wilson_of_8_out_of_10() -> None:
    # p = 0.8, n = 10: spread = 1.96 * sqrt(0.8 * 0.2 / 10 + 0.9604 / 100) = 0.3136245...
    # low = (0.8 + 0.19208 - 0.3136245) / 1.38416, high = (0.8 + 0.19208 + 0.3136245) / 1.38416
    assert wilson(8, 10) == (0.490157, 0.943319)


def test_wilson_at_the_edges() -> None:
    assert wilson(0, 0) is None
    # p = 1, n = 5: spread = 1.96 * sqrt(0.9604 / 25) = 0.384160; low = 5 / (5 + 3.8416)
    low, high = wilson(5, 5)  # type: ignore[misc]
    assert low == round_half_up(5 / 8.8416) == 0.565509  # 0.5655085...
    assert high == 1.0


@pytest.mark.parametrize(("agree", "n"), [(0, 1), (1, 1), (3, 7), (8, 10), (45, 50), (611, 1000)])
def test_wilson_matches_the_sql_of_signal_calibration(agree: int, n: int) -> None:
    db = duckdb.connect()
    define_functions(db)
    db.execute(
        "CREATE TABLE calibration_votes AS SELECT 'copy' AS signal, 'review' AS explicit, "
        "i < $agree AS agrees FROM range($n) AS t(i)",
        {"agree": agree, "n": n},
    )
    sql = (MODELS / "signal_calibration.sql").read_text()
    [(low, high)] = db.execute(f"SELECT wilson_low, wilson_high FROM ({sql})").fetchall()
    assert wilson(agree, n) == (float(low), float(high))


def test_ranks_share_the_mean_rank_of_ties() -> None:
    assert ranks([5, 6, 7, 8, 7]) == [1, 2, 3.5, 5, 3.5]
    assert ranks([2, 2, 2]) == [2, 2, 2]


def test_spearman_by_hand() -> None:
    # ranks x: 1..5; ranks y: 1, 2, 3.5, 5, 3.5; deviations (-2, -1, 0, 1, 2) and
    # (-2, -1, 0.5, 2, 0.5): covariance 8, variances 10 and 9.5, rho = 8 / sqrt(95)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == 0.820783
    assert spearman([1, 2, 3], [30, 20, 10]) == -1.0
    # Monotone but not linear: Spearman sees a perfect order, Pearson does not.
    assert spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == 1.0
    assert pearson([1, 2, 3, 4], [1, 10, 100, 1000]) < 0.9


def test_spearman_needs_three_points_and_variation() -> None:
    assert spearman([1, 2], [2, 1]) is None
    assert spearman([1, 2, 3], [4, 4, 4]) is None


def test_cohen_kappa_by_hand() -> None:
    # 50 items: both yes 20, first yes second no 5, first no second yes 10, both no 15.
    # observed 35/50 = 0.7; chance 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5 = 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == (0.7, 0.4)


def test_cohen_kappa_with_four_verdicts() -> None:
    # observed 2/4; chance: first (chosen 2, tie 1, both_bad 1), second (chosen 2, rejected 1,
    # tie 1): (2*2 + 1*1) / 16 = 5/16; kappa = (8/16 - 5/16) / (11/16) = 3/11
    pairs = [("chosen", "chosen"), ("chosen", "rejected"), ("tie", "tie"), ("both_bad", "chosen")]
    assert cohen_kappa(pairs) == (0.5, round_half_up(3 / 11))


def test_cohen_kappa_without_items_or_variation() -> None:
    assert cohen_kappa([]) is None
    assert cohen_kappa([("tie", "tie")] * 3) == (1.0, None)
