"""Stratified, reproducible sampling of preference pairs, or of labelled responses, for review
(no I/O).

Each candidate (a pair, or a response with its KTO label) falls in one stratum,
``signal/band/agreement``:

- signal: its one signal (``copy``, ``ab_choice``, ...), or ``multiple`` when several voted;
- band: its confidence, ``low`` (below 1/3), ``mid`` (below 2/3) or ``high``;
- agreement: ``unanimous`` when every vote went one way (disagreement 0: to the pair's chosen
  side, or the label's), else ``contested`` (some signal, an explicit A/B choice or rating
  included, voted the other way).

Every stratum gets the same number of items (``per_stratum``; all of it when smaller), so rare
strata (contested, low confidence) are not drowned by the common ones; the share of each stratum
in the population is recorded beside, to weigh estimates back if needed. Within a stratum the
order is that of ``sha256(seed:pair_id)``: the same seed over the same pairs draws the same
items whatever order the warehouse returns them in, and a larger ``per_stratum`` extends the
sample rather than drawing another. ``overlap`` is the share of items that want two reviews (to
measure agreement between reviewers), chosen the same way.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

BANDS = (("low", 1 / 3), ("mid", 2 / 3), ("high", float("inf")))
"""Confidence bands: the first whose bound the confidence is below."""


@dataclass(frozen=True)
class Candidate:
    """A preference pair that may be sampled (the ids its texts are read from included); or a
    labelled response: its id as ``pair_id``, its generation as the prompt's and the chosen
    side's event, no rejected side, and its ``label``."""

    pair_id: str
    conversation_id: str
    prompt_event_id: str
    chosen_event_id: str
    rejected_event_id: str | None
    chosen_response_id: str | None
    rejected_response_id: str | None
    signals: tuple[str, ...]
    confidence: float
    disagreement: float
    event_ids: tuple[str, ...] = ()
    label: bool | None = None
    """A response's KTO label (True: desirable); None for a pair."""


@dataclass(frozen=True)
class Sampled:
    """A candidate drawn into a queue."""

    candidate: Candidate
    stratum: str
    position: int
    """Order in which reviewers get the items: strata interleaved, so that an unfinished queue
    still covers every stratum."""
    wanted_reviews: int


@dataclass
class StratumCount:
    """How many pairs a stratum had and how many were drawn."""

    stratum: str
    population: int
    sampled: int


@dataclass
class Sample:
    """A drawn sample and the record of how it was drawn."""

    items: list[Sampled]
    strata: list[StratumCount] = field(default_factory=list)


def band(confidence: float) -> str:
    """The confidence band of a pair."""
    return next(name for name, below in BANDS if confidence < below)


def stratum(candidate: Candidate) -> str:
    """``signal/band/agreement`` of a pair."""
    signal = candidate.signals[0] if len(candidate.signals) == 1 else "multiple"
    agreement = "unanimous" if candidate.disagreement == 0 else "contested"
    return f"{signal}/{band(candidate.confidence)}/{agreement}"


def draw_key(seed: int, *parts: str) -> str:
    """The order of a seeded draw: a hash of the seed and the thing drawn."""
    return hashlib.sha256(":".join([str(seed), *parts]).encode()).hexdigest()


def unit(seed: int, *parts: str) -> float:
    """A number in [0, 1) drawn from the seed and ``parts``, the same every time."""
    return int(draw_key(seed, *parts)[:13], 16) / 16**13


def draw(
    candidates: Iterable[Candidate],
    *,
    seed: int,
    per_stratum: int,
    overlap: float = 0.0,
    strata: Sequence[str] | None = None,
) -> Sample:
    """Up to ``per_stratum`` candidates of every stratum (only of ``strata`` when given)."""
    if per_stratum < 1:
        raise ValueError("per_stratum must be at least 1")
    if not 0 <= overlap <= 1:
        raise ValueError("overlap must be between 0 and 1")
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        groups[stratum(candidate)].append(candidate)
    wanted = set(strata) if strata is not None else None
    chosen: dict[str, list[Candidate]] = {}
    counts = []
    for name in sorted(groups):
        ordered = sorted(groups[name], key=lambda c: draw_key(seed, c.pair_id))
        picked = ordered[:per_stratum] if wanted is None or name in wanted else []
        chosen[name] = picked
        counts.append(StratumCount(name, population=len(ordered), sampled=len(picked)))
    # Interleave: the first of every stratum, then the second of every stratum, ...
    items: list[Sampled] = []
    for rank in range(max((len(c) for c in chosen.values()), default=0)):
        for name in sorted(chosen):
            if rank < len(chosen[name]):
                candidate = chosen[name][rank]
                reviews = 2 if unit(seed, "overlap", candidate.pair_id) < overlap else 1
                items.append(Sampled(candidate, name, len(items), reviews))
    return Sample(items=items, strata=counts)
