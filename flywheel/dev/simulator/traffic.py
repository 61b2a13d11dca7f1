"""Simulated chat traffic: contract-valid event streams with a hidden ground truth.

The simulator stands in for a chat frontend and its users, for tests, benchmarks and the demo.
Later stages (preference pairs, anonymiser, code checks) are scored against what it knows and the
events do not say: the hidden quality of every response and every PII or secret value it planted.

The model of traffic:

- A pool of *slots* runs conversations side by side; each slot starts a new conversation when its
  previous one ends. The slots' events are merged by time, so conversations interleave as real
  traffic does. Users are drawn with a heavy-tailed activity weight (a few users chat a lot).
- Every response gets a hidden quality ``q`` in [0, 1], drawn from its model's Beta distribution
  (newer and larger models are better on average). Quality shapes the text: good answers have
  more useful sentences, poor ones carry filler, and poor code sometimes lacks a closing bracket.
- A user *perceives* ``q`` with personal noise (``q + gauss(0, noise)``) and acts on that:
  good answers get copied, near misses get edited (the edit improves them), bad answers get
  regenerated (up to three times, each a sibling with the same ``parent_id``) or rated down.
  Some users also rate, with an optional reason. Some turns show an A/B pair, and the user picks
  the better one, says ``tie`` when they look alike, or ``both_bad``.
- After acting the user usually continues the conversation from the response they kept; the next
  prompt carries that response (with its ``response_id``) in the history, capped at six messages.
- Clients misbehave: a few events are sent twice (same ``event_id``, a little later) and a few
  feedback events arrive before the generation they refer to (the generation was buffered).
- A few percent of events carry PII or secrets, planted in user messages (pasted details) and in
  code (hard-coded keys); truth records every field in which each planted value appears.

Everything derives from ``random.Random(seed)`` and a fixed start time, so a configuration always
produces byte-identical output.
"""

from __future__ import annotations

import copy
import heapq
import random
import uuid
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from flywheel.dev.simulator.pii import db_url, pii_value
from flywheel.dev.simulator.texts import (
    CODE_NOTES,
    CODE_PLANTS,
    CODE_TOPICS,
    FILLER,
    FOLLOW_UP_INTROS,
    FOLLOW_UPS_CODE,
    FOLLOW_UPS_PROSE,
    IMPROVEMENTS,
    PROSE_PLANTS,
    PROSE_TOPICS,
    REASONS_DOWN,
    REASONS_UP,
    SIGNATURE_PLANTS,
    SYSTEM_PROMPTS,
    Plant,
    Topic,
)

__all__ = [
    "Reranker",
    "Simulation",
    "SimulationConfig",
    "hidden_quality",
    "hidden_win_rate",
    "simulate",
]

HISTORY_LIMIT = 6  # at most this many messages of history per prompt, plus the system message
MAX_REGENERATIONS = 3
MAX_TURNS = 8
GOOD, NEAR_MISS = 0.62, 0.42  # perceived-quality thresholds: keep as is / fix by hand / replace

Reranker = Callable[[Sequence[str]], Sequence[float]]
"""A served policy's judge: a score for each candidate answer's text, higher is better. It sees
the texts only, never their hidden quality."""


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate: how many events, from which seed, with how much misbehaviour."""

    events: int = 1000  # exactly this many events are emitted, duplicates included
    seed: int = 0
    users: int | None = None  # None: scale with the event count
    start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # occurred_at of the first activity
    pii_rate: float = 0.04  # about this share of events carries a planted PII or secret value
    duplicate_rate: float = 0.01  # share of events sent a second time
    out_of_order_rate: float = 0.02  # share of events sent before the generation they refer to
    ab_rate: float = 0.08  # share of user messages answered with an A/B pair
    # Best-of-n serving: each answer shown is the best of ``best_of`` candidates by ``reranker``
    # (a reward model trained on an earlier dataset). Without a reranker, one candidate is drawn.
    best_of: int = 1
    reranker: Reranker | None = field(default=None, compare=False, repr=False)

    @property
    def user_count(self) -> int:
        """Number of simulated users; scales with the event count unless set."""
        return self.users if self.users is not None else max(5, self.events // 60)


# --- The world: apps and models (their texts are in texts.py) -------------------------------------


@dataclass(frozen=True)
class _Model:
    id: str
    version: str
    alpha: float  # Beta(alpha, beta) is the model's quality distribution
    beta: float
    weight: float  # share of traffic


MODELS = (
    _Model("chat-small", "2026-06", 3.0, 3.0, 0.35),
    _Model("chat-small", "2026-09", 3.6, 2.6, 0.40),
    _Model("chat-large", "2026-09", 4.6, 2.0, 0.25),
)
_MODEL_CUM = list(accumulate(m.weight for m in MODELS))

APPS = (
    (("web", "3.2.0"), 0.55),
    (("web", "3.1.7"), 0.10),
    (("vscode-extension", "1.4.1"), 0.30),
    (("vscode-extension", "1.3.9"), 0.05),
)


# --- Responses -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Response:
    response_id: str
    model: _Model
    quality: float
    perceived: float  # the user's noisy reading of quality; every decision uses this
    topic: Topic
    before: list[str]
    code: str | None  # as shown, possibly broken
    intended_code: str | None  # what the model meant; differs when a bracket went missing
    after: list[str]
    text: str = ""


def _render(before: list[str], code: str | None, lang: str | None, after: list[str]) -> str:
    parts = [" ".join(before)] if before else []
    if code is not None:
        parts.append(f"```{lang}\n{code}\n```")
    if after:
        parts.append(" ".join(after))
    return "\n\n".join(parts)


def _fill(rng: random.Random, template: str, slots: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    for name, values in slots:
        template = template.replace(f"@{name}@", rng.choice(values))
    return template


def _break_code(rng: random.Random, code: str) -> str:
    """Drop one closing bracket: the kind of mistake a weak model makes and a parser finds."""
    positions = [i for i, ch in enumerate(code) if ch in ")]}"]
    i = rng.choice(positions)
    return code[:i] + code[i + 1 :]


def _sentences(rng: random.Random, topic: Topic, quality: float, useful: int) -> list[str]:
    """Useful sentences (more when better), diluted with filler when poor."""
    chosen = rng.sample(topic.sentences, min(useful, len(topic.sentences)))
    for _ in range(round((1.0 - quality) * 2.2)):
        chosen.insert(rng.randrange(len(chosen) + 1), rng.choice(FILLER))
    return chosen


# --- Users ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _User:
    user_id: str
    app: tuple[str, str]
    consent: dict[str, Any] | None
    noise: float  # how far their perceived quality strays from the hidden quality
    code_share: float  # share of their conversations about code
    copy_prob: float
    edit_prob: float
    rate_prob: float
    patience: float  # chance to regenerate a bad answer instead of giving up on it


def _make_users(rng: random.Random, n: int) -> tuple[list[_User], list[float]]:
    users: list[_User] = []
    weights: list[float] = []
    app_cum = list(accumulate(w for _, w in APPS))
    for _ in range(n):
        app = APPS[bisect(app_cum, rng.random() * app_cum[-1])][0]
        roll = rng.random()
        consent: dict[str, Any] | None = {"training": True, "policy_version": "2026-01"}
        if roll < 0.06:
            consent = {"training": False, "policy_version": "2026-01"}
        elif roll < 0.12:
            consent = None  # older frontends do not know the consent state
        users.append(
            _User(
                user_id=f"u_{rng.getrandbits(48):012x}",
                app=app,
                consent=consent,
                noise=rng.uniform(0.05, 0.15),
                code_share=0.8 if app[0] == "vscode-extension" else rng.uniform(0.3, 0.6),
                copy_prob=rng.uniform(0.5, 0.9),
                edit_prob=rng.uniform(0.25, 0.6),
                rate_prob=rng.choice((0.03, 0.1, 0.25, 0.5)),  # most users rarely rate
                patience=rng.uniform(0.6, 0.95),
            )
        )
        weights.append(rng.paretovariate(1.5))
    return users, list(accumulate(weights))


# --- One slot of traffic: conversations one after another ----------------------------------------


@dataclass(slots=True)
class _Pending:
    """An event waiting to be emitted, with what only the truth may know about it."""

    emit_at: float  # seconds after start when the client sends it (>= occurred time)
    event: dict[str, Any]
    quality: float | None = None  # generation events: hidden quality
    model: _Model | None = None
    plants: list[tuple[str, str, str]] = field(default_factory=list)  # (field, kind, value)


class _Slot:
    """Runs conversations back to back; ``run`` yields their events in emission order."""

    def __init__(
        self,
        config: SimulationConfig,
        rng: random.Random,
        users: list[_User],
        user_cum: list[float],
        t: float,
    ) -> None:
        self.cfg = config
        self.rng = rng
        self.users = users
        self.user_cum = user_cum
        self.t = t
        self.last_emit = 0.0
        # Misbehaviour and PII draw from streams of their own, so their rates change nothing else.
        self.client_rng = random.Random(rng.getrandbits(64))
        self.pii_rng = random.Random(rng.getrandbits(64))
        self.ooo_debt = 0.0  # out-of-order events owed, so the rate holds whatever the turn mix
        self.pii_p = min(1.0, config.pii_rate * _PII_SCALE)
        self.iso_base = config.start if config.start.tzinfo else config.start.replace(tzinfo=UTC)
        # Per-conversation state, reset by _conversation.
        self.user = users[0]
        self.conv_id = ""
        self.plants: list[tuple[str, str]] = []

    # Identifiers and envelopes.

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.getrandbits(64):016x}"

    def _event(self, kind: str, t: float) -> dict[str, Any]:
        iso = (self.iso_base + timedelta(seconds=t)).isoformat(timespec="milliseconds")
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "type": kind,
            "occurred_at": iso[:-6] + "Z" if iso.endswith("+00:00") else iso,
            "user_id": self.user.user_id,
            "conversation_id": self.conv_id,
            "app": {"name": self.user.app[0], "version": self.user.app[1]},
        }
        if self.user.consent is not None:
            event["consent"] = dict(self.user.consent)
        event["schema_version"] = 1
        return event

    def _pending(
        self,
        event: dict[str, Any],
        t: float,
        fields: list[tuple[str, str]],
        response: _Response | None = None,
    ) -> _Pending:
        plants = [
            (path, kind, value)
            for kind, value in self.plants
            for path, text in fields
            if value in text
        ]
        if response is None:
            return _Pending(t, event, plants=plants)
        return _Pending(t, event, response.quality, response.model, plants)

    # Texts.

    def _user_message(self, topic: Topic, previous: str | None) -> str:
        rng = self.rng
        if previous is None:
            text = _fill(rng, rng.choice(topic.prompts), topic.slots)
        else:
            follow_ups = FOLLOW_UPS_CODE if topic.lang else FOLLOW_UPS_PROSE
            text = rng.choice([f for f in follow_ups if not previous.startswith(f)])
        pasted = self._maybe_plant(PROSE_PLANTS)
        return text if pasted is None else f"{text} {pasted}"

    def _maybe_plant(self, templates: tuple[Plant, ...]) -> str | None:
        """With the PII rate's chance, a line carrying a fresh value from ``(kind, template)``."""
        rng = self.pii_rng  # a stream of its own: the PII rate leaves everything else alone
        if rng.random() >= self.pii_p:
            return None
        kind, template = rng.choice(templates)
        value = pii_value(rng, kind)
        self.plants.append((kind, value))
        url = db_url(rng, value) if kind == "password_in_url" else ""
        return template.format(v=value, url=url)

    def _respond(self, topic: Topic, model: _Model, first: bool) -> _Response:
        """The answer served: one draw, or the best of ``best_of`` by the reranker's scores."""
        reranker = self.cfg.reranker
        if reranker is None or self.cfg.best_of <= 1:
            return self._draw(topic, model, first)
        candidates = [self._draw(topic, model, first) for _ in range(self.cfg.best_of)]
        scores = reranker([c.text for c in candidates])
        return candidates[max(range(len(candidates)), key=lambda i: scores[i])]

    def _draw(self, topic: Topic, model: _Model, first: bool) -> _Response:
        rng = self.rng
        q = rng.betavariate(model.alpha, model.beta)
        perceived = q + rng.gauss(0.0, self.user.noise)
        intro = rng.choice(topic.intros) if first else rng.choice(FOLLOW_UP_INTROS)
        code = intended = None
        if topic.lang is None:
            before = [intro, *_sentences(rng, topic, q, 1 + round(q * 3.5))]
            after: list[str] = []
            signature = self._maybe_plant(SIGNATURE_PLANTS)
            if signature is not None:
                before.append(signature)
        else:
            before = [intro]
            after = _sentences(rng, topic, q, round(q * 2.6))
            intended = _fill(rng, topic.code, topic.slots)
            line = self._maybe_plant(CODE_PLANTS[topic.lang])
            if line is not None:
                lines = intended.split("\n")
                lines.insert(1 if topic.lang == "json" else 0, line)
                intended = "\n".join(lines)
            code = intended
            if q < 0.4 and rng.random() < 0.5:
                code = _break_code(rng, intended)
        response = _Response(
            self._id("resp"), model, q, perceived, topic, before, code, intended, after
        )
        response.text = _render(before, code, topic.lang, after)
        return response

    def _edited(self, r: _Response) -> str:
        """The text a user wants instead: mostly a small fix, sometimes a rewrite or just spaces."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.04:
            return r.text + "\n"  # whitespace-only edits happen; derivation must ignore them
        before, after, code = list(r.before), list(r.after), r.code
        if roll < 0.12:  # a large rewrite: keep little of the original
            before = [rng.choice(IMPROVEMENTS)]
            after = rng.sample(r.topic.sentences, min(3, len(r.topic.sentences)))
        elif code is not None and code != r.intended_code:
            code = r.intended_code  # restore the missing bracket
        elif code is not None and r.topic.lang is not None and rng.random() < 0.5:
            lines = code.split("\n")
            lines.insert(1 if r.topic.lang == "json" else 0, CODE_NOTES[r.topic.lang])
            code = "\n".join(lines)
        else:
            prose = after if code is not None else before
            better = rng.choice(
                [s for s in r.topic.sentences if s not in prose] or list(IMPROVEMENTS)
            )
            fillers = [i for i, s in enumerate(prose) if s in FILLER]
            if fillers:
                prose[rng.choice(fillers)] = better
            else:
                prose.append(better)
        text = _render(before, code, r.topic.lang, after)
        return text if text != r.text else r.text + " " + rng.choice(IMPROVEMENTS)

    def _copied(self, r: _Response) -> tuple[str, bool]:
        rng = self.rng
        if r.code is not None and rng.random() < 0.8:
            return r.code, True
        if rng.random() < 0.25:
            return r.text, False
        return rng.choice(r.before + r.after), False

    # The conversation.

    def run(self) -> Iterator[_Pending]:
        """Yield pending events forever, one conversation after another."""
        while True:
            yield from self._conversation()
            self.t += self.rng.expovariate(1 / 240.0)  # idle gap before the next conversation

    def _conversation(self) -> Iterator[_Pending]:
        rng = self.rng
        self.user = self.users[bisect(self.user_cum, rng.random() * self.user_cum[-1])]
        self.conv_id = self._id("conv")
        self.plants = []
        code = rng.random() < self.user.code_share
        topic = rng.choice(CODE_TOPICS if code else PROSE_TOPICS)
        model = MODELS[bisect(_MODEL_CUM, rng.random() * _MODEL_CUM[-1])]
        system = []
        if self.user.app[0] == "vscode-extension" or rng.random() < 0.5:
            system = [{"role": "system", "content": SYSTEM_PROMPTS[self.user.app[0]]}]
        history: list[dict[str, Any]] = []
        for turn in range(MAX_TURNS):
            if turn:
                self.t += rng.uniform(8.0, 90.0)  # reading, thinking, typing
            previous = history[-2]["content"] if history else None
            history.append({"role": "user", "content": self._user_message(topic, previous)})
            window = history[-HISTORY_LIMIT:]
            if window[0]["role"] == "assistant":  # trimmed history starts with a user message
                window = window[1:]
            prompt = system + window
            out: list[_Pending] = []
            kept = self._turn(topic, model, prompt, self._id("msg"), turn == 0, out)
            yield from self._emission_order(out)
            history.append(
                {"role": "assistant", "content": kept.text, "response_id": kept.response_id}
            )
            if rng.random() > 0.35 + 0.45 * min(max(kept.perceived, 0.0), 1.0):
                return

    def _generation(
        self,
        r: _Response,
        parent_id: str,
        prompt: list[dict[str, Any]],
        out: list[_Pending],
        delay: float | None = None,
    ) -> None:
        self.t += _latency(self.rng, r.text) if delay is None else delay
        event = self._event("generation", self.t)
        event.update(
            response_id=r.response_id,
            parent_id=parent_id,
            prompt=[dict(m) for m in prompt],
            response=r.text,
            model={"id": r.model.id, "version": r.model.version},
        )
        fields = []
        if self.plants:  # only then can a field carry a planted value
            fields = [(f"prompt[{i}].content", m["content"]) for i, m in enumerate(prompt)]
            fields.append(("response", r.text))
        out.append(self._pending(event, self.t, fields, r))

    def _feedback(self, kind: str, r: _Response, out: list[_Pending], **payload: Any) -> None:
        self.t += self.rng.uniform(1.0, 6.0)
        event = self._event(kind, self.t)
        event["response_id"] = r.response_id
        event.update(payload)
        fields: list[tuple[str, str]] = [
            (name, payload[name]) for name in ("text", "edited_text") if name in payload
        ]
        out.append(self._pending(event, self.t, fields if self.plants else []))

    def _turn(
        self,
        topic: Topic,
        model: _Model,
        prompt: list[dict[str, Any]],
        parent_id: str,
        first: bool,
        out: list[_Pending],
    ) -> _Response:
        """One user message: generation(s), then what the user does; returns the kept response."""
        rng, user = self.rng, self.user
        if rng.random() < self.cfg.ab_rate:
            model_a, model_b = rng.sample(MODELS, 2)
            a, b = self._respond(topic, model_a, first), self._respond(topic, model_b, first)
            self._generation(a, parent_id, prompt, out)
            self._generation(b, parent_id, prompt, out, delay=0.05)  # shown side by side
            self.t += _read_time(rng, a.text) + _read_time(rng, b.text) * 0.5
            pa, pb = a.perceived, b.perceived
            if max(pa, pb) < 0.35:
                choice = "both_bad"
            elif abs(pa - pb) < 0.04:
                choice = "tie"
            else:
                choice = "a" if pa > pb else "b"
            event = self._event("ab_choice", self.t)
            event.update(response_a_id=a.response_id, response_b_id=b.response_id, choice=choice)
            out.append(self._pending(event, self.t, []))
            current = a if pa >= pb else b
        else:
            current = self._respond(topic, model, first)
            self._generation(current, parent_id, prompt, out)
            self.t += _read_time(rng, current.text)

        regenerations = 0
        while current.perceived < NEAR_MISS and regenerations < MAX_REGENERATIONS:
            if rng.random() > user.patience:
                break
            if rng.random() < user.rate_prob * 0.5:
                self._rating(current, out)
            replacement = self._respond(topic, current.model, first)
            known = rng.random() < 0.85  # most frontends know the new id when they ask
            extra = {"new_response_id": replacement.response_id} if known else {}
            self._feedback("regenerate", current, out, **extra)
            self._generation(replacement, parent_id, prompt, out)
            self.t += _read_time(rng, replacement.text)
            current, regenerations = replacement, regenerations + 1

        p = current.perceived
        if p >= GOOD:
            if rng.random() < user.copy_prob:
                self._copy(current, out)
        elif p >= NEAR_MISS:
            if rng.random() < user.edit_prob:
                self._feedback("edit", current, out, edited_text=self._edited(current))
            elif rng.random() < 0.3:
                self._copy(current, out)
        if rng.random() < user.rate_prob * (2.0 if p < NEAR_MISS else 1.0):
            self._rating(current, out)
        return current

    def _copy(self, r: _Response, out: list[_Pending]) -> None:
        text, code_block = self._copied(r)
        payload: dict[str, Any] = {"text": text, "code_block": code_block}
        if self.user.app[0] == "vscode-extension":  # the IDE also reports the selection
            start = r.text.index(text)
            payload["span"] = {"start": start, "end": start + len(text)}
        self._feedback("copy", r, out, **payload)

    def _rating(self, r: _Response, out: list[_Pending]) -> None:
        up = r.perceived >= 0.55
        payload: dict[str, Any] = {"value": "up" if up else "down"}
        if self.rng.random() < 0.3:
            reasons = REASONS_UP if up else REASONS_DOWN
            if not up and r.code is not None and r.code != r.intended_code:
                reasons = ("Syntax error in the code", *reasons)
            payload["reason"] = self.rng.choice(reasons)
        self._feedback("rating", r, out, **payload)

    def _emission_order(self, out: list[_Pending]) -> list[_Pending]:
        """Send order of one turn: mostly as it happened, sometimes a generation sent late."""
        self.ooo_debt += self.cfg.out_of_order_rate * len(out)
        if self.ooo_debt > 0 and self.client_rng.random() < self.ooo_debt:
            self._delay_a_generation(out)
        for p in out:  # a client sends in order, so emission times never go backwards
            p.emit_at = self.last_emit = max(p.emit_at, self.last_emit)
        return out

    def _delay_a_generation(self, out: list[_Pending]) -> None:
        # Move a generation to just after a copy/rating/edit of it, if nothing else refers to it
        # in between: exactly one event then arrives before the generation it refers to.
        where = {
            p.event["response_id"]: i for i, p in enumerate(out) if p.event["type"] == "generation"
        }
        for i, p in enumerate(out):
            rid = p.event.get("response_id")
            if p.event["type"] not in ("copy", "rating", "edit") or rid not in where:
                continue
            g = where[rid]
            between = out[g + 1 : i]
            if any(
                rid
                in (
                    q.event.get("response_id"),
                    q.event.get("response_a_id"),
                    q.event.get("response_b_id"),
                )
                for q in between
            ):
                continue
            generation = out.pop(g)
            generation.emit_at = p.emit_at + 0.5
            out.insert(i, generation)
            self.ooo_debt -= 1.0
            return


def _latency(rng: random.Random, text: str) -> float:
    """Seconds from the user's message to the response being shown."""
    return 1.0 + len(text) / 400.0 + rng.uniform(0.0, 1.5)


def _read_time(rng: random.Random, text: str) -> float:
    """Seconds a user spends reading a response before acting."""
    return 3.0 + len(text) / 40.0 * rng.uniform(0.4, 1.4)


# --- The simulation ------------------------------------------------------------------------------

# Planted values recur in later prompts, copies and edits; scaling the per-text chance down makes
# the share of events that carry one come out near ``pii_rate``.
_PII_SCALE = 0.45


@dataclass
class Simulation:
    """Iterates events (JSON-ready dicts, as a client posts them); collects truth as it goes."""

    config: SimulationConfig
    truth: list[dict[str, Any]] = field(default_factory=list, init=False)
    finished: bool = field(default=False, init=False)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        cfg = self.config
        self.truth.clear()
        self.finished = False
        master = random.Random(cfg.seed)
        users, user_cum = _make_users(master, max(1, cfg.user_count))
        # Duplicates draw from a stream of their own, so their rate changes nothing else.
        client_rng = random.Random(master.getrandbits(64))
        n_slots = max(2, min(64, len(users) // 3))
        heap: list[tuple[float, int, _Pending, Iterator[_Pending] | None]] = []
        seq = 0
        for _ in range(n_slots):
            rng = random.Random(master.getrandbits(64))
            slot = _Slot(cfg, rng, users, user_cum, rng.uniform(0.0, 900.0)).run()
            first = next(slot)
            heap.append((first.emit_at, seq, first, slot))
            seq += 1
        heapq.heapify(heap)

        sibling_sets: dict[str, dict[str, Any]] = {}
        emitted = 0
        while emitted < cfg.events:
            emit_at, _, pending, source = heapq.heappop(heap)
            if source is not None:  # an original, not a re-sent duplicate
                self._record(pending, sibling_sets)
                if client_rng.random() < cfg.duplicate_rate:
                    again = _Pending(
                        emit_at + client_rng.uniform(0.5, 20.0), copy.deepcopy(pending.event)
                    )
                    heapq.heappush(heap, (again.emit_at, seq, again, None))
                    seq += 1
                following = next(source)
                heapq.heappush(heap, (following.emit_at, seq, following, source))
                seq += 1
            emitted += 1
            yield pending.event
        self.finished = True

    def _record(self, pending: _Pending, sibling_sets: dict[str, dict[str, Any]]) -> None:
        event = pending.event
        for path, kind, value in pending.plants:
            self.truth.append(
                {
                    "record": "planted",
                    "event_id": event["event_id"],
                    "conversation_id": event["conversation_id"],
                    "field": path,
                    "kind": kind,
                    "value": value,
                }
            )
        if event["type"] != "generation" or pending.model is None or pending.quality is None:
            return
        # Sets are appended on their first emitted generation and grow in place, so the truth
        # always describes exactly the generations emitted so far.
        siblings = sibling_sets.get(event["parent_id"])
        if siblings is None:
            siblings = {
                "record": "sibling_set",
                "conversation_id": event["conversation_id"],
                "parent_id": event["parent_id"],
                "responses": [],
                "best_response_id": event["response_id"],
            }
            sibling_sets[event["parent_id"]] = siblings
            self.truth.append(siblings)
        quality = round(pending.quality, 4)
        siblings["responses"].append(
            {
                "response_id": event["response_id"],
                "model": {"id": pending.model.id, "version": pending.model.version},
                "quality": quality,
            }
        )
        best = max(siblings["responses"], key=lambda r: r["quality"])
        siblings["best_response_id"] = best["response_id"]


def hidden_quality(truth: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Each response's hidden quality by its id, from a simulation's truth records."""
    return {
        response["response_id"]: response["quality"]
        for record in truth
        if record["record"] == "sibling_set"
        for response in record["responses"]
    }


def simulate(config: SimulationConfig) -> Simulation:
    """A simulation of ``config``; iterate it for the events, then read its ``truth``."""
    return Simulation(config)


def hidden_win_rate(
    reranker: Reranker | None, *, best_of: int, prompts: int = 2000, seed: int = 0
) -> tuple[float, int]:
    """How often a policy's answer is truly better than round 0's: (wins, prompts), a tie half.

    For each of ``prompts`` first messages (a topic, code or prose alike, and a model drawn as
    the traffic draws them), round 0's policy serves one candidate and the policy measured the
    best of ``best_of`` by ``reranker`` (without one, its first candidate: round 0 against
    itself). Each side draws from a stream of its own, seeded alike on every call, so two
    rerankers are measured on the very same candidates. Only the simulator reads the hidden
    quality; the reranker sees texts.
    """
    master = random.Random(seed)
    users, user_cum = _make_users(master, 20)
    prompt_rng = random.Random(master.getrandbits(64))
    config = SimulationConfig(pii_rate=0.0)
    baseline = _Slot(config, random.Random(master.getrandbits(64)), users, user_cum, 0.0)
    policy = _Slot(config, random.Random(master.getrandbits(64)), users, user_cum, 0.0)
    served, candidates = [], []
    for _ in range(prompts):
        topics = CODE_TOPICS if prompt_rng.random() < 0.5 else PROSE_TOPICS
        topic = prompt_rng.choice(topics)
        model = MODELS[bisect(_MODEL_CUM, prompt_rng.random() * _MODEL_CUM[-1])]
        served.append(baseline._draw(topic, model, True).quality)
        candidates.append([policy._draw(topic, model, True) for _ in range(max(1, best_of))])
    n = len(candidates[0])
    picks = [0] * prompts
    if reranker is not None and n > 1:  # one call for every candidate: the judge scores texts
        scores = reranker([c.text for group in candidates for c in group])
        picks = [max(range(n), key=lambda j: scores[i * n + j]) for i in range(prompts)]
    wins = 0.0
    for quality, group, pick in zip(served, candidates, picks, strict=True):
        mine = group[pick].quality
        wins += 1.0 if mine > quality else 0.5 if mine == quality else 0.0
    return wins, prompts
