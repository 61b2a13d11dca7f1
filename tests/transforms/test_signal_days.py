"""``signal_days`` (pairs and labels per day and signal, what the console's signals page reads)
holds the numbers the page computed from ``preference_pairs``, ``labels`` and ``responses``
before the model existed: the queries below are those the page ran."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from console.queries import signal_totals, signals_per_day
from tests.factories import generation, make_event
from tests.helpers.lake import land, query
from transforms.models import MODELS
from transforms.runner import run_transforms
from warehouse.lake import Lake
from warehouse.lineage import SIGNAL_CONDITIONS

EPOCH = date(1970, 1, 1)

PAIRS_BEFORE = """
SELECT epoch(r.occurred_at)::BIGINT // 86400 AS day, s.signal, count(*) AS n
FROM preference_pairs AS p
JOIN responses AS r ON r.response_id = p.rejected_response_id,
     unnest(p.signals) AS s(signal)
GROUP BY ALL
"""

COUNTS = ", ".join(
    f'count(*) FILTER (WHERE {when}) AS "{name}"' for name, when in SIGNAL_CONDITIONS.items()
)
LABELS_BEFORE = f"""
SELECT epoch(r.occurred_at)::BIGINT // 86400 AS day, l.label, {COUNTS}
FROM labels AS l JOIN responses AS r USING (response_id)
GROUP BY ALL
"""


def _day(number: int) -> str:
    return (EPOCH + timedelta(days=number)).isoformat()


def before(db: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(day, signal, pairs) and (day, signal, label, labels) as the page counted them."""
    pairs = [(_day(day), signal, n) for day, signal, n in db.execute(PAIRS_BEFORE).fetchall()]
    labels = [
        (_day(day), name, label, row[i])
        for day, label, *row in db.execute(LABELS_BEFORE).fetchall()
        for i, name in enumerate(SIGNAL_CONDITIONS)
        if row[i]
    ]
    return sorted(pairs), sorted(labels)


def after(pairs: list[dict[str, Any]], labels: list[dict[str, Any]]) -> tuple[list[Any], ...]:
    return (
        sorted((r["day"], r["signal"], r["n"]) for r in pairs),
        sorted((r["day"], r["signal"], r["label"], r["n"]) for r in labels),
    )


def test_signal_days_holds_what_the_signals_page_counted_from_pairs_and_labels(
    simulated: tuple[Path, list[dict[str, Any]]],
) -> None:
    data_dir, _ = simulated
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        expected = before(db)
        pairs, labels = signals_per_day(db)
        [(days, signals)] = db.execute(
            "SELECT count(DISTINCT day), count(DISTINCT signal) FROM signal_days"
        ).fetchall()
        [(empty,)] = db.execute(
            "SELECT count(*) FROM signal_days WHERE pairs = 0 AND desirable = 0 AND undesirable = 0"
        ).fetchall()
        [(total_pairs, total_labels)] = db.execute(
            "SELECT (SELECT count(*) FROM preference_pairs), (SELECT count(*) FROM labels)"
        ).fetchall()

    assert after(pairs, labels) == expected
    # The simulated traffic has every signal, on both sides (in one day: the day boundary is
    # the next test's).
    assert days >= 1 and signals == len(SIGNAL_CONDITIONS)
    assert {r["signal"] for r in pairs} >= {"ab_choice", "copy", "rating", "regenerate", "edit"}
    assert {(r["signal"], r["label"]) for r in labels} >= {("copy", True), ("rating", False)}
    assert empty == 0
    totals = signal_totals(pairs, labels)
    assert sum(t["pairs"] for t in totals) >= total_pairs  # a pair counts once per signal
    assert sum(t["desirable"] + t["undesirable"] for t in totals) >= total_labels


def test_the_days_are_utc_days_whatever_the_sessions_time_zone(tmp_path: Path) -> None:
    """The model's day is the UTC day (as the page counted, and as Spark's UTC session does),
    not the day in the time zone of whoever runs the transforms: two conversations an hour
    apart across midnight UTC."""
    late, early = "2026-01-05T23:30:00Z", "2026-01-06T00:30:00Z"
    events = [
        generation("r1", "m1", occurred_at=late),
        generation("r2", "m1", occurred_at=late),
        make_event("copy", response_id="r1", occurred_at=late),
        generation("r3", "m2", conversation_id="conv-2", occurred_at=early),
        generation("r4", "m2", conversation_id="conv-2", occurred_at=early),
        make_event("rating", response_id="r3", conversation_id="conv-2", occurred_at=early),
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)

    built = query(tmp_path, "SELECT * FROM signal_days ORDER BY ALL")
    assert built == [(date(2026, 1, 5), "copy", 1, 1, 0), (date(2026, 1, 6), "rating", 1, 1, 0)]
    sql = (MODELS / "signal_days.sql").read_text()
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as db:
        expected = before(db)
        for zone in ("Pacific/Kiritimati", "America/Los_Angeles"):
            db.execute(f"SET TimeZone = '{zone}'")
            assert sorted(db.execute(sql).fetchall()) == built, zone
            assert after(*signals_per_day(db)) == expected, zone
