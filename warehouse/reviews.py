"""The reviews' human precision per signal, as rows of ``signal_calibration``.

``review.calibration`` computes the review stage's full calibration in Python; an export needs
only the precision per signal, beside the agreement with A/B choices and ratings it already
records in its manifest and card, and must not import the review stage. So the same rule lives
here once more, in SQL, and a test holds the two equal: over the reviews of unanimous pairs
(every vote for the chosen side) and labels, each of the item's signals is credited with the
verdict (a label's ``good`` or ``bad`` as ``chosen`` when it says what the label says);
``agree`` counts ``chosen`` verdicts, ``disagree`` ``rejected`` ones (ties and both-bad count
in neither), with the 95% Wilson interval of ``transforms/models/signal_calibration.sql``.

The rows live in ``signal_calibration`` itself, with ``explicit = 'review'``, beside those against
A/B choices and ratings (``refresh_review_rows``): the transform run that rebuilds the table adds
them in the same transaction, and a review or an erasure that changes them replaces them. The
lake's events alone cannot give them (the reviews are the warehouse's), so the Spark engine's
tables, built from the lake, do not hold them; an export adds them to its card and manifest from
the warehouse either way (``review_calibration``).
"""

from __future__ import annotations

from typing import Any

EXPLICIT = "review"
"""The ``explicit`` of these rows: a reviewer's verdict."""

_ROUND = "round(CAST({} AS DECIMAL(38, 12)), 6)::DOUBLE"

_CALIBRATION = f"""
WITH credited AS (
    -- A label's good or bad agrees with its signals when it says what the label says.
    SELECT unnest(i.signals) AS signal,
           CASE WHEN i.label IS NULL THEN r.verdict
                WHEN (r.verdict = 'good') = i.label THEN 'chosen' ELSE 'rejected' END AS verdict
    FROM reviews AS r
    JOIN review_items AS i USING (item_id)
    WHERE i.disagreement = 0
),
counts AS (
    SELECT
        signal,
        count(*) FILTER (WHERE verdict = 'chosen') AS agree,
        count(*) FILTER (WHERE verdict IN ('chosen', 'rejected')) AS n
    FROM credited
    GROUP BY signal
)
SELECT
    signal,
    '{EXPLICIT}' AS explicit,
    agree,
    n - agree AS disagree,
    n,
    {_ROUND.format("agree / n")} AS agreement,
    {
    _ROUND.format('''(agree / n + 1.9208 / n
        - 1.96 * sqrt(agree / n * (1 - agree / n) / n + 0.9604 / (n * n)))
        / (1 + 3.8416 / n)''')
} AS wilson_low,
    {
    _ROUND.format('''(agree / n + 1.9208 / n
        + 1.96 * sqrt(agree / n * (1 - agree / n) / n + 0.9604 / (n * n)))
        / (1 + 3.8416 / n)''')
} AS wilson_high
FROM counts
WHERE n > 0
ORDER BY signal
"""

COLUMNS = ("signal", "explicit", "agree", "disagree", "n", "agreement", "wilson_low",
           "wilson_high")  # fmt: skip


def review_calibration(db: Any) -> list[dict[str, Any]]:
    """One row per signal with decided verdicts on unanimous pairs (none without reviews, or on
    a warehouse from before migration 0007)."""
    from warehouse.db import table_names  # not at import: it brings alembic to the API's start

    if not {"reviews", "review_items"} <= table_names(db):
        return []
    return [dict(zip(COLUMNS, row, strict=True)) for row in db.execute(_CALIBRATION).fetchall()]


def refresh_review_rows(db: Any) -> int:
    """Replace ``signal_calibration``'s ``review`` rows with what the reviews say now; rows
    written. Nothing to do before the first transform run has built the table. Runs inside the
    caller's transaction, if any."""
    from warehouse.db import table_names

    tables = table_names(db)
    if "signal_calibration" not in tables:
        return 0
    db.execute(f"DELETE FROM signal_calibration WHERE explicit = '{EXPLICIT}'")  # noqa: S608
    if not {"reviews", "review_items"} <= tables:
        return 0
    columns = ", ".join(COLUMNS)
    [(written,)] = db.execute(
        f"INSERT INTO signal_calibration ({columns}) SELECT {columns} FROM ({_CALIBRATION})"  # noqa: S608
    ).fetchall()
    return int(written)
