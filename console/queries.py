"""The console's reads of the warehouse: one function per page, each on an open read-only DuckDB
connection (``console.reader``), values always bound. Days are UTC.

Only pseudonymous values leave here: the warehouse holds pseudonyms (``user_pseudonym``) and ids
the anonymiser already checked, never raw user ids; texts are read from the lake, scrubbed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

EPOCH = date(1970, 1, 1)

PAGE_SIZE = 50
"""Rows per page of the pairs list."""


def _day(column: str) -> str:
    """A timestamp's UTC day as a number of days since 1970-01-01: integer arithmetic, a
    quarter of the time of formatting the day in SQL over half a million events."""
    return f"(epoch({column})::BIGINT // 86400)"


def _rows(db: Any, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows as dicts; a ``day`` column (``_day``) becomes the ISO date."""
    cursor = db.execute(sql, params or {})
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    if "day" in names:
        for row in rows:
            if row["day"] is not None and not isinstance(row["day"], str):
                row["day"] = (EPOCH + timedelta(days=int(row["day"]))).isoformat()
    return rows


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
    loaded: frozenset[str] = frozenset()
    """The lake files loaded, to tell the lake files not loaded yet."""
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
        loaded=loaded_files(db),
    )  # fmt: skip


def loaded_files(db: Any) -> frozenset[str]:
    """The lake files the warehouse has loaded (relative paths)."""
    return frozenset(path for (path,) in db.execute("SELECT path FROM lake_files").fetchall())


def pending_lake_files(loaded: frozenset[str], events_root: Path) -> tuple[int, datetime | None]:
    """Lake files on this disk the warehouse has not loaded (``loaded``): how many, and when
    the oldest landed (its modification time): how far the warehouse is behind the lake."""
    if not events_root.is_dir():
        return 0, None
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


def signals_per_day(db: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pairs per signal per day (the day the rejected response was generated), and labels per
    signal, day (the labelled response's generation) and label, a row each, from the summary
    the transforms build (``signal_days``: a row per day and signal). Joining every pair and
    label to its response here took 220 to 450 ms at 0.5M events on each first read after a
    run."""
    pairs: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for day, signal, n_pairs, desirable, undesirable in db.execute(
        "SELECT day, signal, pairs, desirable, undesirable FROM signal_days ORDER BY day, signal"
    ).fetchall():
        iso = day.isoformat()
        if n_pairs:
            pairs.append({"day": iso, "signal": signal, "n": n_pairs})
        for label, n in ((True, desirable), (False, undesirable)):
            if n:
                labels.append({"day": iso, "signal": signal, "label": label, "n": n})
    return pairs, labels


def signal_totals(
    pairs: list[dict[str, Any]], labels: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per signal: pairs, desirable and undesirable labels, summed from the per-day rows."""
    totals: dict[str, dict[str, Any]] = {}

    def entry(signal: str) -> dict[str, Any]:
        return totals.setdefault(
            signal, {"signal": signal, "pairs": 0, "desirable": 0, "undesirable": 0}
        )

    for row in pairs:
        entry(row["signal"])["pairs"] += row["n"]
    for row in labels:
        entry(row["signal"])["desirable" if row["label"] else "undesirable"] += row["n"]
    return [totals[name] for name in sorted(totals)]


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


def pair_detail(
    db: Any, pair_id: str, lake_root: Callable[[list[str]], Path | None]
) -> PairDetail | None:
    """A pair by id (None if there is none), with its texts read from the lake files
    ``lake_root`` gives a folder for (None: the lake is not readable here; no texts)."""
    found = _rows(db, "SELECT * FROM preference_pairs WHERE pair_id = $id", {"id": pair_id})
    if not found:
        return None
    pair = found[0]
    sides = [pair["chosen_response_id"], pair["rejected_response_id"]]
    responses = _rows(
        db,
        f"SELECT {RESPONSE_EVIDENCE} FROM responses WHERE response_id = $a OR response_id = $b",
        {"a": sides[0] or sides[1], "b": sides[1]},
    )
    responses.sort(key=lambda r: 0 if r["response_id"] == pair["chosen_response_id"] else 1)
    texts_of = [pair["prompt_event_id"], pair["chosen_event_id"], pair["rejected_event_id"]]
    # One pass over events for the lineage and the three events the texts are read from.
    wanted = sorted(set(pair["event_ids"]) | set(texts_of))
    rows = _rows(
        db,
        """
        SELECT e.event_id, e.type, e.occurred_at, e.user_pseudonym, e.response_id,
               e.response_a_id, e.response_b_id, e.choice, e.rating_value, e.code_block,
               e.model_id, e.model_version, e.consent_training, e.lake_file, e.source_offset
        FROM events AS e SEMI JOIN (SELECT unnest($ids::VARCHAR[]) AS id) AS w ON w.id = e.event_id
        ORDER BY e.occurred_at, e.event_id
        """,
        {"ids": wanted},
    )
    lineage = set(pair["event_ids"])
    events = [row for row in rows if row["event_id"] in lineage]
    sources = [row for row in rows if row["event_id"] in texts_of]
    prompt = chosen = rejected = None
    root = lake_root(sorted({row["lake_file"] for row in sources})) if sources else None
    if root is not None:
        from warehouse.texts import fetch_texts

        db.execute(
            "CREATE OR REPLACE TEMP TABLE console_sources AS SELECT unnest($ids) AS event_id, "
            "unnest($files) AS lake_file, unnest($offsets) AS source_offset",
            {
                "ids": [row["event_id"] for row in sources],
                "files": [row["lake_file"] for row in sources],
                "offsets": [row["source_offset"] for row in sources],
            },
        )
        fetch_texts(db, root, "SELECT event_id, lake_file, source_offset FROM console_sources")
        texts = {
            event_id: (prompt_json, text)
            for event_id, prompt_json, text in db.execute(
                "SELECT event_id, prompt, text FROM lake_texts"
            ).fetchall()
        }
        if texts.get(pair["prompt_event_id"], (None, None))[0]:
            prompt = json.loads(texts[pair["prompt_event_id"]][0])
        chosen = texts.get(pair["chosen_event_id"], (None, None))[1]
        rejected = texts.get(pair["rejected_event_id"], (None, None))[1]
    return PairDetail(pair, responses, events, prompt, chosen, rejected)
