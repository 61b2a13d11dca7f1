"""The light reward model: it learns a preference that holds on pairs it never saw, and the
measure can fail (swapped pairs score below chance)."""

from __future__ import annotations

import random

import numpy as np
from scipy.special import expit

from evaluate.bradley_terry import DIMENSIONS, Encoded, features, fit
from evaluate.utility import Pair, accuracy, evaluate_pairs

GOOD = ["clear", "tested", "example", "explains", "correct", "handles", "edge", "cases"]
BAD = ["maybe", "depends", "unsure", "filler", "vague", "sorry", "generic", "anyway"]
NEUTRAL = ["the", "function", "returns", "list", "value", "python", "data", "file", "user"]


def answer(rng: random.Random, good: bool) -> str:
    words = rng.sample(NEUTRAL, 5) + rng.sample(GOOD if good else BAD, 2)
    rng.shuffle(words)
    return " ".join(words)


def pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(answer(rng, True), answer(rng, False)) for _ in range(n)]


def test_features_are_sparse_signed_and_carry_the_shape() -> None:
    found = features("Hello world\n```python\nprint(1)\n```")
    assert found[DIMENSIONS + 2] == 1.0  # a code fence
    assert found[DIMENSIONS + 1] > 0  # lines
    assert all(0 <= c < DIMENSIONS + 3 for c in found)
    assert features("same text") == features("same text")


def test_a_text_has_the_same_features_alone_or_among_others() -> None:
    texts = ["alpha beta", "gamma delta gamma delta", "", "beta\n```\nalpha\n```"]
    encoded = Encoded(texts)
    for text in texts:
        row = encoded.matrix[encoded.rows[text]]
        # No word pair spans two texts ("beta gamma" would be one here).
        assert {int(c): float(v) for c, v in zip(row.indices, row.data, strict=True)} == (
            features(text)
        )
    assert features("gamma delta gamma delta") != features("gamma delta")  # counts, dampened


def test_the_fit_solves_the_problem_over_every_column() -> None:
    train = pairs(200, seed=8)
    model = fit(train)
    # Words no pair holds keep no weight; the rest is where the loss over all columns is flat.
    assert all(model.weights[c] == 0 for c in features("unheard of words"))
    x = Encoded().differences(train)
    gradient = -(x.T @ expit(-(x @ model.weights))) / len(train) + model.weights / len(train)
    assert gradient.shape == (DIMENSIONS + 3,)
    assert np.abs(gradient).max() < 1e-4
    assert not fit([("same words", "same words")]).weights.any()


def test_a_learned_preference_holds_on_new_pairs_and_swapped_pairs_fail() -> None:
    model = fit(pairs(200, seed=1))
    held_out = pairs(300, seed=2)
    right = accuracy(model, "test", held_out)
    assert right.accuracy is not None and right.accuracy > 0.9
    assert right.wilson_low is not None and right.wilson_low > 0.5
    # Trained on the same pairs with chosen and rejected swapped: below chance.
    swapped = fit([(b, a) for a, b in pairs(200, seed=1)])
    wrong = accuracy(swapped, "test", held_out)
    assert wrong.accuracy is not None and wrong.accuracy < 0.5
    assert wrong.wilson_high is not None and wrong.wilson_high < 0.5


def test_identical_sides_count_half_and_no_pairs_no_accuracy() -> None:
    model = fit(pairs(50, seed=3))
    tied = accuracy(model, "test", [("same words", "same words")] * 10)
    assert tied.accuracy == 0.5 and tied.pairs == 10
    empty = accuracy(model, "test", [])
    assert (empty.pairs, empty.accuracy, empty.wilson_low) == (0, None, None)


def test_the_evaluation_measures_ab_choices_apart_and_ablates_each_signal() -> None:
    rng = random.Random(4)
    train = [Pair("q", a, b, ("copy",)) for a, b in pairs(150, seed=5)]
    # Pairs an edit made teach the opposite here: without them the model does better.
    train += [Pair("q", b, a, ("edit",)) for a, b in pairs(60, seed=6)]
    test = [Pair("q", a, b, ("ab_choice",) if rng.random() < 0.5 else ("copy",))
            for a, b in pairs(200, seed=7)]  # fmt: skip
    found = evaluate_pairs({"train": train, "test": test})
    by_name = {a.name: a for a in found.accuracies}
    assert found.train_pairs == 210
    assert by_name["test"].pairs == 200
    assert 0 < by_name["ab_choice"].pairs < 200
    assert "ground_truth" not in by_name
    ablations = {a.signal: a for a in found.ablations}
    assert set(ablations) == {"copy", "edit"}
    assert ablations["edit"].train_pairs == 150 and ablations["copy"].train_pairs == 60
    without_edit = {a.name: a.accuracy for a in ablations["edit"].accuracies}
    without_copy = {a.name: a.accuracy for a in ablations["copy"].accuracies}
    assert without_edit["test"] > by_name["test"].accuracy  # type: ignore[operator]
    assert without_copy["test"] < 0.5  # only the misleading pairs left


def test_a_few_texts_score_as_the_feature_matrix_scores_them() -> None:
    """``RewardModel.scores`` takes a shortcut for a reranker's handful of candidates: it must
    give what the feature matrix gives, on the simulator's answers and on awkward texts."""
    import numpy as np

    from evaluate.bradley_terry import FEW, SHAPE, RewardModel, _matrix
    from flywheel.dev.simulator import SimulationConfig, simulate

    texts = [e["response"] for e in simulate(SimulationConfig(events=600, seed=9))
             if e["type"] == "generation"]  # fmt: skip
    texts += ["", "```\n```", "a a a a b b", "Don't STOP: ünïcode straße ÀB 'q'", "x\n\n\ny"]
    weights = np.random.default_rng(0).normal(size=DIMENSIONS + SHAPE)
    model = RewardModel(weights, 0)
    few = np.concatenate([model.scores(texts[i : i + 4]) for i in range(0, len(texts), 4)])
    assert len(texts) > FEW
    assert np.allclose(few, _matrix(texts) @ weights, rtol=0, atol=1e-9)
    assert np.allclose(model.scores(texts), few, rtol=0, atol=1e-9)  # the matrix path itself
