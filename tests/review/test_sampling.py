"""Stratified, reproducible sampling: strata by signal, confidence band and agreement; the same
seed draws the same items in any input order; every stratum is represented."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from review.sampling import Candidate, band, draw, stratum


def pair(pair_id: str, signals: tuple[str, ...] = ("copy",), confidence: float = 0.9,
         disagreement: float = 0.0) -> Candidate:  # fmt: skip
    return Candidate(
        pair_id=pair_id, conversation_id=f"c-{pair_id}", prompt_event_id=f"g-{pair_id}",
        chosen_event_id=f"g-{pair_id}", rejected_event_id=f"h-{pair_id}",
        chosen_response_id=f"r-{pair_id}", rejected_response_id=f"s-{pair_id}",
        signals=signals, confidence=confidence, disagreement=disagreement,
    )  # fmt: skip


def population() -> list[Candidate]:
    """100 unanimous copy pairs of high confidence, 10 contested A/B pairs of low confidence,
    5 pairs of several signals of middling confidence."""
    return (
        [pair(f"copy-{i}") for i in range(100)]
        + [pair(f"ab-{i}", ("ab_choice",), 0.2, 0.4) for i in range(10)]
        + [pair(f"multi-{i}", ("copy", "rating"), 0.5) for i in range(5)]
    )


def test_strata_name_signal_band_and_agreement() -> None:
    assert stratum(pair("a")) == "copy/high/unanimous"
    assert stratum(pair("b", ("ab_choice",), 0.2, 0.4)) == "ab_choice/low/contested"
    assert stratum(pair("c", ("copy", "rating"), 0.5)) == "multiple/mid/unanimous"
    assert [band(c) for c in (0.0, 0.333, 1 / 3, 0.66, 2 / 3, 1.0)] == [
        "low", "low", "mid", "mid", "high", "high"
    ]  # fmt: skip


def test_every_stratum_gets_the_same_share_and_the_counts_are_recorded() -> None:
    sample = draw(population(), seed=7, per_stratum=8)
    counts = {s.stratum: (s.population, s.sampled) for s in sample.strata}
    assert counts == {
        "ab_choice/low/contested": (10, 8),
        "copy/high/unanimous": (100, 8),
        "multiple/mid/unanimous": (5, 5),
    }
    assert len(sample.items) == 21
    assert [i.position for i in sample.items] == list(range(21))
    # Interleaved: the first three items cover the three strata.
    assert {i.stratum for i in sample.items[:3]} == set(counts)


def test_the_same_seed_draws_the_same_items_in_any_input_order() -> None:
    candidates = population()
    first = draw(candidates, seed=11, per_stratum=6)
    shuffled = list(candidates)
    random.Random(3).shuffle(shuffled)
    again = draw(shuffled, seed=11, per_stratum=6)
    assert [(i.candidate.pair_id, i.position) for i in again.items] == [
        (i.candidate.pair_id, i.position) for i in first.items
    ]
    other = draw(candidates, seed=12, per_stratum=6)
    assert {i.candidate.pair_id for i in other.items} != {i.candidate.pair_id for i in first.items}


def test_a_larger_sample_extends_the_smaller_one() -> None:
    small = {i.candidate.pair_id for i in draw(population(), seed=5, per_stratum=3).items}
    large = {i.candidate.pair_id for i in draw(population(), seed=5, per_stratum=6).items}
    assert small < large


def test_only_the_strata_asked_for() -> None:
    sample = draw(population(), seed=1, per_stratum=4, strata=["ab_choice/low/contested"])
    assert {i.stratum for i in sample.items} == {"ab_choice/low/contested"}
    assert {s.stratum: s.sampled for s in sample.strata}["copy/high/unanimous"] == 0


def test_overlap_asks_two_reviews_of_a_seeded_share() -> None:
    items = draw(population(), seed=2, per_stratum=100, overlap=0.25).items
    twice = [i for i in items if i.wanted_reviews == 2]
    assert 0.15 < len(twice) / len(items) < 0.35
    assert {i.wanted_reviews for i in draw(population(), seed=2, per_stratum=100).items} == {1}
    again = draw(population(), seed=2, per_stratum=100, overlap=0.25).items
    assert [i.wanted_reviews for i in again] == [i.wanted_reviews for i in items]


@pytest.mark.parametrize(("per_stratum", "overlap"), [(0, 0.0), (1, 1.5), (1, -0.1)])
def test_bad_parameters_are_refused(per_stratum: int, overlap: float) -> None:
    with pytest.raises(ValueError):
        draw(population(), seed=1, per_stratum=per_stratum, overlap=overlap)


@given(
    st.lists(st.tuples(st.sampled_from(["copy", "rating", "edit"]),
                       st.floats(0, 1), st.sampled_from([0.0, 0.25])),
             max_size=40),
    st.integers(0, 2**32),
    st.integers(1, 5),
)  # fmt: skip
def test_any_population_gives_min_of_its_size_and_the_share_per_stratum(
    rows: list[tuple[str, float, float]], seed: int, per_stratum: int
) -> None:
    candidates = [pair(f"p{i}", (s,), c, d) for i, (s, c, d) in enumerate(rows)]
    sample = draw(candidates, seed=seed, per_stratum=per_stratum)
    for count in sample.strata:
        assert count.sampled == min(count.population, per_stratum)
    assert sum(c.population for c in sample.strata) == len(candidates)
    assert len({i.candidate.pair_id for i in sample.items}) == len(sample.items)
