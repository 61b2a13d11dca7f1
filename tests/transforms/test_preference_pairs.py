"""preference_pairs on hand-written event sequences: each rule alone, chains, conflicts, edits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import generation, make_event
from tests.helpers.lake import ALL_TEXTS, land, query
from transforms.edits import change, edit_changes, is_real, words
from transforms.models import define_functions
from transforms.runner import run_transforms
from warehouse.lake import Lake


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


WORD_CHARACTERS = st.characters(categories=["Lu", "Ll", "Nd"])
SEPARATORS = st.sampled_from(
    [" ", "\t", "\n", "\u00a0", "\u2009", "\u202f", "\u3000", "\u200b", "\u00ad", "\u2014",
     "\u2013", "\u2019", "\u201c", "\u00bb", "\u3002", "\u00bf", ",", ".", "!", "_", "-", "*",
     "(", "#"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(WORD_CHARACTERS, max_size=6), st.text(SEPARATORS, max_size=3)),
                max_size=8),
       st.lists(st.text(SEPARATORS, max_size=3), min_size=9, max_size=9))  # fmt: skip
def test_whitespace_and_punctuation_of_any_script_never_make_a_real_edit(
    parts: list[tuple[str, str]], others: list[str]
) -> None:
    """Any whitespace, punctuation or invisible character in Unicode (non-breaking and thin
    spaces, dashes, curly quotes, a zero-width space), added, removed or swapped between the
    same letters and digits, leaves an edit not real."""
    original = "".join(word + separator for word, separator in parts)
    edited = "".join(word + other for (word, _), other in zip(parts, others, strict=False))
    assert not is_real(words(original), words(edited))


@pytest.mark.parametrize(
    ("original", "edited", "real"),
    [
        ("Use a list \u2014 it is fast.", "Use a list, it is fast.", False),  # em dash removed
        ("Use a list\u2014it is fast.", "Use a list it is fast.", False),
        ("Use a list, it is fast.", "Use\u00a0a\u00a0list, it\u00a0is fast.", False),  # NBSP
        ("Use a list.", "USE A LIST.", False),  # case only
        ("\uff35se a list.", "Use a list.", False),  # a full-width letter is the same letter
        ("Stra\u00dfe", "STRASSE", False),  # case folding
        ("caf\u00e9", "cafe\u0301", False),  # composed or not, the same letter
        ("Use a list.", "Use a tuple.", True),
        ("\u0418\u0441\u043f\u043e\u043b\u044c\u0437\u0443\u0439 list",
         "\u0418\u0441\u043f\u043e\u043b\u044c\u0437\u0443\u0439 tuple", True),
        ("x = 1", "x = 2", True),
    ],
)  # fmt: skip
def test_a_real_edit_changes_letters_or_digits(original: str, edited: str, real: bool) -> None:
    assert is_real(words(original), words(edited)) is real


@pytest.mark.parametrize(
    ("original", "edited", "expected"),
    [
        ("a b c", "a b c", 0.0),
        ("a b c", "a b d", 0.5),  # 2 words in common of 4
        ("A, b!", "a b", 0.0),  # case and punctuation are not words
        ("a a a b", "a b", 0.0),  # sets: repeats count once
        ("a b", "c d", 1.0),
        ("a\u2014b c", "a b c", 0.0),  # an em dash separates words like a space
        ("a\u00a0b", "a b", 0.0),
        ("\u0434\u0430 b", "\u043d\u0435\u0442 b", 2 / 3),  # words of any script
        ("", "...", 1.0),  # no words at all: nothing in common
    ],
)
def test_change_is_one_minus_the_jaccard_similarity_of_the_word_sets(
    original: str, edited: str, expected: float
) -> None:
    assert change(words(original), words(edited)) == pytest.approx(expected)


def test_an_edit_whose_text_is_missing_is_left_out_not_a_crash() -> None:
    """Texts come from lake files, which only the ingest workers write; a text missing anyway
    (NULL) leaves its edit out of ``edit_changes`` instead of failing the run."""
    with duckdb.connect() as db:
        define_functions(db)
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


def test_siblings_each_rated_up_and_down_make_no_pair(tmp_path: Path) -> None:
    ratings = [make_event("rating", response_id=r, value=v) for r in ("ra", "rb")
               for v in ("up", "down")]  # fmt: skip
    assert pairs(tmp_path, [generation("ra"), generation("rb"), *ratings]) == []


SIDE = st.fixed_dictionaries(
    {
        "copies": st.integers(0, 2),
        "up": st.integers(0, 2),
        "down": st.integers(0, 2),
        "regenerated": st.booleans(),
        "continued": st.booleans(),
    }
)
CHOICES = st.lists(st.tuples(st.booleans(), st.sampled_from(["a", "b", "tie", "both_bad"])),
                   max_size=3)  # fmt: skip


def sibling_events(
    conversation: str,
    ids: dict[str, str],
    signals: dict[str, dict[str, Any]],
    choices: list[tuple[bool, str]],
) -> list[dict[str, Any]]:
    """Two siblings (roles x and y, under the ids given) with the signals of each role and A/B
    choices (x shown as a, or not)."""
    events = []
    for role, response in ids.items():
        mix = signals[role]
        events.append(generation(response, conversation_id=conversation))
        for _ in range(mix["copies"]):
            events.append(make_event("copy", response_id=response, text="x",
                                     conversation_id=conversation))  # fmt: skip
        for value in ("up", "down"):
            for _ in range(mix[value]):
                events.append(make_event("rating", response_id=response, value=value,
                                         conversation_id=conversation))  # fmt: skip
        if mix["regenerated"]:
            events.append(make_event("regenerate", response_id=response,
                                     conversation_id=conversation))  # fmt: skip
        if mix["continued"]:
            events.append(generation(
                f"{response}-next", f"{response}-m2", conversation_id=conversation,
                prompt=[{"role": "user", "content": "q"},
                        {"role": "assistant", "content": "a", "response_id": response},
                        {"role": "user", "content": "more"}]))  # fmt: skip
    for x_first, choice in choices:
        a, b = (ids["x"], ids["y"]) if x_first else (ids["y"], ids["x"])
        events.append(make_event("ab_choice", response_a_id=a, response_b_id=b, choice=choice,
                                 conversation_id=conversation))  # fmt: skip
    return events


def mirrored(choices: list[tuple[bool, str]]) -> list[tuple[bool, str]]:
    """Each choice and the same choice with the sides swapped: as much for y as for x."""
    return [*choices, *((not x_first, choice) for x_first, choice in choices)]


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(SIDE, SIDE, CHOICES)
def test_swapping_two_siblings_ids_swaps_their_pair_and_even_evidence_makes_none(
    tmp_path_factory: pytest.TempPathFactory,
    x: dict[str, Any],
    y: dict[str, Any],
    choices: list[tuple[bool, str]],
) -> None:
    """The same signals on two siblings give the same verdict on the roles whichever id sorts
    first (c1: x's id sorts first, c2: y's does), and the same signals on both sides (c3, with
    every A/B choice also made the other way round) give no pair."""
    tmp_path = tmp_path_factory.mktemp("swap")
    ids = {"c1": {"x": "c1-a", "y": "c1-b"}, "c2": {"x": "c2-b", "y": "c2-a"},
           "c3": {"x": "c3-a", "y": "c3-b"}}  # fmt: skip
    events = [
        *sibling_events("c1", ids["c1"], {"x": x, "y": y}, choices),
        *sibling_events("c2", ids["c2"], {"x": x, "y": y}, choices),
        *sibling_events("c3", ids["c3"], {"x": x, "y": x}, mirrored(choices)),
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    found = query(
        tmp_path,
        "SELECT conversation_id, chosen_response_id, rejected_response_id, confidence "
        "FROM preference_pairs WHERE chosen_response_id NOT LIKE '%-next' "
        "AND rejected_response_id NOT LIKE '%-next'",
    )
    roles = {
        conversation: {(role[chosen], role[rejected], confidence)
                       for c, chosen, rejected, confidence in found if c == conversation}
        for conversation, role in
        ((c, {response: name for name, response in ids[c].items()}) for c in ids)
    }  # fmt: skip
    assert roles["c1"] == roles["c2"]
    assert roles["c3"] == set()
    if x == y and sorted(choices) == sorted(mirrored(choices)[len(choices) :]):
        assert roles["c1"] == set()


def ab_pairs_and_unpaired(
    tmp_path: Path, events: list[dict[str, Any]]
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    return (
        query(tmp_path, "SELECT chosen_response_id, rejected_response_id FROM preference_pairs"),
        query(
            tmp_path,
            "SELECT response_a_id, response_b_id, reason FROM unpaired_ab_choices ORDER BY ALL",
        ),  # fmt: skip
    )


def test_an_ab_choice_between_answers_to_different_messages_is_listed_not_paired(
    tmp_path: Path,
) -> None:
    events = [
        generation("ra", "m1"),
        generation("rb", "m2"),  # same conversation, another message
        generation("rc", "m1", conversation_id="conv-2"),  # another conversation
        make_event("ab_choice", response_a_id="ra", response_b_id="rb", choice="a"),
        make_event("ab_choice", response_a_id="rc", response_b_id="ra", choice="b"),
        make_event("ab_choice", response_a_id="ra", response_b_id="nowhere", choice="a"),
    ]
    found, unpaired = ab_pairs_and_unpaired(tmp_path, events)
    assert found == []
    assert unpaired == [
        ("ra", "nowhere", "side_unknown"),
        ("ra", "rb", "not_siblings"),
        ("rc", "ra", "not_siblings"),
    ]


def test_an_ab_choice_between_siblings_is_paired_not_listed(tmp_path: Path) -> None:
    ab = make_event("ab_choice", response_a_id="ra", response_b_id="rb", choice="b")
    events = [generation("ra"), generation("rb"), ab]
    assert ab_pairs_and_unpaired(tmp_path, events) == ([("rb", "ra")], [])
