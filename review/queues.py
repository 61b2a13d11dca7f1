"""Review queues in the warehouse: create one by sampling pairs, hand a reviewer the next item,
record a verdict.

Every function takes the raw DuckDB connection of the warehouse (``warehouse.db.connected``)
and keyword arguments; ``review.service`` opens the warehouse and the lake for callers that
hold settings (the CLI, the API). A reviewer is known here by pseudonym only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from flywheel.errors import NotFoundError, ReviewConflictError, ReviewInputError
from review.rubric import Rubric
from review.sampling import Candidate, draw, unit
from warehouse.lineage import LABEL_LINEAGE
from warehouse.reviews import refresh_review_rows

QUEUE_NAME = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
MAX_SEED = 2**32 - 1
MAX_NAMED = 10
"""Unknown rubric dimensions named one by one in a refusal; the rest are counted."""
STRATUM = r"^[a-z_]+/(low|mid|high)/(unanimous|contested)$"
KINDS = ("pair", "label")
"""What a queue samples: preference pairs (``pair``), or responses with their KTO label
(``label``), judged one answer at a time."""
Kind = Literal["pair", "label"]


def _a_number(value: object) -> object:
    """A score is a JSON number with no fraction (``4`` or ``4.0``, as JSON Schema's integer);
    a string or a boolean is refused, not converted."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    return value


WholeNumber = Annotated[int, BeforeValidator(_a_number)]
"""A JSON number with no fraction (``4``, ``4.0``): what JSON Schema's integer allows, never a
string or a boolean converted."""
Score = WholeNumber
Side = Literal["chosen", "rejected"]
Verdict = Literal["chosen", "rejected", "tie", "both_bad", "good", "bad"]
Answer = Literal["left", "right", "tie", "both_bad", "good", "bad"]
PAIR_ANSWERS = ("left", "right", "tie", "both_bad")
"""A pair item's verdicts: which side is better, a tie, or both bad."""
LABEL_ANSWERS = ("good", "bad")
"""A label item's verdicts: the answer is good (desirable) or bad."""
SIDES = {"pair": ("left", "right"), "label": ("answer",)}
"""What a review scores, by the kind of its item."""


class StratumPublic(BaseModel):
    """A stratum of a queue's sampling: its pairs in the warehouse, and those drawn."""

    stratum: str
    population: int
    sampled: int


class QueuePublic(BaseModel):
    """A queue, its sampling and how far its review is."""

    queue_id: str
    kind: str
    created_at: str
    seed: int | None
    """Null for a reviewer, with ``per_stratum``, ``strata`` (empty) and ``candidates``: with
    the strata's counts, an item's place in the queue would tell its stratum (``blinded``)."""
    per_stratum: int | None
    overlap: float
    strata: list[StratumPublic]
    candidates: int | None
    """Pairs (or labelled responses) that could be drawn (with training consent) when the
    queue was created."""
    rubric_sha256: str
    items: int
    items_done: int
    """Items with every review they want."""
    reviews: int


class MessagePublic(BaseModel):
    """A message of the prompt, as the model saw it (scrubbed)."""

    role: str
    content: str


class AnswerPublic(BaseModel):
    """One side of an item: the answer's text only (no signal, id or score)."""

    text: str


class ItemPublic(BaseModel):
    """What a reviewer sees: the prompt and, for a pair, two answers in an order drawn for this
    reviewer, or, for a label, the one answer; never the signals, the confidence, the stratum,
    which side the pair preferred or which label the answer got."""

    queue_id: str
    item_id: str
    kind: Kind = "pair"
    prompt: list[MessagePublic]
    left: AnswerPublic | None = None
    """A pair's answer shown on the left (null for a label)."""
    right: AnswerPublic | None = None
    answer: AnswerPublic | None = None
    """A label's answer (null for a pair)."""
    remaining: int
    """Items of the queue this reviewer has not reviewed that still want a review."""


class ReviewCreate(BaseModel):
    """A reviewer's answer. For a pair: which side is better (``left``, ``right``), ``tie`` or
    ``both_bad``, and rubric scores of ``left`` and ``right``; for a label: ``good`` or ``bad``
    and the scores of the ``answer``. Every dimension of the rubric, on its scale."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = Field(min_length=1, max_length=64)
    verdict: Answer
    scores: dict[Literal["left", "right", "answer"], dict[str, Score]]


class ReviewPublic(BaseModel):
    """A recorded review, as the reviewer gave it. Which side of the pair the signals chose is
    stored with it, never told: a reviewer who learned it item after item would learn what the
    signals prefer and stop judging blind."""

    review_id: str
    queue_id: str
    item_id: str
    verdict: Answer
    """As given: ``left``, ``right``, ``tie`` or ``both_bad``; ``good`` or ``bad``."""
    reviewed_at: str


def review_create_schema(rubric: Rubric) -> dict[str, Any]:
    """The JSON Schema of ``ReviewCreate`` under a rubric: every dimension required on the
    sides scored (``left`` and ``right``, or ``answer``), an integer on its scale, nothing else
    (what ``check_scores`` enforces; which verdicts and sides an item takes depends on its
    queue's kind, checked at submission)."""
    side = {
        "type": "object",
        "additionalProperties": False,
        "required": list(rubric.dimensions),
        "properties": {
            name: {"type": "integer", "minimum": d.min, "maximum": d.max,
                   "description": d.description}
            for name, d in rubric.dimensions.items()
        },
    }  # fmt: skip
    return {
        "title": "ReviewCreate",
        "type": "object",
        "additionalProperties": False,
        "required": ["item_id", "verdict", "scores"],
        "properties": {
            "item_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "verdict": {"enum": [*PAIR_ANSWERS, *LABEL_ANSWERS]},
            "scores": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {"left": side, "right": side, "answer": side},
            },
        },
    }


def now_utc() -> datetime:
    return datetime.now(UTC)


def _params(row: tuple[Any, ...]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(row[0])
    return loaded


_LABEL_CANDIDATES = f"""
WITH edited AS (
    SELECT response_id, sum(weight) AS weight FROM edit_changes WHERE weight > 0
    GROUP BY response_id
),
evidence AS (
    -- The evidence transforms/models/labels.sql weighs, by signal and way.
    SELECT l.response_id, l.label, l.confidence, r.conversation_id, r.event_id,
           r.copies > 0 AS copy_for, r.ratings_up > 0 AS rating_for,
           r.ratings_down > 0 AS rating_against, r.ab_wins > 0 AS ab_for,
           r.ab_losses > 0 OR r.ab_both_bad > 0 AS ab_against, r.continued AS continued_for,
           r.regenerations > 0 AND r.copies = 0 AND r.ratings_up = 0 AND NOT r.continued
               AS regenerate_against,
           coalesce(d.weight, 0) > 0 AS edit_against
    FROM labels AS l
    JOIN responses AS r USING (response_id)
    LEFT JOIN edited AS d USING (response_id)
    WHERE r.consent_training
)
SELECT e.response_id, e.conversation_id, e.event_id, e.label, e.confidence,
       list_filter([CASE WHEN copy_for THEN 'copy' END,
                    CASE WHEN rating_for OR rating_against THEN 'rating' END,
                    CASE WHEN ab_for OR ab_against THEN 'ab_choice' END,
                    CASE WHEN continued_for THEN 'continued' END,
                    CASE WHEN regenerate_against THEN 'regenerate' END,
                    CASE WHEN edit_against THEN 'edit' END], lambda s: s IS NOT NULL) AS signals,
       CASE WHEN (copy_for OR rating_for OR ab_for OR continued_for)
                 AND (rating_against OR ab_against OR regenerate_against OR edit_against)
            THEN 1.0 ELSE 0.0 END AS disagreement,
       lineage.event_ids
FROM evidence AS e
LEFT JOIN ({LABEL_LINEAGE}) AS lineage USING (response_id)
ORDER BY e.response_id
"""


def label_candidates(db: Any) -> list[Candidate]:
    """Every labelled response a ``label`` queue may draw: those with training consent. Its
    disagreement is 1 when evidence pointed both ways (the label is the net), else 0."""
    from warehouse.db import table_names  # not at import: it brings alembic to the API's start

    if "labels" not in table_names(db):
        raise NotFoundError("the warehouse has no labels yet: run `flywheel transform run` first")
    return [
        Candidate(
            pair_id=r[0], conversation_id=r[1], prompt_event_id=r[2], chosen_event_id=r[2],
            rejected_event_id=None, chosen_response_id=r[0], rejected_response_id=None,
            label=bool(r[3]), confidence=float(r[4]), signals=tuple(r[5]),
            disagreement=float(r[6]), event_ids=tuple(r[7] or ()),
        )
        for r in db.execute(_LABEL_CANDIDATES).fetchall()
    ]  # fmt: skip


def candidates(db: Any, kind: Kind = "pair") -> list[Candidate]:
    """Every pair a queue may draw: those with training consent (labelled responses for a
    ``label`` queue)."""
    if kind == "label":
        return label_candidates(db)
    from warehouse.db import table_names

    if "preference_pairs" not in table_names(db):
        raise NotFoundError(
            "the warehouse has no preference pairs yet: run `flywheel transform run` first"
        )
    rows = db.execute(
        "SELECT pair_id, conversation_id, prompt_event_id, chosen_event_id, rejected_event_id, "
        "chosen_response_id, rejected_response_id, signals, confidence, disagreement, event_ids "
        "FROM preference_pairs WHERE consent_training ORDER BY pair_id"
    ).fetchall()
    return [
        Candidate(
            pair_id=r[0], conversation_id=r[1], prompt_event_id=r[2], chosen_event_id=r[3],
            rejected_event_id=r[4], chosen_response_id=r[5], rejected_response_id=r[6],
            signals=tuple(r[7]), confidence=float(r[8]), disagreement=float(r[9]),
            event_ids=tuple(r[10] or ()),
        )
        for r in rows
    ]  # fmt: skip


def create_queue(
    db: Any,
    *,
    queue_id: str,
    seed: int,
    per_stratum: int,
    rubric: Rubric,
    overlap: float = 0.0,
    strata: list[str] | None = None,
    now: datetime | None = None,
    kind: str = "pair",
) -> QueuePublic:
    """Draw a stratified sample of pairs, or of labelled responses (``kind`` ``label``;
    ``review.sampling``) into a new queue; the seed, the strata and their counts are recorded
    with it."""
    import re

    problems = []
    if kind not in KINDS:
        problems.append(("kind", f"must be one of {', '.join(KINDS)}"))
    if not re.match(QUEUE_NAME, queue_id):
        problems.append(("queue_id", "lower-case letters, digits and _.- (at most 64)"))
    if per_stratum < 1:
        problems.append(("per_stratum", "must be at least 1"))
    if not 0 <= overlap <= 1:
        problems.append(("overlap", "must be between 0 and 1"))
    if not 0 <= seed <= MAX_SEED:
        problems.append(("seed", f"must be between 0 and {MAX_SEED}"))
    if strata is not None and not strata:
        problems.append(("strata", "list at least one stratum, or leave strata out for all"))
    for index, name in enumerate(strata or []):
        if not re.match(STRATUM, name):
            problems.append((f"strata[{index}]", "must be signal/band/agreement, e.g. "
                             "copy/low/contested"))  # fmt: skip
    if problems:
        raise ReviewInputError(
            f"invalid queue: {problems[0][0]}: {problems[0][1]}",
            errors=[{"path": p, "type": "value_error", "message": m} for p, m in problems],
        )
    existing = db.execute(
        "SELECT count(*) FROM review_queues WHERE queue_id = $q", {"q": queue_id}
    ).fetchall()
    if existing[0][0]:
        raise ReviewConflictError(f"a review queue named {queue_id} exists already")
    pool = candidates(db, "label" if kind == "label" else "pair")
    sample = draw(pool, seed=seed, per_stratum=per_stratum, overlap=overlap, strata=strata)
    if not sample.items:
        what = "labelled responses" if kind == "label" else "pairs"
        if strata:
            there = ", ".join(s.stratum for s in sample.strata) or "none"
            raise ReviewInputError(
                f"invalid queue: strata: no {what} with training consent in these strata "
                f"(the strata there are: {there})",
                errors=[{"path": "strata", "type": "value_error",
                         "message": f"no {what} in these strata"}],
            )  # fmt: skip
        raise NotFoundError(f"the warehouse has no {what} with training consent to review")
    params = {
        "per_stratum": per_stratum,
        "overlap": overlap,
        "only_strata": strata,
        "candidates": len(pool),
        "source": f"{'labels' if kind == 'label' else 'preference_pairs'} WHERE consent_training",
        "strata": [s.__dict__ for s in sample.strata],
    }
    created = now or now_utc()
    db.execute("BEGIN TRANSACTION")
    try:
        db.execute(
            "INSERT INTO review_queues VALUES ($q, $at, $kind, $seed, $params, $rubric)",
            {"q": queue_id, "at": created, "kind": kind, "seed": seed,
             "params": json.dumps(params, sort_keys=True), "rubric": rubric.sha256},
        )  # fmt: skip
        if sample.items:
            rows = [
                (
                    hashlib.md5(f"{queue_id}|{s.candidate.pair_id}".encode()).hexdigest(),
                    queue_id, s.position, s.stratum, s.wanted_reviews, s.candidate.pair_id,
                    s.candidate.conversation_id, s.candidate.prompt_event_id,
                    s.candidate.chosen_event_id, s.candidate.rejected_event_id,
                    s.candidate.chosen_response_id, s.candidate.rejected_response_id,
                    list(s.candidate.signals), s.candidate.confidence, s.candidate.disagreement,
                    list(s.candidate.event_ids), s.candidate.label,
                )
                for s in sample.items
            ]  # fmt: skip
            db.executemany(
                "INSERT INTO review_items VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return show_queue(db, queue_id=queue_id)


_QUEUES = """
SELECT q.queue_id, q.kind, q.created_at, q.seed, q.params, q.rubric_sha256,
       (SELECT count(*) FROM review_items AS i WHERE i.queue_id = q.queue_id),
       (SELECT count(*) FROM review_items AS i WHERE i.queue_id = q.queue_id
          AND (SELECT count(*) FROM reviews AS r WHERE r.item_id = i.item_id)
              >= i.wanted_reviews),
       (SELECT count(*) FROM reviews AS r WHERE r.queue_id = q.queue_id)
FROM review_queues AS q
"""


def _queue(row: tuple[Any, ...]) -> QueuePublic:
    params = _params((row[4],))
    return QueuePublic(
        queue_id=row[0],
        kind=row[1],
        created_at=row[2].astimezone(UTC).isoformat(),
        seed=row[3],
        per_stratum=params["per_stratum"],
        overlap=params["overlap"],
        strata=[StratumPublic(**s) for s in params["strata"]],
        candidates=params["candidates"],
        rubric_sha256=row[5],
        items=row[6],
        items_done=row[7],
        reviews=row[8],
    )


def blinded(queue: QueuePublic) -> QueuePublic:
    """The queue as a reviewer sees it: its progress, not its sampling (seed, strata, counts),
    which with the order of the items would tell each item's stratum."""
    return queue.model_copy(
        update={"seed": None, "per_stratum": None, "strata": [], "candidates": None}
    )


def list_queues(db: Any) -> list[QueuePublic]:
    """Every queue, oldest first."""
    rows = db.execute(_QUEUES + " ORDER BY q.created_at, q.queue_id").fetchall()
    return [_queue(r) for r in rows]


def show_queue(db: Any, *, queue_id: str) -> QueuePublic:
    """One queue (``NotFoundError`` if there is none of that name)."""
    rows = db.execute(_QUEUES + " WHERE q.queue_id = $q", {"q": queue_id}).fetchall()
    if not rows:
        raise NotFoundError(f"no review queue named {queue_id}")
    return _queue(rows[0])


def _seed(db: Any, queue_id: str) -> int:
    rows = db.execute("SELECT seed FROM review_queues WHERE queue_id = $q", {"q": queue_id})
    found = rows.fetchall()
    if not found:
        raise NotFoundError(f"no review queue named {queue_id}")
    return int(found[0][0])


def left_side(seed: int, item_id: str, reviewer: str) -> Side:
    """Which side of the pair this reviewer sees on the left: drawn from the queue's seed, the
    item and the reviewer's pseudonym, so it is the same on every fetch and at submission (the
    client never says which side was where), and differs between reviewers."""
    return "chosen" if unit(seed, "side", item_id, reviewer) < 0.5 else "rejected"


_OPEN_ITEMS = """
SELECT i.item_id, i.prompt_event_id, i.chosen_event_id, i.rejected_event_id,
       i.label IS NOT NULL
FROM review_items AS i
WHERE i.queue_id = $q
  AND NOT EXISTS (SELECT 1 FROM reviews AS r
                  WHERE r.item_id = i.item_id AND r.reviewer_pseudonym = $reviewer)
  AND (SELECT count(*) FROM reviews AS r WHERE r.item_id = i.item_id) < i.wanted_reviews
ORDER BY i.position
"""


TEXT_BATCH = 32
"""Open items whose texts are read from the lake in one pass: one is usually enough, but after
retention removed texts, one pass per item passed over made a fetch take seconds."""


def next_item(db: Any, lake_root: Path, *, queue_id: str, reviewer: str) -> ItemPublic | None:
    """The first item of the queue (in its order) that this reviewer has not reviewed and that
    wants more reviews, with its texts read from the lake; None when there is none. Items whose
    texts are no longer in the lake (retention) are passed over."""
    from warehouse.texts import fetch_texts

    seed = _seed(db, queue_id)
    open_items = db.execute(_OPEN_ITEMS, {"q": queue_id, "reviewer": reviewer}).fetchall()
    for start in range(0, len(open_items), TEXT_BATCH):
        batch = open_items[start : start + TEXT_BATCH]
        needs = [
            {prompt_id, chosen_id} | (set() if is_label else {rejected_id})
            for _, prompt_id, chosen_id, rejected_id, is_label in batch
        ]
        db.execute(
            "CREATE OR REPLACE TEMP TABLE review_wanted AS SELECT unnest($ids) AS event_id",
            {"ids": sorted(set().union(*needs))},
        )
        fetch_texts(
            db,
            lake_root,
            "SELECT e.event_id, e.lake_file, e.source_offset FROM events AS e "
            "SEMI JOIN review_wanted AS w ON w.event_id = e.event_id",
        )
        texts = {
            event_id: (prompt, text)
            for event_id, prompt, text in db.execute(
                "SELECT event_id, prompt, text FROM lake_texts"
            ).fetchall()
        }
        for offset, (row, wanted) in enumerate(zip(batch, needs, strict=True)):
            if wanted <= texts.keys():
                return _item(queue_id, seed, reviewer, row, texts,
                             remaining=len(open_items) - start - offset)  # fmt: skip
    return None


def _item(
    queue_id: str, seed: int, reviewer: str, row: tuple[Any, ...],
    texts: dict[str, tuple[str | None, str | None]], *, remaining: int,
) -> ItemPublic:  # fmt: skip
    """An open item as its reviewer sees it, from its ids and the texts read for them."""
    item_id, prompt_id, chosen_id, rejected_id, is_label = row
    prompt = json.loads(texts[prompt_id][0] or "[]")
    messages = [
        MessagePublic(role=m.get("role", ""), content=_content(m.get("content"))) for m in prompt
    ]
    chosen = AnswerPublic(text=texts[chosen_id][1] or "")
    if is_label:
        return ItemPublic(queue_id=queue_id, item_id=item_id, kind="label", prompt=messages,
                          answer=chosen, remaining=remaining)  # fmt: skip
    rejected = AnswerPublic(text=texts[rejected_id][1] or "")
    chosen_left = left_side(seed, item_id, reviewer) == "chosen"
    return ItemPublic(
        queue_id=queue_id,
        item_id=item_id,
        prompt=messages,
        left=chosen if chosen_left else rejected,
        right=rejected if chosen_left else chosen,
        remaining=remaining,
    )


def _content(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", "")) for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )  # fmt: skip
    return ""


def check_scores(
    rubric: Rubric,
    scores: Mapping[str, Mapping[str, int]],
    sides: tuple[str, ...] = ("left", "right"),
) -> list[dict[str, object]]:
    """The problems of a review's scores: each of ``sides`` must score every dimension of the
    rubric, as an integer on its scale, and nothing else; no other side may be scored."""
    problems: list[dict[str, object]] = [
        {"path": f"scores.{side}", "type": "unexpected",
         "message": f"this item scores {' and '.join(sides)} only"}
        for side in sorted(set(scores) - set(sides))
    ]  # fmt: skip
    for side in sides:
        given = scores.get(side)
        if given is None:
            problems.append({"path": f"scores.{side}", "type": "missing",
                             "message": "Field required"})  # fmt: skip
            continue
        for name, dimension in rubric.dimensions.items():
            path = f"scores.{side}.{name}"
            if name not in given:
                problems.append({"path": path, "type": "missing", "message": "Field required"})
            elif not dimension.min <= given[name] <= dimension.max:
                problems.append({
                    "path": path, "type": "out_of_scale",
                    "message": f"must be between {dimension.min} and {dimension.max}",
                })  # fmt: skip
        unknown = sorted(set(given) - set(rubric.dimensions))
        for name in unknown[:MAX_NAMED]:
            problems.append({"path": f"scores.{side}.{name}", "type": "unknown_dimension",
                             "message": "not a dimension of the rubric"})  # fmt: skip
        if len(unknown) > MAX_NAMED:  # a body of thousands gets a short answer
            problems.append({"path": f"scores.{side}", "type": "unknown_dimension",
                             "message": f"and {len(unknown) - MAX_NAMED} more dimensions "
                             "not of the rubric"})  # fmt: skip
    return problems


def submit_review(
    db: Any,
    *,
    queue_id: str,
    review: ReviewCreate,
    reviewer: str,
    key_version: int,
    rubric: Rubric,
    now: datetime | None = None,
) -> ReviewPublic:
    """Record a reviewer's verdict and scores on an item of the queue: for a pair, mapped
    from left and right back to the pair's chosen and rejected sides; for a label, ``good`` or
    ``bad`` with the answer's scores. Once per reviewer and item (``ReviewConflictError``); an
    item of another queue, or none, is ``NotFoundError``; a verdict or a side the item's kind
    does not take is ``ReviewInputError``."""
    seed = _seed(db, queue_id)
    rows = db.execute(
        "SELECT conversation_id, chosen_event_id, rejected_event_id, chosen_response_id, "
        "rejected_response_id, label IS NOT NULL FROM review_items "
        "WHERE queue_id = $q AND item_id = $i",
        {"q": queue_id, "i": review.item_id},
    ).fetchall()
    if not rows:
        raise NotFoundError(f"the review queue {queue_id} has no item {review.item_id}")
    conversation, chosen_event, rejected_event, chosen_response, rejected_response = rows[0][:5]
    is_label = bool(rows[0][5])
    kind = "label" if is_label else "pair"
    answers = LABEL_ANSWERS if is_label else PAIR_ANSWERS
    problems: list[dict[str, object]] = [] if review.verdict in answers else [
        {"path": "verdict", "type": "enum",
         "message": f"a {kind} item's verdict is one of {', '.join(answers)}"}
    ]  # fmt: skip
    problems += check_scores(
        rubric, {str(side): given for side, given in review.scores.items()}, SIDES[kind]
    )
    if problems:
        first = problems[0]
        raise ReviewInputError(f"invalid review: {first['path']}: {first['message']}",
                               errors=problems)  # fmt: skip
    verdict: Verdict
    if is_label:
        side: Side = "chosen"
        verdict = "good" if review.verdict == "good" else "bad"
        by_side: dict[str, dict[str, int]] = {"chosen": review.scores["answer"], "rejected": {}}
    else:
        side = left_side(seed, review.item_id, reviewer)
        other: Side = "rejected" if side == "chosen" else "chosen"
        if review.verdict == "left":
            verdict = side
        elif review.verdict == "right":
            verdict = other
        else:
            verdict = "tie" if review.verdict == "tie" else "both_bad"
        by_side = {side: review.scores["left"], other: review.scores["right"]}
    reviewed = now or now_utc()
    review_id = hashlib.md5(f"{review.item_id}|{reviewer}".encode()).hexdigest()
    db.execute("BEGIN TRANSACTION")
    try:
        taken = db.execute(
            "SELECT count(*) FROM reviews WHERE review_id = $r", {"r": review_id}
        ).fetchall()
        if taken[0][0]:
            raise ReviewConflictError(f"this reviewer has already reviewed item {review.item_id}")
        # Only an item that wants another review takes one: the seeded overlap, not whoever
        # posts an item's id, decides which items two reviewers judge.
        [(reviewed_by, wanted)] = db.execute(
            "SELECT (SELECT count(*) FROM reviews WHERE item_id = $i), wanted_reviews "
            "FROM review_items WHERE item_id = $i",
            {"i": review.item_id},
        ).fetchall()
        if reviewed_by >= wanted:
            raise ReviewConflictError(
                f"item {review.item_id} has every review it wants: fetch the next item"
            )
        db.execute(
            "INSERT INTO reviews VALUES ($id, $q, $item, $reviewer, $version, $left, $verdict, "
            "$chosen_scores, $rejected_scores, $rubric, $at, $conversation, $chosen_event, "
            "$rejected_event, $chosen_response, $rejected_response)",
            {
                "id": review_id, "q": queue_id, "item": review.item_id, "reviewer": reviewer,
                "version": key_version, "left": side, "verdict": verdict,
                "chosen_scores": json.dumps(by_side["chosen"], sort_keys=True),
                "rejected_scores": json.dumps(by_side["rejected"], sort_keys=True),
                "rubric": rubric.sha256, "at": reviewed, "conversation": conversation,
                "chosen_event": chosen_event, "rejected_event": rejected_event,
                "chosen_response": chosen_response, "rejected_response": rejected_response,
            },
        )  # fmt: skip
        # signal_calibration's human precision counts the new verdict from now on.
        refresh_review_rows(db)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return ReviewPublic(
        review_id=review_id,
        queue_id=queue_id,
        item_id=review.item_id,
        verdict=review.verdict,
        reviewed_at=reviewed.astimezone(UTC).isoformat(),
    )
