"""Does a dataset version teach what users prefer? Train a light reward model on its train split
and measure it on pairs it never saw.

``evaluate_version`` reads a published version's ``dpo`` pairs (its Parquet files), fits
``evaluate.bradley_terry`` on the train split and reports its accuracy, the share of pairs whose
chosen side it scores higher (a tie counts half), with a 95% Wilson interval and the number of
pairs, on:

- ``test``: the version's other splits (``test`` and any split but ``train``);
- ``ab_choice``: the pairs of those splits an explicit A/B choice decided (``signals`` holds
  ``ab_choice``): a user's own pick between two answers, held out of training by the split;
- ``ground_truth``: when given (simulated traffic), pairs of sibling answers whose hidden
  quality differs, the better one as chosen (``truth_pairs``), but for those the train split
  holds (either way round): the model is measured on pairs it never saw.

Ablations: for each signal in the train split, the model trained without the pairs that signal
voted for, measured on the same sets: what the signal adds is the accuracy lost without it.

The result is the manifest's ``Evaluation``: ``evaluate_files`` is what an export is handed to
record it in the version it publishes (export/publish.py).
Nothing here reads the simulator's hidden quality but ``truth_pairs``, which only the report uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluate.bradley_terry import Encoded, RewardModel, fit
from export.manifest import Ablation, Accuracy, Evaluation
from review.stats import wilson

TRAIN = "train"
MODEL = "bradley-terry (hashed words)"


class EvaluationPublic(Evaluation):
    """What ``flywheel evaluate`` reports of a dataset version: the manifest's record of it,
    with the version's name."""

    dataset: str
    version: str


@dataclass(frozen=True)
class Pair:
    """A preference pair's texts and the signals that made it."""

    prompt: str
    chosen: str
    rejected: str
    signals: tuple[str, ...] = ()


def text_of(value: Any) -> str:
    """A TRL column as text: a string (the standard format), or a list of messages (the
    conversational one) whose contents are joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for message in value:
            content = message.get("content") if isinstance(message, dict) else message
            parts.append(text_of(content) if not isinstance(content, str) else content)
        return "\n".join(p for p in parts if p)
    if isinstance(value, dict):
        return text_of(value.get("content", ""))
    return "" if value is None else str(value)


def read_pairs(files: Sequence[str | Path]) -> list[Pair]:
    """The ``dpo`` pairs of a version's Parquet files (one split's)."""
    import polars as pl

    pairs: list[Pair] = []
    for path in files:
        frame = pl.read_parquet(path, columns=["prompt", "chosen", "rejected", "signals"])
        for row in frame.iter_rows(named=True):
            pairs.append(Pair(text_of(row["prompt"]), text_of(row["chosen"]),
                              text_of(row["rejected"]), tuple(row["signals"] or ())))  # fmt: skip
    return pairs


def accuracy(
    model: RewardModel, name: str, pairs: Sequence[tuple[str, str]],
    encoded: Encoded | None = None,
) -> Accuracy:  # fmt: skip
    """The share of ``pairs`` (chosen, rejected) the model orders right, ties half."""
    if not pairs:
        return Accuracy(name=name, pairs=0, accuracy=None, wilson_low=None, wilson_high=None)
    margins = model.margins(pairs, encoded)
    right = float(np.sum(margins > 0) + 0.5 * np.sum(margins == 0))
    interval = wilson(right, len(pairs))  # type: ignore[arg-type]
    assert interval is not None
    return Accuracy(name=name, pairs=len(pairs), accuracy=round(right / len(pairs), 6),
                          wilson_low=interval[0], wilson_high=interval[1])  # fmt: skip


def _sides(pairs: Iterable[Pair]) -> list[tuple[str, str]]:
    return [(p.chosen, p.rejected) for p in pairs]


def measure(
    train: Sequence[Pair],
    held_out: Sequence[Pair],
    truth: Sequence[tuple[str, str]] | None,
    encoded: Encoded | None = None,
) -> tuple[int, list[Accuracy]]:
    """Fit on ``train``; accuracies on the held-out pairs, their A/B choices and the truth."""
    encoded = encoded or Encoded()
    model = fit(_sides(train), encoded=encoded)
    ab = _sides(p for p in held_out if "ab_choice" in p.signals)
    found = [
        accuracy(model, "test", _sides(held_out), encoded),
        accuracy(model, "ab_choice", ab, encoded),
    ]
    if truth is not None:
        found.append(accuracy(model, "ground_truth", truth, encoded))
    return model.pairs, found


def evaluate_pairs(
    splits: Mapping[str, list[Pair]],
    *,
    truth: Sequence[tuple[str, str]] | None = None,
    ablations: bool = True,
) -> Evaluation:
    """The evaluation of a version's pairs by split (``train`` and the held-out ones)."""
    train = splits.get(TRAIN, [])
    held_out = [p for name, pairs in sorted(splits.items()) if name != TRAIN for p in pairs]
    if truth is not None:  # measured on pairs the model never saw, either way round
        seen = {frozenset((p.chosen, p.rejected)) for p in train}
        truth = [pair for pair in truth if frozenset(pair) not in seen]
    encoded = Encoded()  # every text's features once, for every fit and measure
    train_pairs, accuracies = measure(train, held_out, truth, encoded)
    found = []
    if ablations:
        for signal in sorted({s for p in train for s in p.signals}):
            kept = [p for p in train if signal not in p.signals]
            left, measured = measure(kept, held_out, truth, encoded)
            found.append(Ablation(signal=signal, train_pairs=left, accuracies=measured))
    return Evaluation(model=MODEL, train_pairs=train_pairs, accuracies=accuracies,
                      ablations=found)  # fmt: skip


def evaluate_files(
    files: Mapping[str, Sequence[str | Path]],
    *,
    truth: Sequence[tuple[str, str]] | None = None,
    ablations: bool = True,
) -> Evaluation:
    """The evaluation of a version's ``dpo`` Parquet files by split: what an export records in
    the manifest of the version it publishes (the shell hands it to ``export_dataset``)."""
    splits = {name: read_pairs(paths) for name, paths in sorted(files.items())}
    return evaluate_pairs(splits, truth=truth, ablations=ablations)


def truth_pairs(
    events: Iterable[dict[str, Any]], truth: Iterable[dict[str, Any]], *, min_gap: float = 0.05
) -> list[tuple[str, str]]:
    """Pairs of sibling answers (same prompt) from simulated traffic, the one of higher hidden
    quality first, when the qualities differ by ``min_gap`` at least; texts from the events."""
    texts = {
        e["response_id"]: e.get("response") or ""
        for e in events
        if e.get("type") == "generation" and e.get("response_id")
    }
    pairs = []
    for record in truth:
        if record.get("record") != "sibling_set":
            continue
        siblings = [r for r in record["responses"] if r["response_id"] in texts]
        for i, a in enumerate(siblings):
            for b in siblings[i + 1 :]:
                if abs(a["quality"] - b["quality"]) < min_gap:
                    continue
                better, worse = (a, b) if a["quality"] > b["quality"] else (b, a)
                pairs.append((texts[better["response_id"]], texts[worse["response_id"]]))
    return pairs


def evaluate_version(
    catalog: Any,
    dataset: str,
    version: str | None = None,
    *,
    truth: Sequence[tuple[str, str]] | None = None,
    ablations: bool = True,
) -> EvaluationPublic:
    """Evaluate a published version (the newest when ``version`` is None; ``latest``: the
    current one) of ``dataset``."""
    from flywheel.errors import NotFoundError

    versions = catalog.versions(dataset)
    if not versions:
        raise NotFoundError(f"dataset {dataset!r} has no published version")
    chosen = catalog.resolve(dataset, version) if version else versions[-1]
    files = catalog.data_files(dataset, chosen).get("dpo")
    if not files:
        raise NotFoundError(f"{dataset} {chosen} has no dpo pairs to evaluate")
    found = evaluate_files(files, truth=truth, ablations=ablations)
    return EvaluationPublic(dataset=dataset, version=chosen, **dict(found))
