"""Shaping selected rows into TRL's columns (``export.build.shape``), on hand-written rows."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from export.build import Rekeyer, shape

SYSTEM = {"role": "system", "content": "Be brief."}
ASK = {"role": "user", "content": "How do I reverse a list?"}
ANSWER = {"role": "assistant", "content": "xs[::-1]"}
AGAIN = {"role": "user", "content": "Without a copy?"}


def rows(*prompts: list[dict[str, str]]) -> pl.DataFrame:
    """One selected row per prompt, as ``select_rows`` gives them."""
    message = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
    return pl.DataFrame(
        {
            "id": [f"id-{i}" for i in range(len(prompts))],
            "conversation_id": [f"c{i}" for i in range(len(prompts))],
            "user_pseudonym": ["u"] * len(prompts),
            "prompt": list(prompts),
            "chosen": ["Use reversed(xs)."] * len(prompts),
            "rejected": ["You cannot."] * len(prompts),
            "completion": ["Use reversed(xs)."] * len(prompts),
            "label": [True] * len(prompts),
            "confidence": [0.75] * len(prompts),
            "signals": [["ab_choice"]] * len(prompts),
            "event_ids": [["e1"]] * len(prompts),
            "models": [["m@1"]] * len(prompts),
        },
        schema_overrides={"prompt": message},
    )


def shaped(kind: Any, conversational: bool, *prompts: list[dict[str, str]]) -> list[dict]:
    frame = shape(rows(*prompts), kind, conversational=conversational, rekey=Rekeyer(b"k", "d"))
    return frame.drop("id", "confidence", "signals", "event_ids", "models", "user",
                      "conversation").to_dicts()  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ([ASK], "How do I reverse a list?"),
        ([SYSTEM, ASK], "System: Be brief.\n\nUser: How do I reverse a list?"),
        ([ASK, ANSWER, AGAIN],
         "User: How do I reverse a list?\n\nAssistant: xs[::-1]\n\nUser: Without a copy?"),
    ],
    ids=["one user message", "system and user", "several turns"],
)  # fmt: skip
def test_standard_prompts_are_the_text_or_labelled_turns(
    prompt: list[dict[str, str]], expected: str
) -> None:
    assert shaped("dpo", False, prompt) == [
        {"prompt": expected, "chosen": "Use reversed(xs).", "rejected": "You cannot."}
    ]
    assert shaped("kto", False, prompt) == [
        {"prompt": expected, "completion": "Use reversed(xs).", "label": True}
    ]


def test_standard_reward_texts_are_the_whole_exchange_in_labelled_turns() -> None:
    [row] = shaped("reward", False, [ASK])
    assert row == {
        "chosen": "User: How do I reverse a list?\n\nAssistant: Use reversed(xs).",
        "rejected": "User: How do I reverse a list?\n\nAssistant: You cannot.",
        "margin": 0.75,
    }


def test_conversational_rows_are_message_lists() -> None:
    chosen = {"role": "assistant", "content": "Use reversed(xs)."}
    rejected = {"role": "assistant", "content": "You cannot."}
    assert shaped("dpo", True, [SYSTEM, ASK]) == [
        {"prompt": [SYSTEM, ASK], "chosen": [chosen], "rejected": [rejected]}
    ]
    assert shaped("kto", True, [ASK]) == [{"prompt": [ASK], "completion": [chosen], "label": True}]
    assert shaped("reward", True, [ASK]) == [
        {"chosen": [ASK, chosen], "rejected": [ASK, rejected], "margin": 0.75}
    ]
