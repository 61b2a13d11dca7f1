"""Queues of single responses (the KTO labels): sampled from ``labels`` with training consent,
stratified and reproducible like pairs; a reviewer sees the prompt and the one answer, never
its label or signals, and says good or bad with the answer's rubric scores; the calibration
counts a verdict that says what the label says as agreeing with the label's signals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.errors import ReviewInputError
from flywheel.settings import Settings
from flywheel.shell.erasure import erase_users
from review import service
from review.queues import ReviewCreate
from tests.helpers.lake import query
from tests.helpers.review import ERASED, KEYRING, review_settings, scores

pytestmark = pytest.mark.slow  # a warehouse built from the lake: ~5 s

ANA = "ana@example.com"
BO = "bo@example.com"


@pytest.fixture
def settings(review_data_dir: Path) -> Settings:
    return review_settings(review_data_dir)


def answer_scores(value: int = 4) -> dict[str, dict[str, int]]:
    return {"answer": scores(value, value)["left"]}


def labels_with_consent(settings: Settings) -> dict[str, bool]:
    rows = query(
        settings.data_dir,
        "SELECT l.response_id, l.label FROM labels AS l JOIN responses AS r USING (response_id) "
        "WHERE r.consent_training",
    )
    return dict(rows)


def test_a_label_queue_samples_labelled_responses_by_stratum_reproducibly(
    settings: Settings,
) -> None:
    queue = service.create_queue(settings, queue_id="l1", seed=3, per_stratum=50, kind="label")
    assert queue.kind == "label"
    labels = labels_with_consent(settings)
    assert queue.candidates == len(labels) and queue.items == len(labels)
    items = query(
        settings.data_dir,
        "SELECT pair_id, chosen_response_id, rejected_event_id, label, stratum, signals "
        "FROM review_items WHERE queue_id = 'l1' ORDER BY position",
    )
    assert {row[0]: row[3] for row in items} == labels
    for response, chosen, rejected, _, stratum, signals in items:
        assert chosen == response and rejected is None
        assert stratum.split("/")[0] == (signals[0] if len(signals) == 1 else "multiple")
    # r5a won an A/B choice; its sibling r5b lost it but was copied: evidence both ways.
    by_response = {row[0]: row[4] for row in items}
    assert by_response["r5b"].endswith("/contested")
    assert by_response["r0a"] == "copy/mid/unanimous"
    again = service.create_queue(settings, queue_id="l2", seed=3, per_stratum=50, kind="label")
    assert again.strata == queue.strata
    drawn = "SELECT pair_id FROM review_items WHERE queue_id = 'l2' ORDER BY position"
    assert query(settings.data_dir, drawn) == [(row[0],) for row in items]


def test_a_reviewer_sees_one_answer_and_nothing_of_its_label(settings: Settings) -> None:
    service.create_queue(settings, queue_id="l1", seed=3, per_stratum=50, kind="label")
    item = service.next_item(settings, queue_id="l1", reviewer_id=ANA)
    assert item is not None and item.kind == "label"
    assert item.left is None and item.right is None and item.answer is not None
    shown = item.model_dump_json()
    for hidden in ("label", "desirable", "confidence", "copy", "ab_choice", "stratum"):
        assert hidden not in shown.replace('"kind":"label"', "")
    assert item.prompt and item.prompt[0].content.startswith("question ")


def test_good_and_bad_are_stored_with_the_answers_scores(settings: Settings) -> None:
    service.create_queue(settings, queue_id="l1", seed=3, per_stratum=50, kind="label")
    item = service.next_item(settings, queue_id="l1", reviewer_id=ANA)
    assert item is not None
    stored = service.submit_review(
        settings, queue_id="l1", reviewer_id=ANA,
        review=ReviewCreate(item_id=item.item_id, verdict="bad", scores=answer_scores(2)),  # type: ignore[arg-type]
    )  # fmt: skip
    assert stored.verdict == "bad"
    [(verdict, chosen, rejected, rejected_event)] = query(
        settings.data_dir,
        "SELECT verdict, chosen_scores, rejected_scores, rejected_event_id FROM reviews",
    )
    assert verdict == "bad" and rejected == "{}" and rejected_event is None
    assert json.loads(chosen) == answer_scores(2)["answer"]


@pytest.mark.parametrize(
    ("verdict", "given", "path"),
    [
        ("left", answer_scores(), "verdict"),
        ("tie", answer_scores(), "verdict"),
        ("good", scores(), "scores.left"),
        ("good", {"answer": {"correctness": 4}}, "scores.answer.readability"),
    ],
)
def test_a_label_item_takes_good_or_bad_and_the_answers_scores_only(
    settings: Settings, verdict: str, given: dict[str, dict[str, int]], path: str
) -> None:
    service.create_queue(settings, queue_id="l1", seed=3, per_stratum=50, kind="label")
    item = service.next_item(settings, queue_id="l1", reviewer_id=ANA)
    assert item is not None
    review = ReviewCreate(item_id=item.item_id, verdict=verdict, scores=given)  # type: ignore[arg-type]
    with pytest.raises(ReviewInputError) as refused:
        service.submit_review(settings, queue_id="l1", review=review, reviewer_id=ANA)
    assert path in [e["path"] for e in refused.value.errors]
    assert query(settings.data_dir, "SELECT count(*) FROM reviews") == [(0,)]


def test_a_pair_item_refuses_a_labels_verdict(settings: Settings) -> None:
    service.create_queue(settings, queue_id="p1", seed=3, per_stratum=5)
    item = service.next_item(settings, queue_id="p1", reviewer_id=ANA)
    assert item is not None and item.kind == "pair" and item.answer is None
    review = ReviewCreate(item_id=item.item_id, verdict="good", scores=scores())  # type: ignore[arg-type]
    with pytest.raises(ReviewInputError, match="verdict"):
        service.submit_review(settings, queue_id="p1", review=review, reviewer_id=ANA)


def test_the_calibration_credits_a_labels_signals_with_agreeing_verdicts(
    settings: Settings,
) -> None:
    service.create_queue(settings, queue_id="l1", seed=3, per_stratum=50, kind="label")
    labels = labels_with_consent(settings)
    signals = dict(query(
        settings.data_dir,
        "SELECT pair_id, signals FROM review_items WHERE queue_id = 'l1' AND disagreement = 0",
    ))  # fmt: skip
    # Ana calls every answer good: she agrees with the desirable labels only.
    while item := service.next_item(settings, queue_id="l1", reviewer_id=ANA):
        review = ReviewCreate(item_id=item.item_id, verdict="good", scores=answer_scores())  # type: ignore[arg-type]
        service.submit_review(settings, queue_id="l1", review=review, reviewer_id=ANA)
    expected: dict[str, list[int]] = {}
    for response, names in signals.items():
        for name in names:
            agree_n = expected.setdefault(name, [0, 0])
            agree_n[0] += int(labels[response])
            agree_n[1] += 1
    found = service.calibration(settings, queue_id="l1")
    assert {p.name: [p.agree, p.n] for p in found.signals} == expected
    # The same in signal_calibration, in SQL.
    rows = query(
        settings.data_dir,
        "SELECT signal, agree, n FROM signal_calibration WHERE explicit = 'review'",
    )
    assert {signal: [agree, n] for signal, agree, n in rows} == expected


def test_erasing_the_user_removes_their_label_items_and_reviews(settings: Settings) -> None:
    service.create_queue(settings, queue_id="l1", seed=3, per_stratum=50, kind="label")
    while item := service.next_item(settings, queue_id="l1", reviewer_id=BO):
        review = ReviewCreate(item_id=item.item_id, verdict="bad", scores=answer_scores())  # type: ignore[arg-type]
        service.submit_review(settings, queue_id="l1", review=review, reviewer_id=BO)
    before = query(settings.data_dir, "SELECT count(*) FROM reviews WHERE conversation_id = 'c9'")
    assert before[0][0] >= 1
    erase_users(settings, [ERASED], KEYRING)
    for table in ("review_items", "reviews"):
        assert query(
            settings.data_dir, f"SELECT count(*) FROM {table} WHERE conversation_id = 'c9'"
        ) == [(0,)]
    assert query(settings.data_dir, "SELECT count(*) FROM reviews")[0][0] > 0
