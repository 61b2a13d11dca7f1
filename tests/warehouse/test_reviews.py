"""The reviews' precision per signal in SQL (warehouse/reviews.py), by hand."""

from __future__ import annotations

import duckdb

from review.stats import wilson
from warehouse.reviews import review_calibration


def test_no_review_tables_no_rows() -> None:
    assert review_calibration(duckdb.connect()) == []


def test_unanimous_pairs_credit_each_of_their_signals() -> None:
    db = duckdb.connect()
    db.execute(
        "CREATE TABLE review_items AS SELECT * FROM (VALUES "
        "('i1', ['copy'], 0.0, NULL), ('i2', ['copy', 'rating'], 0.0, NULL), "
        "('i3', ['copy'], 0.4, NULL), ('l1', ['copy'], 0.0, true), ('l2', ['rating'], 0.0, false)) "
        "AS t(item_id, signals, disagreement, label)"
    )
    db.execute(
        "CREATE TABLE reviews AS SELECT * FROM (VALUES "
        "('i1', 'chosen'), ('i1', 'rejected'), ('i2', 'chosen'), ('i2', 'tie'), "
        "('i3', 'chosen'), ('l1', 'bad'), ('l2', 'bad')) AS t(item_id, verdict)"
    )
    rows = {row["signal"]: row for row in review_calibration(db)}
    # copy: i1 chosen and rejected, i2 chosen (its tie counts in neither), the desirable label
    # l1 called bad; the contested i3 in no signal. rating: i2 chosen, the undesirable l2 called
    # bad (agreeing).
    assert {s: (r["agree"], r["disagree"], r["n"]) for s, r in rows.items()} == {
        "copy": (2, 2, 4),
        "rating": (2, 0, 2),
    }
    assert rows["copy"]["agreement"] == 0.5
    assert (rows["copy"]["wilson_low"], rows["copy"]["wilson_high"]) == wilson(2, 4)
    assert {r["explicit"] for r in rows.values()} == {"review"}
