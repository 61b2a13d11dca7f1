"""Erasure reaches the reviews: erasing a user removes the review items built from their events
and every review of those items; erasing a reviewer's id removes the reviews written under it.
Through the same erasure as everything else (flywheel.shell.erasure.erase_users), compaction
included."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ReviewerErasedError
from flywheel.settings import Settings
from flywheel.shell.erasure import erase_users
from review import service
from review.queues import ReviewCreate
from tests.helpers.lake import query
from tests.helpers.review import ERASED, KEYRING, build_warehouse, review_settings, scores

# Each builds a warehouse, reviews every item twice and runs a whole erasure (about 10 s).
pytestmark = pytest.mark.slow

ANA = "ana@example.com"
BO = "bo@example.com"


@pytest.fixture
def reviewed(tmp_path: Path) -> Settings:
    """Every pair in queue ``q`` (two reviews wanted of each), reviewed by Ana and Bo."""
    settings = review_settings(tmp_path / "data")
    build_warehouse(settings.data_dir)
    service.create_queue(settings, queue_id="q", seed=1, per_stratum=10, overlap=1.0)
    for reviewer in (ANA, BO):
        while item := service.next_item(settings, queue_id="q", reviewer_id=reviewer):
            review = ReviewCreate(item_id=item.item_id, verdict="left", scores=scores())  # type: ignore[arg-type]
            service.submit_review(settings, queue_id="q", review=review, reviewer_id=reviewer)
    return settings


def counts(settings: Settings) -> dict[str, int]:
    sql = {
        "items": "SELECT count(*) FROM review_items",
        "items_c9": "SELECT count(*) FROM review_items WHERE conversation_id = 'c9'",
        "reviews": "SELECT count(*) FROM reviews",
        "reviews_c9": "SELECT count(*) FROM reviews WHERE conversation_id = 'c9'",
        "by_ana": f"SELECT count(*) FROM reviews WHERE reviewer_pseudonym = "
        f"'{KEYRING.pseudonym(ANA)}'",
    }
    return {name: query(settings.data_dir, s)[0][0] for name, s in sql.items()}


def test_erasing_a_user_removes_the_items_built_from_their_events_and_their_reviews(
    reviewed: Settings,
) -> None:
    assert counts(reviewed) == {"items": 7, "items_c9": 1, "reviews": 14, "reviews_c9": 2,
                                "by_ana": 7}  # fmt: skip
    erase_users(reviewed, [ERASED], KEYRING)
    assert counts(reviewed) == {"items": 6, "items_c9": 0, "reviews": 12, "reviews_c9": 0,
                                "by_ana": 6}  # fmt: skip
    # Not a byte of the conversation's ids is left in the (compacted) warehouse file.
    data = (reviewed.data_dir / "warehouse.duckdb").read_bytes()
    assert b"r9a" not in data and KEYRING.pseudonym(ERASED).encode() not in data
    # The calibration reads what is left; the queue still answers.
    assert service.calibration(reviewed).reviews == 12
    assert service.show_queue(reviewed, queue_id="q").items == 6


def test_erasing_a_reviewers_id_removes_the_reviews_written_under_it(reviewed: Settings) -> None:
    erase_users(reviewed, [ANA], KEYRING)
    found = counts(reviewed)
    assert found == {"items": 7, "items_c9": 1, "reviews": 7, "reviews_c9": 1, "by_ana": 0}
    data = (reviewed.data_dir / "warehouse.duckdb").read_bytes()
    assert KEYRING.pseudonym(ANA).encode() not in data
    # Bo's stay. Ana's id is on the suppression list: she reviews no more under it, as an
    # erased user's events are dropped.
    assert service.next_item(reviewed, queue_id="q", reviewer_id=BO) is None
    review = ReviewCreate(item_id="any", verdict="tie", scores=scores())  # type: ignore[arg-type]
    for call in (
        lambda: service.next_item(reviewed, queue_id="q", reviewer_id=ANA),
        lambda: service.submit_review(reviewed, queue_id="q", review=review, reviewer_id=ANA),
    ):
        with pytest.raises(ReviewerErasedError):
            call()
    assert counts(reviewed)["by_ana"] == 0


def test_a_review_goes_with_an_item_removed_by_its_lineage(reviewed: Settings) -> None:
    """An item whose pair's lineage names an erased event of another conversation is erased
    by that column; its reviews, which do not carry the lineage, go with it."""
    from warehouse.db import open_warehouse, raw
    from warehouse.erase import erase_from_warehouse

    sql = "SELECT event_id FROM events WHERE conversation_id = 'c9' LIMIT 1"
    [(event,)] = query(reviewed.data_dir, sql)
    engine = open_warehouse(reviewed.data_dir)
    with engine.connect() as connection:
        db = raw(connection)
        db.execute(
            "UPDATE review_items SET event_ids = list_append(event_ids, $e) "
            "WHERE conversation_id = 'c0'",
            {"e": event},
        )
        deleted = erase_from_warehouse(db, [KEYRING.pseudonym(ERASED)])
    engine.dispose()
    assert deleted["review_items"] == 2 and deleted["reviews"] == 4
    assert query(
        reviewed.data_dir, "SELECT count(*) FROM reviews WHERE conversation_id = 'c0'"
    ) == [(0,)]
