"""Human precision in a published version: with reviews in the warehouse, the manifest's
calibration has a row per signal against ``review`` (the reviews' precision, as the review
stage computes it) and the card shows them; without reviews the card is as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.catalog import read_manifest
from export.publish import export_dataset
from review.calibration import calibration
from review.queues import ReviewCreate, create_queue, next_item, submit_review
from review.rubric import load_rubric
from tests.helpers.datasets import KEYRING
from tests.helpers.review import scores
from warehouse.db import connected
from warehouse.lake import Lake

# Each publishes a version of the simulated dataset (about 10 s).
pytestmark = pytest.mark.slow


def review_some(data_dir: Path, count: int) -> None:
    """Two reviewers answer ``count`` items each of a queue of the simulated pairs."""
    rubric = load_rubric()
    with connected(data_dir, action="review in") as db:
        create_queue(db, queue_id="card", seed=3, per_stratum=10, rubric=rubric)
        for reviewer, verdict in (("reviewer-a", "left"), ("reviewer-b", "right")):
            for _ in range(count):
                item = next_item(db, Lake.in_data_dir(data_dir).root, queue_id="card",
                                 reviewer=reviewer)  # fmt: skip
                assert item is not None
                answer = ReviewCreate(item_id=item.item_id, verdict=verdict, scores=scores())  # type: ignore[arg-type]
                submit_review(db, queue_id="card", review=answer, reviewer=reviewer,
                              key_version=1, rubric=rubric)  # fmt: skip


def test_the_card_shows_human_precision_when_there_are_reviews(data_dir: Path) -> None:
    review_some(data_dir, 15)
    with connected(data_dir, action="read") as db:
        expected = {p.name: p for p in calibration(db).signals}
    result = export_dataset(data_dir, "default", KEYRING)
    assert result.version is not None
    version_dir = data_dir / "datasets" / "default" / result.version
    manifest = read_manifest(data_dir, "default", result.version)
    rows = {row.signal: row for row in manifest.calibration if row.explicit == "review"}
    assert rows and set(rows) == {name for name, p in expected.items() if p.n}
    for name, row in rows.items():
        found = expected[name]
        assert (row.agree, row.disagree, row.n) == (found.agree, found.disagree, found.n)
        assert (row.agreement, row.wilson_low, row.wilson_high) == (
            found.precision, found.wilson_low, found.wilson_high
        )  # fmt: skip
    card = (version_dir / "README.md").read_text()
    assert "Rows against `review` are human precision" in card
    some = next(iter(rows.values()))
    assert f"| {some.signal} | review | {some.agree:,} | {some.n:,} |" in card


def test_without_reviews_the_card_has_no_review_rows(data_dir: Path) -> None:
    result = export_dataset(data_dir, "default", KEYRING)
    assert result.version is not None
    version_dir = data_dir / "datasets" / "default" / result.version
    manifest = read_manifest(data_dir, "default", result.version)
    assert all(row.explicit != "review" for row in manifest.calibration)
    assert "human precision" not in (version_dir / "README.md").read_text()
