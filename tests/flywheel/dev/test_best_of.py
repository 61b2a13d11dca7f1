"""Best-of-n serving in the simulator, and the hidden win rate that measures a policy: a reranker
sees candidate texts only, picks what users then react to, and is judged by the hidden quality
it never saw."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flywheel.dev.simulator import SimulationConfig, hidden_quality, hidden_win_rate, simulate


def _length(texts: Sequence[str]) -> list[float]:
    return [float(len(t)) for t in texts]


def _shortness(texts: Sequence[str]) -> list[float]:
    return [-float(len(t)) for t in texts]


def _run(config: SimulationConfig) -> tuple[list[dict[str, Any]], dict[str, float]]:
    simulation = simulate(config)
    events = list(simulation)
    return events, hidden_quality(simulation.truth)


def test_without_a_reranker_best_of_changes_nothing() -> None:
    plain, _ = _run(SimulationConfig(events=600, seed=3))
    assert _run(SimulationConfig(events=600, seed=3, best_of=4))[0] == plain


def test_the_reranker_sees_candidate_texts_only_and_picks_what_is_served() -> None:
    seen: list[list[Any]] = []

    def reranker(texts: Sequence[str]) -> list[float]:
        seen.append(list(texts))
        return _length(texts)

    events, _ = _run(SimulationConfig(events=800, seed=4, best_of=3, reranker=reranker))
    served = [e["response"] for e in events if e["type"] == "generation"]
    assert seen and all(len(c) == 3 and all(isinstance(t, str) for t in c) for c in seen)
    longest = {max(c, key=len) for c in seen}
    assert set(served) <= longest  # every answer served is the one its reranker scored highest


def test_a_reranker_that_tracks_quality_serves_better_answers() -> None:
    _, plain = _run(SimulationConfig(events=3000, seed=5))
    _, longer = _run(SimulationConfig(events=3000, seed=5, best_of=4, reranker=_length))
    _, shorter = _run(SimulationConfig(events=3000, seed=5, best_of=4, reranker=_shortness))

    def mean(quality: dict[str, float]) -> float:
        return sum(quality.values()) / len(quality)

    # In the simulator, good answers say more (useful sentences) and poor ones pad with filler
    # less than they lose: length tracks quality, so a judge of length serves better answers.
    assert mean(longer) > mean(plain) + 0.05 > mean(shorter) + 0.1


def test_the_hidden_win_rate_of_round_0_against_itself_is_a_coin_flip() -> None:
    wins, n = hidden_win_rate(None, best_of=4, prompts=2000, seed=0)
    assert n == 2000 and 0.46 < wins / n < 0.54


def test_the_hidden_win_rate_follows_the_reranker_and_is_repeatable() -> None:
    longer = hidden_win_rate(_length, best_of=4, prompts=1000, seed=1)
    shorter = hidden_win_rate(_shortness, best_of=4, prompts=1000, seed=1)
    assert longer[0] / 1000 > 0.6 and shorter[0] / 1000 < 0.4
    assert hidden_win_rate(_length, best_of=4, prompts=1000, seed=1) == longer
    # A perfect judge of four iid candidates beats one draw four times in five at most.
    assert longer[0] / 1000 < 0.8 + 0.03
