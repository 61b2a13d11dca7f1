"""Incremental builds: which rows new events can change, and what recomputing them needs.

A model file that names its keys (``-- refresh_by: conversation_id`` or
``-- refresh_by: chosen_response_id, rejected_response_id``) is rebuilt incrementally: its rows
whose key is touched are deleted and recomputed by the same ``SELECT``, run over the events and
rows those keys need instead of the whole warehouse. A model without keys (an aggregate such as
``signal_calibration``) is rebuilt in full on every run. The result is the same as a full build;
the tests compare the two after rounds of late, duplicated and cross-referencing events.

The unit is the conversation, widened to what a response can be linked to from elsewhere
(response ids are the clients'; nothing forces an event to name a response of its own
conversation):

- ``touched_conversations``: the conversations of the new events, and the conversations of the
  responses they name (a copy, rating, edit, regeneration, A/B side or prompt reference);
- ``scope_events``: every event needed to recompute the responses of those conversations, from
  any conversation: the generations sharing their response ids (the first one wins), the signals
  and A/B choices naming them, and the generations that continued from them (with theirs);
- ``touched_responses``: the response ids of the touched conversations, before and after the
  ``responses`` model is rebuilt (a response can move to another conversation when an earlier
  duplicate of its generation arrives late);
- ``scope_response_ids``: those, and the other sides of their A/B comparisons (a pair needs both
  sides' rows).

Models other than ``responses`` read ``responses``, ``code_checks`` and ``edit_changes`` limited
to ``scope_response_ids`` and ``events`` limited to ``scope_events``; only rows whose key is
touched are kept. Everything lives in temporary tables of the run's connection.
"""

from __future__ import annotations

from typing import Any

KEY_SETS = {"conversation_id": ("touched_conversations", "conversation_id")}
"""Which touched set a key column is matched against; any other key is a response id."""
RESPONSE_KEYS = ("touched_responses", "response_id")

SHADOWS = {
    "events": "SELECT * FROM scope_events",
    # Fetched once, after responses is rebuilt (``responses_rebuilt``).
    "responses": "SELECT * FROM scope_responses",
    "code_checks": "SELECT * FROM code_checks "
    "WHERE response_id IN (SELECT response_id FROM scope_response_ids)",
    "edit_changes": "SELECT * FROM edit_changes "
    "WHERE response_id IN (SELECT response_id FROM scope_response_ids)",
}
"""What a model reads instead of each relation on an incremental build (a CTE of that name
shadows the table; inside its own definition the name still means the table)."""

_PREPARE = (
    # The new events: those of files loaded after the model's last build.
    """
    CREATE OR REPLACE TEMP TABLE new_events AS
    SELECT conversation_id, response_id, response_a_id, response_b_id, prompt_response_ids
    FROM events
    WHERE lake_file IN (SELECT path FROM lake_files WHERE seq > $since)
    """,
    """
    CREATE OR REPLACE TEMP TABLE named_responses AS
    SELECT DISTINCT id AS response_id
    FROM (
        SELECT response_id AS id FROM new_events
        UNION ALL SELECT response_a_id FROM new_events
        UNION ALL SELECT response_b_id FROM new_events
        UNION ALL SELECT unnest(prompt_response_ids) FROM new_events
    )
    WHERE id IS NOT NULL
    """,
    """
    CREATE OR REPLACE TEMP TABLE touched_conversations AS
    SELECT conversation_id FROM new_events
    UNION
    SELECT conversation_id FROM responses
    WHERE response_id IN (SELECT response_id FROM named_responses)
    """,
    # Response ids generated in the touched conversations...
    """
    CREATE OR REPLACE TEMP TABLE scope_generations AS
    SELECT DISTINCT response_id
    FROM events
    WHERE type = 'generation'
        AND conversation_id IN (SELECT conversation_id FROM touched_conversations)
    """,
    # ...and those of the generations, anywhere, that continued from one of them: whether such a
    # generation counts depends on it being the first of its response id.
    """
    CREATE OR REPLACE TEMP TABLE scope_ids AS
    SELECT response_id FROM scope_generations
    UNION
    SELECT response_id
    FROM (SELECT response_id, unnest(prompt_response_ids) AS named
          FROM events WHERE type = 'generation')
    WHERE named IN (SELECT response_id FROM scope_generations)
    """,
    # The rows are found on the three id columns first, then fetched whole by row id: with the
    # condition on the whole rows, DuckDB read every prompt and text of the table to test it.
    """
    CREATE OR REPLACE TEMP TABLE scope_events AS
    SELECT *
    FROM events
    WHERE rowid IN (
        SELECT rowid
        FROM events
        WHERE response_id IN (SELECT response_id FROM scope_ids)
            OR response_a_id IN (SELECT response_id FROM scope_generations)
            OR response_b_id IN (SELECT response_id FROM scope_generations)
    )
    """,
    """
    CREATE OR REPLACE TEMP TABLE touched_responses AS
    SELECT response_id FROM responses
    WHERE conversation_id IN (SELECT conversation_id FROM touched_conversations)
    """,
)

_AFTER_RESPONSES = (
    """
    INSERT INTO touched_responses
    SELECT response_id FROM responses
    WHERE conversation_id IN (SELECT conversation_id FROM touched_conversations)
        AND response_id NOT IN (SELECT response_id FROM touched_responses)
    """,
    """
    CREATE OR REPLACE TEMP TABLE scope_response_ids AS
    SELECT response_id FROM touched_responses
    UNION
    SELECT unnest([response_a_id, response_b_id])
    FROM scope_events
    WHERE type = 'ab_choice'
        AND (response_a_id IN (SELECT response_id FROM touched_responses)
             OR response_b_id IN (SELECT response_id FROM touched_responses))
    """,
    # The rows of those responses, found on the id column and then fetched whole by row id, once
    # for every model that reads them.
    """
    CREATE OR REPLACE TEMP TABLE scope_responses AS
    SELECT * FROM responses
    WHERE rowid IN (SELECT rowid FROM responses
                    WHERE response_id IN (SELECT response_id FROM scope_response_ids))
    """,
)


def prepare(db: Any, *, since: int) -> int:
    """Find what the events of files loaded after ``since`` touch; returns how many
    conversations."""
    for statement in _PREPARE:
        db.execute(statement, {"since": since} if "$since" in statement else None)
    [(touched,)] = db.execute("SELECT count(*) FROM touched_conversations").fetchall()
    return int(touched)


def responses_rebuilt(db: Any) -> None:
    """After ``responses`` is rebuilt for the touched conversations: the response ids the other
    models recompute, and the rows they read."""
    for statement in _AFTER_RESPONSES:
        db.execute(statement)


def shadowing(depends_on: tuple[str, ...]) -> str:
    """The ``WITH`` clause that limits a model's inputs to the scope."""
    ctes = [f"{name} AS ({SHADOWS[name]})" for name in depends_on if name in SHADOWS]
    return f"WITH {', '.join(ctes)}\n" if ctes else ""


def key_filter(keys: tuple[str, ...], quote: Any) -> str:
    """A condition true for rows whose key is touched (any of ``keys``)."""
    parts = []
    for key in keys:
        table, column = KEY_SETS.get(key, RESPONSE_KEYS)
        parts.append(f"{quote(key)} IN (SELECT {column} FROM {table})")
    return " OR ".join(parts)
