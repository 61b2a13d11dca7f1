"""Review queues on a real warehouse: sampled and recorded, the next item without its signals
and in a per-reviewer order, verdicts mapped back to the pair, once per reviewer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.errors import NotFoundError, ReviewConflictError, ReviewInputError
from flywheel.settings import Settings
from review import service
from review.queues import ReviewCreate, left_side
from tests.helpers.lake import query
from tests.helpers.review import KEYRING, build_warehouse, review_settings, scores

ANA = "ana@example.com"
BO = "bo@example.com"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    data_dir = tmp_path / "data"
    build_warehouse(data_dir)
    return review_settings(data_dir)


def answer(settings: Settings, queue: str, reviewer: str, verdict: str = "left",
           left: int = 4, right: int = 2) -> str:  # fmt: skip
    """Fetch the reviewer's next item and answer it; its id."""
    item = service.next_item(settings, queue_id=queue, reviewer_id=reviewer)
    assert item is not None
    review = ReviewCreate(item_id=item.item_id, verdict=verdict, scores=scores(left, right))  # type: ignore[arg-type]
    service.submit_review(settings, queue_id=queue, review=review, reviewer_id=reviewer)
    return item.item_id


def test_a_queue_records_its_sampling(settings: Settings) -> None:
    queue = service.create_queue(settings, queue_id="week-1", seed=42, per_stratum=2)
    strata = {s.stratum: (s.population, s.sampled) for s in queue.strata}
    assert strata == {
        "ab_choice/high/unanimous": (2, 2),
        "copy/mid/unanimous": (4, 2),
        "multiple/low/contested": (1, 1),
    }
    assert (queue.seed, queue.per_stratum, queue.candidates, queue.items) == (42, 2, 7, 5)
    assert (queue.items_done, queue.reviews) == (0, 0)
    assert [q.queue_id for q in service.list_queues(settings)] == ["week-1"]
    assert service.show_queue(settings, queue_id="week-1") == queue
    [(params,)] = query(settings.data_dir, "SELECT params FROM review_queues")
    assert json.loads(params)["strata"][1] == {
        "stratum": "copy/mid/unanimous", "population": 4, "sampled": 2
    }  # fmt: skip


def test_the_same_seed_samples_the_same_pairs_in_the_same_order(settings: Settings) -> None:
    for name in ("one", "two"):
        service.create_queue(settings, queue_id=name, seed=7, per_stratum=2)
    service.create_queue(settings, queue_id="other", seed=8, per_stratum=1)
    drawn = {
        name: query(settings.data_dir, "SELECT pair_id FROM review_items WHERE queue_id = "
                    f"'{name}' ORDER BY position")
        for name in ("one", "two", "other")
    }  # fmt: skip
    assert drawn["one"] == drawn["two"]
    assert len(drawn["other"]) == 3


def test_bad_queue_requests_are_refused_naming_the_field(settings: Settings) -> None:
    with pytest.raises(ReviewInputError, match="queue_id") as caught:
        service.create_queue(settings, queue_id="Week 1", seed=1, per_stratum=1)
    assert caught.value.errors[0]["path"] == "queue_id"
    with pytest.raises(ReviewInputError, match="per_stratum"):
        service.create_queue(settings, queue_id="w", seed=1, per_stratum=0)
    with pytest.raises(ReviewInputError, match="overlap"):
        service.create_queue(settings, queue_id="w", seed=1, per_stratum=1, overlap=2)
    with pytest.raises(ReviewInputError, match=r"strata\[1\]"):
        service.create_queue(settings, queue_id="w", seed=1, per_stratum=1,
                             strata=["copy/mid/unanimous", "copy-mid"])  # fmt: skip
    service.create_queue(settings, queue_id="w", seed=1, per_stratum=1)
    with pytest.raises(ReviewConflictError, match="exists"):
        service.create_queue(settings, queue_id="w", seed=2, per_stratum=1)
    with pytest.raises(NotFoundError):
        service.show_queue(settings, queue_id="nope")
    with pytest.raises(ReviewInputError, match="kind"):
        service.create_queue(settings, queue_id="k", seed=1, per_stratum=1, kind="pairs")


@pytest.mark.parametrize("strata", [[], ["zzz/low/unanimous"]], ids=["none", "absent"])
def test_strata_that_draw_nothing_are_refused_and_the_name_stays_free(
    settings: Settings, strata: list[str]
) -> None:
    with pytest.raises(ReviewInputError, match="strata") as caught:
        service.create_queue(settings, queue_id="w", seed=1, per_stratum=1, strata=strata)
    assert caught.value.errors[0]["path"] == "strata"
    if strata:  # the message lists the strata there are
        assert "copy/mid/unanimous" in str(caught.value)
    assert service.list_queues(settings) == []


def test_a_warehouse_without_pairs_says_to_run_the_transforms(tmp_path: Path) -> None:
    settings = review_settings(tmp_path / "empty")
    with pytest.raises(NotFoundError, match="flywheel transform run"):
        service.create_queue(settings, queue_id="w", seed=1, per_stratum=1)


def test_the_next_item_shows_texts_only_in_the_reviewers_order(settings: Settings) -> None:
    service.create_queue(settings, queue_id="q", seed=3, per_stratum=5)
    item = service.next_item(settings, queue_id="q", reviewer_id=ANA)
    assert item is not None
    shown = item.model_dump()
    assert set(shown) == {"queue_id", "item_id", "kind", "prompt", "left", "right", "answer",
                          "remaining"}  # fmt: skip
    assert set(shown["left"]) == {"text"}  # no signal, id, confidence or stratum
    assert item.remaining == 7
    [(pair, chosen, conversation)] = query(
        settings.data_dir,
        "SELECT i.pair_id, p.chosen_response_id, p.conversation_id FROM review_items AS i "
        f"JOIN preference_pairs AS p USING (pair_id) WHERE i.item_id = '{item.item_id}'",
    )
    number = conversation.removeprefix("c")
    assert [m.model_dump() for m in item.prompt] == [
        {"role": "user", "content": f"question {number}"}
    ]
    side = left_side(3, item.item_id, KEYRING.pseudonym(ANA))
    texts = {"chosen": f"answer {chosen}", "rejected": f"answer {chosen[:-1]}b"}
    assert item.left.text == texts[side]
    assert item.right.text == texts["rejected" if side == "chosen" else "chosen"]
    # The same on every fetch.
    assert service.next_item(settings, queue_id="q", reviewer_id=ANA) == item


def test_the_order_differs_between_reviewers_and_is_recorded(settings: Settings) -> None:
    service.create_queue(settings, queue_id="q", seed=3, per_stratum=5)
    sides = {
        reviewer: [left_side(3, item, KEYRING.pseudonym(reviewer)) for (item,) in query(
            settings.data_dir, "SELECT item_id FROM review_items ORDER BY position")]
        for reviewer in (ANA, BO)
    }  # fmt: skip
    assert sides[ANA] != sides[BO]
    assert set(sides[ANA]) == {"chosen", "rejected"}
    answer(settings, "q", ANA, "left")
    [(left, verdict)] = query(settings.data_dir, "SELECT left_side, verdict FROM reviews")
    assert left == sides[ANA][0] and verdict == left  # "left" is the side shown on the left


@pytest.mark.parametrize(("given", "stored"), [("tie", "tie"), ("both_bad", "both_bad")])
def test_tie_and_both_bad_are_stored_as_they_are(settings: Settings, given: str,
                                                  stored: str) -> None:  # fmt: skip
    service.create_queue(settings, queue_id="q", seed=3, per_stratum=5)
    answer(settings, "q", ANA, given)
    assert query(settings.data_dir, "SELECT verdict FROM reviews") == [(stored,)]


def test_scores_are_stored_by_the_pairs_sides(settings: Settings) -> None:
    service.create_queue(settings, queue_id="q", seed=3, per_stratum=5)
    answer(settings, "q", ANA, "right", left=5, right=1)
    [(left, verdict, chosen, rejected)] = query(
        settings.data_dir, "SELECT left_side, verdict, chosen_scores, rejected_scores FROM reviews"
    )
    right = "rejected" if left == "chosen" else "chosen"
    assert verdict == right
    by_side = {left: json.loads(chosen if left == "chosen" else rejected),
               right: json.loads(chosen if right == "chosen" else rejected)}  # fmt: skip
    assert set(by_side[left].values()) == {5} and set(by_side[right].values()) == {1}


def test_no_raw_reviewer_id_is_stored(settings: Settings) -> None:
    service.create_queue(settings, queue_id="q", seed=3, per_stratum=5)
    answer(settings, "q", ANA)
    [(pseudonym, version)] = query(
        settings.data_dir, "SELECT reviewer_pseudonym, reviewer_key_version FROM reviews"
    )
    assert (pseudonym, version) == (KEYRING.pseudonym(ANA), 1)
    assert b"ana@example.com" not in (settings.data_dir / "warehouse.duckdb").read_bytes()


def test_each_reviewer_reviews_an_item_once_and_items_want_their_reviews(
    settings: Settings,
) -> None:
    queue = service.create_queue(settings, queue_id="q", seed=3, per_stratum=5, overlap=1.0)
    assert queue.items == 7
    first = answer(settings, "q", ANA)
    review = ReviewCreate(item_id=first, verdict="left", scores=scores())  # type: ignore[arg-type]
    with pytest.raises(ReviewConflictError, match="already reviewed"):
        service.submit_review(settings, queue_id="q", review=review, reviewer_id=ANA)
    # Ana moves on; Bo still gets the first item (overlap 1: every item wants two reviews).
    ana_next = service.next_item(settings, queue_id="q", reviewer_id=ANA)
    bo_next = service.next_item(settings, queue_id="q", reviewer_id=BO)
    assert ana_next is not None and bo_next is not None
    assert ana_next.item_id != first and bo_next.item_id == first
    answer(settings, "q", BO)
    assert service.show_queue(settings, queue_id="q").items_done == 1
    for _ in range(6):
        answer(settings, "q", ANA)
    assert service.next_item(settings, queue_id="q", reviewer_id=ANA) is None


def test_without_overlap_an_item_reviewed_once_is_done(settings: Settings) -> None:
    service.create_queue(settings, queue_id="q", seed=3, per_stratum=5)
    first = answer(settings, "q", ANA)
    bo_next = service.next_item(settings, queue_id="q", reviewer_id=BO)
    assert bo_next is not None and bo_next.item_id != first
    # Posting the done item's id anyway is refused: the overlap decides what two people judge.
    review = ReviewCreate(item_id=first, verdict="tie", scores=scores())  # type: ignore[arg-type]
    with pytest.raises(ReviewConflictError, match="every review it wants"):
        service.submit_review(settings, queue_id="q", review=review, reviewer_id=BO)
    assert service.calibration(settings).reviews == 1


def test_invalid_reviews_name_every_bad_field(settings: Settings) -> None:
    service.create_queue(settings, queue_id="q", seed=3, per_stratum=5)
    item = service.next_item(settings, queue_id="q", reviewer_id=ANA)
    assert item is not None
    bad = scores()
    bad["left"]["security"] = 9
    del bad["right"]["efficiency"]
    bad["right"]["style"] = 3
    review = ReviewCreate(item_id=item.item_id, verdict="left", scores=bad)  # type: ignore[arg-type]
    with pytest.raises(ReviewInputError) as caught:
        service.submit_review(settings, queue_id="q", review=review, reviewer_id=ANA)
    assert "\n" not in str(caught.value)
    assert [(e["path"], e["type"]) for e in caught.value.errors] == [
        ("scores.left.security", "out_of_scale"),
        ("scores.right.efficiency", "missing"),
        ("scores.right.style", "unknown_dimension"),
    ]
    missing = ReviewCreate(item_id="nope", verdict="tie", scores=scores())  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="no item nope"):
        service.submit_review(settings, queue_id="q", review=missing, reviewer_id=ANA)
    with pytest.raises(NotFoundError, match="no review queue"):
        service.next_item(settings, queue_id="nope", reviewer_id=ANA)
    assert query(settings.data_dir, "SELECT count(*) FROM reviews") == [(0,)]


def test_items_whose_texts_left_the_lake_are_passed_over_in_one_read(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    import warehouse.texts

    service.create_queue(settings, queue_id="q", seed=3, per_stratum=5)
    items = query(settings.data_dir, "SELECT item_id, chosen_event_id FROM review_items "
                  "WHERE queue_id = 'q' ORDER BY position")  # fmt: skip
    # The first three items' chosen answers are gone (as lake retention leaves them).
    with duckdb.connect(str(settings.data_dir / "warehouse.duckdb")) as db:
        db.execute("UPDATE events SET source_offset = -1 WHERE event_id IN (SELECT unnest($ids))",
                   {"ids": [event for _, event in items[:3]]})  # fmt: skip
    reads = []
    real = warehouse.texts.fetch_texts
    monkeypatch.setattr(warehouse.texts, "fetch_texts",
                        lambda *a, **k: reads.append(1) or real(*a, **k))  # fmt: skip
    item = service.next_item(settings, queue_id="q", reviewer_id=ANA)
    assert item is not None and item.item_id == items[3][0]
    assert item.remaining == len(items) - 3
    assert len(reads) == 1


def test_a_body_of_many_unknown_dimensions_gets_a_short_answer(settings: Settings) -> None:
    service.create_queue(settings, queue_id="q", seed=3, per_stratum=5)
    item = service.next_item(settings, queue_id="q", reviewer_id=ANA)
    assert item is not None
    many = scores()
    many["left"] |= {f"d{i}": 3 for i in range(5000)}
    review = ReviewCreate(item_id=item.item_id, verdict="left", scores=many)  # type: ignore[arg-type]
    with pytest.raises(ReviewInputError) as refused:
        service.submit_review(settings, queue_id="q", review=review, reviewer_id=ANA)
    assert len(refused.value.errors) == 11
    assert "4990 more" in str(refused.value.errors[-1]["message"])
