"""The texts simulated users and models write, read from the corpus shipped with the package
(``corpus/*.toml``): the topics, the phrases every topic shares, and where PII is planted."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from flywheel.files import packaged


@dataclass(frozen=True)
class Topic:
    """What users ask about one subject, and what a model's answers are made of."""

    lang: str | None  # None: a prose topic
    prompts: tuple[str, ...]
    intros: tuple[str, ...]
    sentences: tuple[str, ...]  # correct, useful sentences; better answers use more of them
    code: str = ""  # template; @name@ slots are filled from the slot pools
    slots: tuple[tuple[str, tuple[str, ...]], ...] = ()


Plant = tuple[str, str]
"""A kind of PII or secret and a template holding it as ``{v}`` (or ``{url}``)."""


def _read(name: str) -> dict[str, Any]:
    text = packaged("flywheel.dev.simulator", f"corpus/{name}").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _topic(table: dict[str, Any]) -> Topic:
    lang = table.get("lang")
    code = table.get("code", "").removesuffix("\n")
    if lang == "go":  # written with spaces, so the file stays readable
        code = code.replace("    ", "\t")
    slots = tuple((name, tuple(values)) for name, values in table.get("slots", {}).items())
    prompts, intros, sentences = (tuple(table[k]) for k in ("prompts", "intros", "sentences"))
    return Topic(lang, prompts, intros, sentences, code, slots)


def _plants(rows: list[list[str]]) -> tuple[Plant, ...]:
    return tuple((kind, template) for kind, template in rows)


TOPICS = tuple(_topic(table) for table in _read("topics.toml")["topics"])
CODE_TOPICS = tuple(t for t in TOPICS if t.lang is not None)
PROSE_TOPICS = tuple(t for t in TOPICS if t.lang is None)

_phrases = _read("phrases.toml")
FILLER: tuple[str, ...] = tuple(_phrases["filler"])
IMPROVEMENTS: tuple[str, ...] = tuple(_phrases["improvements"])
FOLLOW_UPS_CODE: tuple[str, ...] = tuple(_phrases["follow_ups_code"])
FOLLOW_UPS_PROSE: tuple[str, ...] = tuple(_phrases["follow_ups_prose"])
FOLLOW_UP_INTROS: tuple[str, ...] = tuple(_phrases["follow_up_intros"])
REASONS_UP: tuple[str, ...] = tuple(_phrases["reasons_up"])
REASONS_DOWN: tuple[str, ...] = tuple(_phrases["reasons_down"])
CODE_NOTES: dict[str, str] = dict(_phrases["code_notes"])
SYSTEM_PROMPTS: dict[str, str] = dict(_phrases["system_prompts"])

_planted = _read("plants.toml")
NAMES: tuple[str, ...] = tuple(_planted["names"])
DOMAINS: tuple[str, ...] = tuple(_planted["domains"])
PROSE_PLANTS = _plants(_planted["prose"])
SIGNATURE_PLANTS = _plants(_planted["signature"])
CODE_PLANTS = {lang: _plants(rows) for lang, rows in _planted["code"].items()}
