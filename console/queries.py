"""The console's reads of the warehouse: one function per page, each on an open read-only DuckDB
connection (``console.reader``), values always bound. Days are UTC.

Only pseudonymous values leave here: the warehouse holds pseudonyms (``user_pseudonym``) and ids
the anonymiser already checked, never raw user ids; texts are read from the lake, scrubbed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warehouse.lineage import RESPONSE_SIGNALS

UTC_DAY = "strftime(timezone('UTC', {column}), '%Y-%m-%d')"

PAGE_SIZE = 50
"""Rows per page of the pairs list."""


def _day(column: str) -> str:
    return UTC_DAY.format(column=column)


def _rows(db: Any, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params or {})
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _column(db: Any, sql: str) -> list[Any]:
    return [value for (value,) in db.execute(sql).fetchall()]


def pivot(
    rows: list[dict[str, Any]], *, category: str, series: str, value: str
) -> tuple[list[str], dict[str, list[float]]]:
    """(sorted categories, {series: a value per category, 0 where none}) from long rows."""
    categories = sorted({str(r[category]) for r in rows})
    index = {c: i for i, c in enumerate(categories)}
    out: dict[str, list[float]] = {}
    for row in rows:
        values = out.setdefault(str(row[series]), [0.0] * len(categories))
        values[index[str(row[category])]] += float(row[value] or 0)
    return categories, dict(sorted(out.items()))


# --- Overview ---------------------------------------------------------------------------------


@dataclass
class Overview:
    """What the overview page shows."""

    events: int
    withheld: int
    lake_files: int
    rows_read: int
    not_loaded: int
    """Rows of loaded lake files that are not in ``events`` nor ``withheld_events``: copies of
    events landed twice (resends past the workers' dedupe window) and unreadable times."""
    by_day: list[dict[str, Any]]
    """Events by day of occurrence and type."""
    landed: list[dict[str, Any]]
    """Per landing day: files, rows, events loaded, withheld, not loaded."""
    last_run: dict[str, Any] | None
    newest_event: datetime | None
    newest_load: datetime | None
    runs_failed: int
    pending_files: int | None = None
    """Lake files landed but not loaded yet (None when the lake is not on this disk)."""
    oldest_pending: datetime | None = None
    models: list[dict[str, Any]] = field(default_factory=list)


def overview(db: Any) -> Overview:
    """Counts from the loader's tables: events by day and type, landing by day, the runs."""
    totals = db.execute(
        "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM withheld_events), "
        "(SELECT count(*) FROM lake_files), (SELECT coalesce(sum(rows), 0) FROM lake_files), "
        "(SELECT max(occurred_at) FROM events), (SELECT max(loaded_at) FROM lake_files), "
        "(SELECT count(*) FROM transform_runs WHERE status <> 'succeeded' AND status <> 'running')"
    ).fetchone()
    events, withheld, files, rows_read, newest_event, newest_load, failed = totals
    by_day = _rows(
        db,
        f"SELECT {_day('occurred_at')} AS day, type, count(*) AS events FROM events "
        "GROUP BY ALL ORDER BY day, type",
    )
    landed = _rows(
        db,
        """
        WITH withheld AS (SELECT lake_file, count(*) AS n FROM withheld_events GROUP BY ALL)
        SELECT coalesce(regexp_extract(f.path, 'landed_date=([0-9-]+)', 1), '?') AS day,
               count(*) AS files, sum(f.rows) AS rows, sum(coalesce(f.new_events, 0)) AS loaded,
               sum(coalesce(w.n, 0)) AS withheld,
               sum(f.rows - coalesce(f.new_events, 0) - coalesce(w.n, 0)) AS not_loaded
        FROM lake_files AS f LEFT JOIN withheld AS w ON w.lake_file = f.path
        GROUP BY ALL ORDER BY day
        """,
    )
    runs = _rows(
        db,
        "SELECT run_id, started_at, finished_at, full_refresh, files_loaded, events_loaded, "
        "status FROM transform_runs ORDER BY started_at DESC LIMIT 1",
    )
    models = _rows(
        db, "SELECT model, built_at, full_build, through_seq FROM model_state ORDER BY model"
    )
    not_loaded = sum(int(r["not_loaded"] or 0) for r in landed)
    return Overview(
        events=events, withheld=withheld, lake_files=files, rows_read=int(rows_read),
        not_loaded=not_loaded, by_day=by_day, landed=landed, last_run=runs[0] if runs else None,
        newest_event=newest_event, newest_load=newest_load, runs_failed=failed, models=models,
    )  # fmt: skip


def pending_lake_files(db: Any, events_root: Path) -> tuple[int, datetime | None]:
    """Lake files on this disk the warehouse has not loaded: how many, and when the oldest
    landed (its modification time): how far the warehouse is behind the lake."""
    if not events_root.is_dir():
        return 0, None
    loaded = {path for (path,) in db.execute("SELECT path FROM lake_files").fetchall()}
    pending = [
        path
        for path in events_root.glob("landed_date=*/*.parquet")
        if not path.name.startswith(".") and f"{path.parent.name}/{path.name}" not in loaded
    ]
    if not pending:
        return 0, None
    oldest = min(path.stat().st_mtime for path in pending)
    return len(pending), datetime.fromtimestamp(oldest, UTC)


# --- Signals ----------------------------------------------------------------------------------


def pairs_per_signal(db: Any) -> list[dict[str, Any]]:
    """Pairs per signal per day (the day the rejected response was generated)."""
    return _rows(
        db,
        f"""
        SELECT {_day("r.occurred_at")} AS day, s.signal, count(*) AS n
        FROM preference_pairs AS p
        JOIN responses AS r ON r.response_id = p.rejected_response_id,
             unnest(p.signals) AS s(signal)
        GROUP BY ALL ORDER BY day
        """,
    )


def labels_per_signal(db: Any) -> list[dict[str, Any]]:
    """Labels per signal per day (the day the labelled response was generated)."""
    return _rows(
        db,
        f"""
        SELECT day, signal, count(*) AS n
        FROM (
            SELECT {_day("r.occurred_at")} AS day, {RESPONSE_SIGNALS} AS signals
            FROM labels AS l JOIN responses AS r USING (response_id)
        ), unnest(signals) AS s(signal)
        GROUP BY ALL ORDER BY day
        """,
    )


def signal_totals(db: Any) -> list[dict[str, Any]]:
    """Per signal: pairs, labels (desirable and undesirable) over the whole warehouse."""
    return _rows(
        db,
        f"""
        WITH pairs AS (
            SELECT s.signal, count(*) AS pairs FROM preference_pairs, unnest(signals) AS s(signal)
            GROUP BY ALL
        ),
        labelled AS (
            SELECT s.signal, count(*) FILTER (WHERE label) AS desirable,
                   count(*) FILTER (WHERE NOT label) AS undesirable
            FROM (SELECT l.label, {RESPONSE_SIGNALS} AS signals
                  FROM labels AS l JOIN responses AS r USING (response_id)),
                 unnest(signals) AS s(signal)
            GROUP BY ALL
        )
        SELECT signal, coalesce(pairs, 0) AS pairs, coalesce(desirable, 0) AS desirable,
               coalesce(undesirable, 0) AS undesirable
        FROM pairs FULL JOIN labelled USING (signal)
        ORDER BY signal
        """,
    )


def calibration(db: Any) -> list[dict[str, Any]]:
    """``signal_calibration`` as it is: agreement with each explicit signal, Wilson bounds."""
    return _rows(
        db,
        "SELECT signal, explicit, agree, disagree, n, agreement, wilson_low, wilson_high "
        "FROM signal_calibration ORDER BY explicit, signal",
    )


# --- Pairs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairFilter:
    """The pairs list's filters, as the query string gives them."""

    signal: str | None = None
    model: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    disagreement: str | None = None
    """``none`` (0), ``some`` (above 0) or None (any)."""

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses: list[str] = ["true"]
        params: dict[str, Any] = {}
        if self.signal:
            clauses.append("list_contains(signals, $signal)")
            params["signal"] = self.signal
        if self.model:
            clauses.append("list_contains(models, $model)")
            params["model"] = self.model
        if self.min_confidence is not None:
            clauses.append("confidence >= $min_confidence")
            params["min_confidence"] = self.min_confidence
        if self.max_confidence is not None:
            clauses.append("confidence <= $max_confidence")
            params["max_confidence"] = self.max_confidence
        if self.disagreement == "none":
            clauses.append("disagreement = 0")
        elif self.disagreement == "some":
            clauses.append("disagreement > 0")
        return " AND ".join(clauses), params


@dataclass
class PairPage:
    """One page of the pairs list."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    signals: list[str]
    models: list[str]


def pair_page(db: Any, where: PairFilter, page: int) -> PairPage:
    """The pairs matching the filter, most confident first (ties by pair id, so a page never
    shifts), ``PAGE_SIZE`` per page; with the total and the filter's choices."""
    condition, params = where.where()
    total = db.execute(
        f"SELECT count(*) FROM preference_pairs WHERE {condition}", params
    ).fetchone()[0]
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = _rows(
        db,
        f"""
        SELECT pair_id, signals, confidence, disagreement, models, consent_training,
               chosen_response_id IS NULL AS edit_pair
        FROM preference_pairs WHERE {condition}
        ORDER BY confidence DESC, pair_id
        LIMIT {PAGE_SIZE} OFFSET $offset
        """,
        {**params, "offset": (page - 1) * PAGE_SIZE},
    )
    signals = _column(db, "SELECT DISTINCT unnest(signals) AS s FROM preference_pairs ORDER BY s")
    models = _column(db, "SELECT DISTINCT unnest(models) AS m FROM preference_pairs ORDER BY m")
    return PairPage(rows=rows, total=total, page=page, pages=pages, signals=signals, models=models)


@dataclass
class PairDetail:
    """One pair: its row, both responses' evidence, its texts and the events behind it."""

    pair: dict[str, Any]
    responses: list[dict[str, Any]]
    events: list[dict[str, Any]]
    prompt: list[dict[str, Any]] | None
    chosen: str | None
    rejected: str | None


RESPONSE_EVIDENCE = (
    "response_id, siblings, copies, code_copies, edits, regenerations, ratings_up, "
    "ratings_down, ab_wins, ab_losses, ab_ties, ab_both_bad, continued, model_id, model_version"
)


def pair_detail(db: Any, pair_id: str, lake_root: Path | None) -> PairDetail | None:
    """A pair by id (None if there is none), its texts read from the lake under ``lake_root``
    (None: the lake is not readable here, and the texts are left out)."""
    found = _rows(db, "SELECT * FROM preference_pairs WHERE pair_id = $id", {"id": pair_id})
    if not found:
        return None
    pair = found[0]
    ids = [i for i in (pair["chosen_response_id"], pair["rejected_response_id"]) if i]
    responses = _rows(
        db,
        f"SELECT {RESPONSE_EVIDENCE} FROM responses WHERE list_contains($ids, response_id)",
        {"ids": ids},
    )
    responses.sort(key=lambda r: 0 if r["response_id"] == pair["chosen_response_id"] else 1)
    events = _rows(
        db,
        """
        SELECT event_id, type, occurred_at, user_pseudonym, response_id, response_a_id,
               response_b_id, choice, rating_value, code_block, model_id, model_version,
               consent_training
        FROM events WHERE list_contains($ids, event_id) ORDER BY occurred_at, event_id
        """,
        {"ids": list(pair["event_ids"])},
    )
    prompt = chosen = rejected = None
    if lake_root is not None:
        from warehouse.texts import fetch_texts

        wanted = [pair["prompt_event_id"], pair["chosen_event_id"], pair["rejected_event_id"]]
        db.execute(
            "CREATE OR REPLACE TEMP TABLE console_wanted AS "
            "SELECT unnest($ids::VARCHAR[]) AS event_id",
            {"ids": wanted},
        )
        fetch_texts(
            db, lake_root,
            "SELECT event_id, lake_file, source_offset FROM events "
            "WHERE event_id IN (SELECT event_id FROM console_wanted)",
        )  # fmt: skip
        texts = {
            event_id: (prompt_json, text)
            for event_id, prompt_json, text in db.execute(
                "SELECT event_id, prompt, text FROM lake_texts"
            ).fetchall()
        }
        if pair["prompt_event_id"] in texts and texts[pair["prompt_event_id"]][0]:
            prompt = json.loads(texts[pair["prompt_event_id"]][0])
        chosen = texts.get(pair["chosen_event_id"], (None, None))[1]
        rejected = texts.get(pair["rejected_event_id"], (None, None))[1]
    return PairDetail(pair, responses, events, prompt, chosen, rejected)
