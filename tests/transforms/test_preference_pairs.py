"""preference_pairs on hand-written event sequences: each rule alone, chains, conflicts, edits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.factories import make_event
from tests.warehouse.test_load import ALL_TEXTS, land, query
from transforms.edits import change, edit_changes, without_space_or_punct, words
from transforms.runner import run_transforms
from warehouse.lake import Lake


def generation(response: str, parent: str = "m1", text: str | None = None, **extra: Any) -> Any:
    return make_event("generation", response_id=response, parent_id=parent,
                      response=text or f"answer {response}", **extra)  # fmt: skip


def pairs(tmp_path: Path, events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    return query(
        tmp_path,
        "SELECT chosen_response_id, rejected_response_id, c.text AS chosen, r.text AS rejected, "
        "confidence, disagreement, signals FROM preference_pairs "
        "JOIN lake_texts AS c ON c.event_id = chosen_event_id "
        "JOIN lake_texts AS r ON r.event_id = rejected_event_id ORDER BY chosen, rejected",
        texts=ALL_TEXTS,
    )


def test_ab_winner_over_loser(tmp_path: Path) -> None:
    ab = make_event("ab_choice", response_a_id="ra", response_b_id="rb", choice="a")
    assert pairs(tmp_path, [generation("ra"), generation("rb"), ab]) == [
        ("ra", "rb", "answer ra", "answer rb", 1.0, 0.0, ["ab_choice"])
    ]


@pytest.mark.parametrize("choice", ["tie", "both_bad"])
def test_tie_and_both_bad_give_no_pair(tmp_path: Path, choice: str) -> None:
    ab = make_event("ab_choice", response_a_id="ra", response_b_id="rb", choice=choice)
    assert pairs(tmp_path, [generation("ra"), generation("rb"), ab]) == []


def test_a_regenerate_chain_loses_to_the_kept_sibling(tmp_path: Path) -> None:
    events = [
        generation("r1"),
        make_event("regenerate", response_id="r1", new_response_id="r2"),
        generation("r2"),
        make_event("regenerate", response_id="r2", new_response_id="r3"),
        generation("r3"),
        make_event("copy", response_id="r3", text="answer"),
    ]
    found = pairs(tmp_path, events)
    assert [(c, r, s) for c, r, *_, s in found] == [
        ("r3", "r1", ["copy", "regenerate"]),
        ("r3", "r2", ["copy", "regenerate"]),
    ]
    assert all(confidence == pytest.approx(0.9) for *_, confidence, _, _ in
               [(row[0], row[4], row[5], row[6]) for row in found])  # fmt: skip


def test_a_copied_sibling_beats_an_uncopied_one(tmp_path: Path) -> None:
    events = [generation("ra"), generation("rb"), make_event("copy", response_id="rb", text="x")]
    assert pairs(tmp_path, events) == [("rb", "ra", "answer rb", "answer ra", 0.5, 0.0, ["copy"])]


def test_an_uprated_sibling_beats_a_downrated_one(tmp_path: Path) -> None:
    events = [
        generation("ra"),
        generation("rb"),
        make_event("rating", response_id="ra", value="up"),
        make_event("rating", response_id="rb", value="down"),
    ]
    assert pairs(tmp_path, events) == [("ra", "rb", "answer ra", "answer rb", 0.8, 0.0, ["rating"])]


def test_a_lone_response_makes_no_pair_from_copies_or_ratings(tmp_path: Path) -> None:
    events = [generation("ra"), make_event("copy", response_id="ra", text="x"),
              make_event("rating", response_id="ra", value="up")]  # fmt: skip
    assert pairs(tmp_path, events) == []


def test_conflicting_evidence_is_a_weighted_vote_with_the_disagreement_kept(tmp_path: Path) -> None:
    events = [
        generation("ra"),
        generation("rb"),
        make_event("ab_choice", response_a_id="ra", response_b_id="rb", choice="a"),
        make_event("copy", response_id="rb", text="answer"),
    ]
    [(chosen, rejected, _, _, confidence, disagreement, signals)] = pairs(tmp_path, events)
    assert (chosen, rejected, signals) == ("ra", "rb", ["ab_choice", "copy"])
    assert disagreement == pytest.approx(0.5 / 1.5, abs=1e-6)
    assert confidence == pytest.approx(0.5 / 1.5, abs=1e-6)


def test_evenly_split_evidence_gives_no_pair(tmp_path: Path) -> None:
    events = [
        generation("ra"),
        generation("rb"),
        make_event("ab_choice", response_a_id="ra", response_b_id="rb", choice="a"),
        make_event("ab_choice", response_a_id="ra", response_b_id="rb", choice="b"),
    ]
    assert pairs(tmp_path, events) == []


def test_a_real_edit_beats_the_original_with_confidence_growing_with_its_size(
    tmp_path: Path,
) -> None:
    original = "Use reversed(xs) to get the items backwards."
    small = "Use reversed(xs) to get the items backwards, lazily."
    large = "Use xs[::-1]: it copies the list, reversed. Or reversed(xs) for an iterator."
    events = [
        generation("r1", "m1", original),
        make_event("edit", response_id="r1", edited_text=small),
        generation("r2", "m2", original),
        make_event("edit", response_id="r2", edited_text=large),
    ]
    found = {row[2]: row for row in pairs(tmp_path, events)}
    assert set(found) == {small, large}
    assert found[small][1] == "r1" and found[small][0] is None
    assert found[small][3] == original
    assert found[small][6] == ["edit"]
    assert 0 < found[small][4] < found[large][4] <= 0.6


@pytest.mark.parametrize(
    "edited",
    [
        "Use reversed(xs)  to get the items backwards",  # whitespace and punctuation only
        "Completely different words everywhere now, nothing of the first answer remains!!",
    ],
    ids=["trivial", "total rewrite"],
)
def test_trivial_edits_and_total_rewrites_give_no_pair(tmp_path: Path, edited: str) -> None:
    events = [
        generation("r1", text="Use reversed(xs) to get the items backwards."),
        make_event("edit", response_id="r1", edited_text=edited),
    ]
    assert pairs(tmp_path, events) == []


def test_lineage_names_the_events_behind_a_pair(tmp_path: Path) -> None:
    ga, gb = generation("ra", model={"id": "small", "version": "2026-09"}), generation("rb")
    ab = make_event("ab_choice", response_a_id="ra", response_b_id="rb", choice="a")
    land(Lake.in_data_dir(tmp_path), [ga, gb, ab])
    run_transforms(tmp_path)
    [(event_ids, models)] = query(tmp_path, "SELECT event_ids, models FROM preference_pairs")
    assert event_ids == sorted([ga["event_id"], gb["event_id"], ab["event_id"]])
    assert sorted(models) == ["chat-small@2026-09", "small@2026-09"]


def pair_lineage(tmp_path: Path, events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    return query(tmp_path, "SELECT chosen_response_id, rejected_response_id, event_ids "
                           "FROM preference_pairs ORDER BY ALL")  # fmt: skip


def test_lineage_names_the_copies_behind_a_copy_vote(tmp_path: Path) -> None:
    ga, gb = generation("ra"), generation("rb")
    copies = [make_event("copy", response_id="rb", text="x") for _ in range(2)]
    assert pair_lineage(tmp_path, [ga, gb, *copies]) == [
        ("rb", "ra", sorted([ga["event_id"], gb["event_id"], *(c["event_id"] for c in copies)]))
    ]


def test_lineage_names_both_sides_ratings_behind_a_rating_vote(tmp_path: Path) -> None:
    ga, gb = generation("ra"), generation("rb")
    up = make_event("rating", response_id="ra", value="up")
    down = make_event("rating", response_id="rb", value="down")
    assert pair_lineage(tmp_path, [ga, gb, up, down]) == [
        ("ra", "rb", sorted(e["event_id"] for e in (ga, gb, up, down)))
    ]


def test_lineage_names_the_regeneration_and_what_kept_the_winner(tmp_path: Path) -> None:
    g1, g2 = generation("r1"), generation("r2")
    regenerate = make_event("regenerate", response_id="r1", new_response_id="r2")
    # r2 is kept because the conversation continued from it.
    later = make_event("generation", response_id="r3", parent_id="m2",
                       prompt=[{"role": "user", "content": "hi"},
                               {"role": "assistant", "content": "answer r2", "response_id": "r2"},
                               {"role": "user", "content": "more"}])  # fmt: skip
    found = pair_lineage(tmp_path, [g1, g2, regenerate, later])
    assert found == [("r2", "r1", sorted(e["event_id"] for e in (g1, g2, regenerate, later)))]


UTF8_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(UTF8_TEXT)
def test_the_trivial_edit_test_deletes_exactly_the_regex_class(text: str) -> None:
    """``without_space_or_punct`` (bytes) removes what ``[\\s[:punct:]]`` matches in DuckDB's
    regular expressions, no more and no less, on any text."""
    with duckdb.connect() as db:
        [(regex,)] = db.execute(
            "SELECT regexp_replace($t, '[\\s[:punct:]]', '', 'g')", {"t": text}
        ).fetchall()
    assert without_space_or_punct(text.encode()) == regex.encode()


@settings(max_examples=300, deadline=None)
@given(UTF8_TEXT)
@example("\u0130stanbul, 5 \u212a")  # the two non-ASCII capitals lower() makes ASCII letters
def test_words_are_what_the_lower_cased_text_splits_into_in_duckdb(text: str) -> None:
    """``words`` (bytes) finds the words DuckDB finds in ``lower(text)`` split on
    ``[^[:alnum:]]+`` (the SQL it replaced), on any text: a multi-byte character never leaves
    part of itself in a word."""
    with duckdb.connect() as db:
        [(found,)] = db.execute(
            "SELECT regexp_split_to_array(lower($t), '[^[:alnum:]]+')", {"t": text}
        ).fetchall()
    assert words(text.encode()) == {word.encode() for word in found if word}


@pytest.mark.parametrize(
    ("original", "edited", "expected"),
    [
        ("a b c", "a b c", 0.0),
        ("a b c", "a b d", 0.5),  # 2 words in common of 4
        ("A, b!", "a b", 0.0),  # case and punctuation are not words
        ("a a a b", "a b", 0.0),  # sets: repeats count once
        ("a b", "c d", 1.0),
        ("\u0130stanbul", "Istanbul", 0.0),  # lower() makes the dotted capital an i
        ("", "...", 1.0),  # no words at all: nothing in common
    ],
)
def test_change_is_one_minus_the_jaccard_similarity_of_the_word_sets(
    original: str, edited: str, expected: float
) -> None:
    assert change(original.encode(), edited.encode()) == pytest.approx(expected)


def test_an_edit_whose_text_is_missing_is_left_out_not_a_crash() -> None:
    """Texts come from lake files, which only the ingest workers write; a text missing anyway
    (NULL) leaves its edit out of ``edit_changes`` instead of failing the run."""
    with duckdb.connect() as db:
        db.execute(
            "CREATE TABLE events AS SELECT * FROM (VALUES "
            "('g1', 'generation', 'r1', TIMESTAMPTZ '2026-01-01 10:00:00+00'), "
            "('e1', 'edit', 'r1', TIMESTAMPTZ '2026-01-01 10:01:00+00'), "
            "('e2', 'edit', 'r1', TIMESTAMPTZ '2026-01-01 10:02:00+00')) "
            "AS t(event_id, type, response_id, occurred_at)"
        )
        db.execute("CREATE TABLE responses AS SELECT 'r1' AS response_id, 'g1' AS event_id")
        db.execute(
            "CREATE TABLE lake_texts AS SELECT * FROM (VALUES ('g1', 'Use sorted(xs).'), "
            "('e1', NULL), ('e2', 'Use sorted(xs), a copy.')) AS t(event_id, text)"
        )
        inputs = {name: name for name in ("events", "responses", "lake_texts")}
        select, parameters = edit_changes(db, inputs)
        rows = db.execute(f"SELECT edit_event_id, real_edit FROM ({select})", parameters)
        assert rows.fetchall() == [("e2", True)]
