"""What the reviews say about the signals, the rewards and the reviewers, and the policy weights
they suggest.

- **Human precision per signal**: over the reviews of unanimous pairs (every vote went to the
  chosen side, so each of the pair's signals pointed at it), the share of decided verdicts
  (``chosen`` or ``rejected``) that preferred the chosen side, with a 95% Wilson interval.
  A review of a unanimous label (every piece of evidence pointed one way) counts the same way:
  ``good`` of a desirable answer or ``bad`` of an undesirable one agrees with its signals.
  Ties and both-bad verdicts are counted beside it, not in it: they say the pair should not
  be a pair, not which side a signal got wrong. A contested pair's signals voted both ways, so
  which of them was right is not known from the verdict alone; contested pairs are measured
  as a whole (``pairs``).
- **Reward levels against rubric scores**: Spearman's rho of each level of ``rewards``
  (explicit, implicit, process, constitutional, penalty, and the total) with each rubric
  dimension and their mean, over every reviewed side that is a response (an edit pair's edited
  text has no reward).
- **Agreement between reviewers**: on items reviewed twice or more, the first two verdicts by
  time; observed agreement and Cohen's kappa over the four verdicts.
- **Suggested weights** (``suggest_weights``): in a weighted vote of independent voters each
  right with probability p, the weights that decide best are proportional to the log-odds
  log(p / (1 - p)) (Nitzan and Paroush, 1982). With p the Wilson lower bound (a signal is not
  trusted beyond what its reviews prove), a signal no better than chance gets 0; the weights
  of the signals measured are then scaled to keep their current sum, so confidences stay on
  the scale the dataset policies' ``min_confidence`` was chosen on. Signals with fewer than
  ``min_reviews`` decided verdicts keep their weight. Nothing is written: ``policy_diff``
  shows the change as a unified diff of the policy file, for a person to make.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from review.stats import cohen_kappa, round_half_up, spearman, wilson

LEVELS = (
    "explicit_score",
    "implicit_score",
    "process_score",
    "constitutional_score",
    "penalty",
    "reward",
)
"""The columns of ``rewards`` compared with rubric scores (``reward`` is the weighed total)."""
MIN_REVIEWS = 20
"""Decided verdicts a signal needs before a weight is suggested for it."""


class PrecisionPublic(BaseModel):
    """How often reviewers preferred the side the signals chose."""

    name: str
    """A signal (``copy``...), or for ``pairs`` ``all``, ``unanimous``, ``contested``."""
    agree: int
    """Verdicts for the chosen side."""
    disagree: int
    """Verdicts for the rejected side."""
    n: int
    """Decided verdicts: agree + disagree."""
    ties: int
    both_bad: int
    precision: float | None
    wilson_low: float | None
    wilson_high: float | None


class CorrelationPublic(BaseModel):
    """Spearman's rho of a reward level with a rubric dimension (or ``mean`` of them)."""

    level: str
    dimension: str
    n: int
    spearman: float | None
    """None with fewer than 3 sides or a constant column."""


class AgreementPublic(BaseModel):
    """Agreement of two reviewers on the same items."""

    items: int
    """Items with two reviews or more (the first two count)."""
    agree: int
    observed: float | None
    kappa: float | None


class CalibrationPublic(BaseModel):
    """The calibration of the signals by the reviews (of one queue, or of all)."""

    queue_id: str | None
    reviews: int
    reviewers: int
    signals: list[PrecisionPublic]
    pairs: list[PrecisionPublic]
    reward_levels: list[CorrelationPublic]
    agreement: AgreementPublic


class WeightPublic(BaseModel):
    """A signal's weight now and as the reviews suggest it."""

    signal: str
    current: float
    suggested: float
    n: int
    wilson_low: float | None
    reason: str


class SuggestionPublic(BaseModel):
    """Suggested weights and the policy file's diff (empty when nothing would change)."""

    policy_file: str
    weights: list[WeightPublic]
    diff: str


def _precision(name: str, verdicts: list[str]) -> PrecisionPublic:
    agree = verdicts.count("chosen")
    disagree = verdicts.count("rejected")
    n = agree + disagree
    interval = wilson(agree, n)
    return PrecisionPublic(
        name=name,
        agree=agree,
        disagree=disagree,
        n=n,
        ties=verdicts.count("tie"),
        both_bad=verdicts.count("both_bad"),
        precision=round_half_up(agree / n) if n else None,
        wilson_low=interval[0] if interval else None,
        wilson_high=interval[1] if interval else None,
    )


def _as_pair_verdict(verdict: str, label: bool | None) -> str:
    """A review's verdict in a pair's terms: a label item's ``good`` or ``bad`` is ``chosen``
    when it says what the label says (good of a desirable answer, bad of an undesirable one),
    else ``rejected``."""
    if label is None:
        return verdict
    return "chosen" if (verdict == "good") == label else "rejected"


def calibration(db: Any, *, queue_id: str | None = None) -> CalibrationPublic:
    """The calibration from the reviews of ``queue_id`` (every queue when None)."""
    where, params = ("WHERE r.queue_id = $q", {"q": queue_id}) if queue_id else ("", {})
    rows = db.execute(
        "SELECT r.review_id, r.item_id, r.reviewer_pseudonym, r.verdict, r.chosen_scores, "
        "r.rejected_scores, r.chosen_response_id, r.rejected_response_id, i.signals, "
        "i.disagreement, i.label FROM reviews AS r JOIN review_items AS i USING (item_id) "
        f"{where} ORDER BY r.reviewed_at, r.review_id",
        params,
    ).fetchall()
    # A label's review agrees with the signals when it calls the answer what they did.
    rows = [(*row[:3], _as_pair_verdict(row[3], row[10]), *row[4:10]) for row in rows]
    by_signal: dict[str, list[str]] = defaultdict(list)
    by_kind: dict[str, list[str]] = defaultdict(list)
    by_item: dict[str, list[str]] = defaultdict(list)
    for _, item_id, _, verdict, _, _, _, _, signals, disagreement in rows:
        kind = "unanimous" if disagreement == 0 else "contested"
        by_kind["all"].append(verdict)
        by_kind[kind].append(verdict)
        if kind == "unanimous":
            for signal in signals:
                by_signal[signal].append(verdict)
        by_item[item_id].append(verdict)
    twice = [(v[0], v[1]) for v in by_item.values() if len(v) >= 2]
    agreed = cohen_kappa(twice)
    return CalibrationPublic(
        queue_id=queue_id,
        reviews=len(rows),
        reviewers=len({r[2] for r in rows}),
        signals=[_precision(s, by_signal[s]) for s in sorted(by_signal)],
        pairs=[_precision(k, by_kind[k]) for k in ("all", "unanimous", "contested")],
        reward_levels=_correlations(db, rows),
        agreement=AgreementPublic(
            items=len(twice),
            agree=sum(1 for a, b in twice if a == b),
            observed=agreed[0] if agreed else None,
            kappa=agreed[1] if agreed else None,
        ),
    )


def _correlations(db: Any, rows: list[tuple[Any, ...]]) -> list[CorrelationPublic]:
    """Each reward level against each rubric dimension and their mean, over reviewed sides."""
    from warehouse.db import table_names  # not at import: it brings alembic to the API's start

    if "rewards" not in table_names(db):
        return []
    responses = {r[6] for r in rows if r[6]} | {r[7] for r in rows if r[7]}
    rewards: dict[str, tuple[float, ...]] = {}
    if responses:
        found = db.execute(
            f"SELECT response_id, {', '.join(LEVELS)} FROM rewards "  # noqa: S608
            "WHERE response_id IN (SELECT unnest($ids))",
            {"ids": sorted(responses)},
        ).fetchall()
        rewards = {r[0]: tuple(float(v) for v in r[1:]) for r in found}
    sides: list[tuple[tuple[float, ...], dict[str, float]]] = []
    for row in rows:
        for scores, response in ((row[4], row[6]), (row[5], row[7])):
            if response in rewards:
                sides.append((rewards[response], json.loads(scores)))
    dimensions = sorted({d for _, scores in sides for d in scores})
    found_rows = []
    for index, level in enumerate(LEVELS):
        for dimension in [*dimensions, "mean"]:
            xs, ys = [], []
            for levels, scores in sides:
                if dimension == "mean":
                    if scores:
                        xs.append(levels[index])
                        ys.append(sum(scores.values()) / len(scores))
                elif dimension in scores:
                    xs.append(levels[index])
                    ys.append(float(scores[dimension]))
            found_rows.append(
                CorrelationPublic(
                    level=level.removesuffix("_score"),
                    dimension=dimension,
                    n=len(xs),
                    spearman=spearman(xs, ys),
                )
            )
    return found_rows


def suggest_weights(
    current: dict[str, float],
    precision: list[PrecisionPublic],
    *,
    min_reviews: int = MIN_REVIEWS,
) -> list[WeightPublic]:
    """The weights the reviews suggest (see the module's docstring), every current signal
    listed in the policy's order."""
    measured = {p.name: p for p in precision if p.name in current}
    log_odds: dict[str, float] = {}
    for name, measure in measured.items():
        if measure.n >= min_reviews and measure.wilson_low is not None:
            p = measure.wilson_low
            log_odds[name] = math.log(p / (1 - p)) if p > 0.5 else 0.0
    total_current = sum(current[name] for name in log_odds)
    total_odds = sum(log_odds.values())
    weights = []
    for name, weight in current.items():
        found = measured.get(name)
        n = found.n if found else 0
        low = found.wilson_low if found else None
        if name not in log_odds:
            reason = f"fewer than {min_reviews} decided verdicts: kept"
            weights.append(WeightPublic(signal=name, current=weight, suggested=weight, n=n,
                                        wilson_low=low, reason=reason))  # fmt: skip
            continue
        if total_odds == 0:
            # No measured signal beats chance: nothing to share their weight by, and zero for
            # all would leave the votes nothing to decide with. Kept, saying why.
            weights.append(WeightPublic(
                signal=name, current=weight, suggested=weight, n=n, wilson_low=low,
                reason="no measured signal better than chance at 95%: nothing to reweigh by, kept",
            ))  # fmt: skip
            continue
        suggested = round_half_up(log_odds[name] / total_odds * total_current, 2)
        reason = (
            "no better than chance at 95% (Wilson lower bound <= 0.5)"
            if log_odds[name] == 0
            else f"log-odds of the Wilson lower bound {low}, scaled to the measured signals' sum"
        )
        weights.append(WeightPublic(signal=name, current=weight, suggested=suggested, n=n,
                                    wilson_low=low, reason=reason))  # fmt: skip
    return weights


def current_weights(policy_file: Path) -> dict[str, float]:
    """The ``[weights]`` of a policy file, in its order (validated as the transforms do)."""
    from transforms.policy import load_policy

    weights = load_policy(policy_file).weights.model_dump(by_alias=True)
    text = policy_file.read_text(encoding="utf-8")
    order = [name for name in _weight_lines(text) if name in weights]
    return {name: float(weights[name]) for name in [*order, *sorted(set(weights) - set(order))]}


_SECTION = re.compile(r"^\s*\[([^\]]+)\]")
_ASSIGNMENT = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)([-+0-9.eE]+)(.*)$")


def _weight_lines(text: str) -> dict[str, int]:
    """The line number of each assignment in the ``[weights]`` section."""
    section = None
    found = {}
    for number, line in enumerate(text.splitlines()):
        header = _SECTION.match(line)
        if header:
            section = header.group(1).strip()
            continue
        assignment = _ASSIGNMENT.match(line)
        if section == "weights" and assignment:
            found[assignment.group(2)] = number
    return found


def policy_diff(policy_file: Path, weights: list[WeightPublic]) -> str:
    """A unified diff from the policy file to the same file with the suggested weights (its
    comments and layout kept); empty when no weight changes. Writes nothing."""
    text = policy_file.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    at = _weight_lines(text)
    changed = list(lines)
    for weight in weights:
        if weight.suggested == weight.current or weight.signal not in at:
            continue
        number = at[weight.signal]
        match = _ASSIGNMENT.match(lines[number].rstrip("\n"))
        assert match is not None
        indent, name, equals, _, rest = match.groups()
        ending = "\n" if lines[number].endswith("\n") else ""
        changed[number] = f"{indent}{name}{equals}{_toml_float(weight.suggested)}{rest}{ending}"
    if changed == lines:
        return ""
    name = str(policy_file)
    return "".join(
        difflib.unified_diff(lines, changed, fromfile=name, tofile=f"{name} (suggested)")
    )


def _toml_float(value: float) -> str:
    """A weight as the policy file writes them: ``0.0``, ``0.97`` (a TOML float, never ``0``)."""
    text = f"{value:g}"
    return text if any(c in text for c in ".en") else f"{text}.0"


def suggest_policy(
    db: Any, *, policy_file: Path, queue_id: str | None = None, min_reviews: int = MIN_REVIEWS
) -> SuggestionPublic:
    """The weights the reviews suggest for ``policy_file`` and the diff to get there."""
    current = current_weights(policy_file)
    measured = calibration(db, queue_id=queue_id).signals
    weights = suggest_weights(current, measured, min_reviews=min_reviews)
    return SuggestionPublic(
        policy_file=str(policy_file), weights=weights, diff=policy_diff(policy_file, weights)
    )
