"""Rounds of events that make incremental builds hard, shared by the tests that compare an
incremental build with a full one (tests/transforms/test_incremental.py) and Spark's tables with
DuckDB's (tests/transforms/test_spark_parity.py): signals before their generations, an event
sent twice with another value, a generation continuing from a response of another
conversation, a signal naming a response elsewhere, an earlier duplicate of a generation that
moves its response, an A/B choice between non-siblings. Each call makes new event ids.

And ``with_extensions``: events dressed with metadata, content parts and tool calls, shared by
the export's tests of them and the Spark parity test."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from tests.factories import generation, make_event

CODE = "Here:\n```python\ndef f(xs):\n    return xs[::-1]\n```\n"


def late_and_duplicated_rounds() -> list[list[dict[str, Any]]]:
    """Four rounds of events, to land one after the other (a run after each)."""
    duplicated = make_event("rating", response_id="r1", value="up", conversation_id="c1")
    return [
        [
            # Signals before their generations: a copy, and an A/B whose sides come later.
            make_event("copy", response_id="r1", text="def", code_block=True, conversation_id="c1"),
            make_event("ab_choice", response_a_id="r2", response_b_id="r3", choice="b",
                       conversation_id="c2"),
            generation("r2", "m1", conversation_id="c2"),
            duplicated,
            generation("r9", "m1", conversation_id="c9"),
        ],
        [
            generation("r1", "m1", text=CODE, conversation_id="c1"),
            generation("r3", "m1", conversation_id="c2"),  # the A/B now has both sides
            {**duplicated, "value": "down"},  # the same event again: its first landing counts
            make_event("edit", response_id="r2", edited_text="answer r2, with a fix",
                       conversation_id="c2"),
            make_event("regenerate", response_id="r2", new_response_id="r3", conversation_id="c2"),
        ],
        [
            # A follow-up that continued from r3, in another conversation than r3's.
            generation("r4", "m2", conversation_id="c3", prompt=[
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "answer r3", "response_id": "r3"},
                {"role": "user", "content": "more"},
            ]),
            # A signal naming a response of another conversation.
            make_event("copy", response_id="r9", text="x", conversation_id="c1"),
            # An earlier duplicate of r2's generation, elsewhere: the response moves there.
            generation("r2", "m7", conversation_id="c4", occurred_at="2026-01-04T09:00:00Z"),
            make_event("ab_choice", response_a_id="r1", response_b_id="r9", choice="a",
                       conversation_id="c1"),
        ],
        # Only r1's conversation is touched; its A/B choice with r9 (in c9, not a sibling)
        # still needs r9's row to be told apart from a choice whose side has not landed.
        [make_event("rating", response_id="r1", value="up", conversation_id="c1")],
    ]  # fmt: skip


IMAGE_ASK = "Look at this picture: "
"""Starts the text of every user message that shows an image (``with_extensions``)."""


def _draw(conversation_id: str, salt: str) -> int:
    return int(hashlib.sha256(f"{salt}:{conversation_id}".encode()).hexdigest()[:8], 16)


def experiment_of(conversation_id: str) -> str:
    """The experiment ``with_extensions`` puts a conversation's generations in."""
    return "exp-7" if _draw(conversation_id, "experiment") % 2 else "control"


def with_extensions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events (of the simulator, say) using metadata, content parts and tool calls, decided by
    conversation so that siblings share their prompts:

    - every generation carries ``{"experiment": experiment_of(conversation), "prompt_version":
      3, "temperature": 0.7, "owner": <an e-mail address>}``; the signals of control
      conversations carry ``{"experiment": "exp-7"}``, which must not make them exp-7's;
    - a third of the conversations send their user messages as one text part (the same text);
    - a seventh show an image in the last user message (its text then starts with
      ``IMAGE_ASK``);
    - a fifth call a tool before the last user message: an assistant message with only a tool
      call, and the tool's answer.
    """
    out = []
    for event in events:
        conversation = event["conversation_id"]
        event = copy.deepcopy(event)
        if event["type"] != "generation":
            if experiment_of(conversation) == "control" and _draw(conversation, "trap") % 2:
                event["metadata"] = {"experiment": "exp-7"}
            out.append(event)
            continue
        event["metadata"] = {
            "experiment": experiment_of(conversation), "prompt_version": 3, "temperature": 0.7,
            "owner": "jane.doe@example.com",
        }  # fmt: skip
        prompt = event["prompt"]
        if _draw(conversation, "parts") % 3 == 0:
            for message in prompt:
                if message["role"] == "user":
                    message["content"] = [{"type": "text", "text": message["content"]}]
        if _draw(conversation, "image") % 7 == 0:
            last = prompt[-1]
            text = (
                last["content"] if isinstance(last["content"], str) else last["content"][0]["text"]
            )
            last["content"] = [
                {"type": "text", "text": IMAGE_ASK + text},
                {"type": "image_url", "image_url": {"url": "https://img.example.com/s.png"}},
            ]
        if _draw(conversation, "tools") % 5 == 0:
            call = {
                "id": f"call_{conversation[-6:]}",
                "type": "function",
                "function": {
                    "name": "search_docs",
                    "arguments": json.dumps({"query": conversation[-6:]}),
                },
            }
            prompt[-1:-1] = [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": "3 results"},
            ]  # fmt: skip
        out.append(event)
    return out
