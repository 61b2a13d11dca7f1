"""The reviewers' precision per signal is in ``signal_calibration`` itself, beside the rows
against A/B choices and ratings: written with each review, kept by every transform run (which
rebuilds the table from the lake), and replaced by an erasure. The rows equal the review
stage's own calibration (review.calibration), computed apart in Python."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flywheel.settings import Settings
from flywheel.shell.erasure import erase_users
from review import service
from review.queues import ReviewCreate
from tests.helpers.lake import query
from tests.helpers.review import KEYRING, build_warehouse, review_settings, scores
from transforms.runner import run_transforms

pytestmark = pytest.mark.slow  # a warehouse, a queue, transform runs and an erasure: ~10 s

ANA = "ana@example.com"
BO = "bo@example.com"
COLUMNS = "signal, agree, disagree, n, agreement, wilson_low, wilson_high"


def review_rows(settings: Settings) -> dict[str, tuple[Any, ...]]:
    rows = query(
        settings.data_dir,
        f"SELECT {COLUMNS} FROM signal_calibration WHERE explicit = 'review' ORDER BY signal",
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def other_rows(settings: Settings) -> list[tuple[Any, ...]]:
    return query(
        settings.data_dir,
        "SELECT signal, explicit, agree, n FROM signal_calibration WHERE explicit <> 'review' "
        "ORDER BY ALL",
    )


def from_the_review_stage(settings: Settings) -> dict[str, tuple[Any, ...]]:
    """The review stage's precision per signal, in the table's columns."""
    return {
        p.name: (p.agree, p.disagree, p.n, p.precision, p.wilson_low, p.wilson_high)
        for p in service.calibration(settings).signals
        if p.n
    }


def review_all(settings: Settings, reviewer: str, verdict: str) -> int:
    done = 0
    while item := service.next_item(settings, queue_id="q", reviewer_id=reviewer):
        review = ReviewCreate(item_id=item.item_id, verdict=verdict, scores=scores())  # type: ignore[arg-type]
        service.submit_review(settings, queue_id="q", review=review, reviewer_id=reviewer)
        done += 1
    return done


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = review_settings(tmp_path / "data")
    build_warehouse(settings.data_dir)
    service.create_queue(settings, queue_id="q", seed=1, per_stratum=10, overlap=1.0)
    return settings


def test_each_review_updates_the_signals_rows_and_a_transform_run_keeps_them(
    settings: Settings,
) -> None:
    before = other_rows(settings)
    assert review_rows(settings) == {}

    # Ana picks the left side: the chosen side on about half of the items.
    assert review_all(settings, ANA, "left") == 7
    after_ana = review_rows(settings)
    assert after_ana and after_ana == from_the_review_stage(settings)

    # Bo picks the right side everywhere (each reviewer has an order of their own): the
    # verdicts change the rows at once.
    assert review_all(settings, BO, "right") == 7
    after_bo = review_rows(settings)
    assert after_bo == from_the_review_stage(settings)
    assert after_bo != after_ana
    # Every verdict is decided (left or right): each signal's count doubled.
    assert {s: row[2] for s, row in after_bo.items()} == {
        s: 2 * row[2] for s, row in after_ana.items()
    }

    # A full rebuild of the models from the lake leaves the reviews' rows as they were, and
    # the other rows as before the reviews.
    run_transforms(settings.data_dir, full_refresh=True)
    assert review_rows(settings) == after_bo
    assert other_rows(settings) == before
    run_transforms(settings.data_dir)  # incremental, nothing new
    assert review_rows(settings) == after_bo


def test_an_erased_reviewers_verdicts_leave_the_rows(settings: Settings) -> None:
    review_all(settings, ANA, "left")
    review_all(settings, BO, "left")
    both = review_rows(settings)
    erase_users(settings, [BO], KEYRING)
    alone = review_rows(settings)
    assert alone == from_the_review_stage(settings)
    assert {s: n for s, (_, _, n, *_) in alone.items()} == {
        s: n // 2 for s, (_, _, n, *_) in both.items()
    }
