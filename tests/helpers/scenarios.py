"""Rounds of events that make incremental builds hard, shared by the tests that compare an
incremental build with a full one (tests/transforms/test_incremental.py) and Spark's tables with
DuckDB's (tests/transforms/test_spark_parity.py): signals before their generations, an event
sent twice with another value, a generation continuing from a response of another
conversation, a signal naming a response elsewhere, an earlier duplicate of a generation that
moves its response, an A/B choice between non-siblings. Each call makes new event ids."""

from __future__ import annotations

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
