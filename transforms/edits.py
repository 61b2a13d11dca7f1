"""How much each edit changed the response it edits: the ``edit_changes`` model.

The second transform step with Python in it. For every edit whose texts are in ``lake_texts`` (the
edit's and the response's it edits), one row: the edit event, the response, when, whether the edit
is real, and how much it changed.

- ``real_edit``: the edit changes more than whitespace and punctuation. The two texts still differ
  once the characters of ``SPACE_AND_PUNCTUATION`` are deleted (ASCII whitespace and punctuation:
  what ``[\\s[:punct:]]`` matches in RE2, DuckDB's engine).
- ``change``: 1 - the Jaccard similarity of the two texts' word sets (0: the same words, 1: none in
  common). A word is a run of ASCII letters and digits, compared without case; any other
  character separates words. Characters would call two unrelated sentences "70% similar".

Both work on the texts' UTF-8 bytes with ``bytes.translate``: deleting an ASCII byte never cuts a
character in two (the bytes of a multi-byte character are all above 127), and every such byte is
a separator. On the benchmark's 30,776 edits (23 MB of text) this takes 0.4 s; the same in SQL
(``translate``, a regular-expression split of every text and the word sets as rows) took 0.75 s,
and polars, though faster at the sets, costs its import (and pyarrow's) in every run.

preference_pairs reads the latest real edit of each response from this table; the policy's
thresholds (``edit.min_change``, ``edit.max_change``) are applied there.
"""

from __future__ import annotations

import string
from typing import Any

SPACE_AND_PUNCTUATION = "\t\n\f\r " + string.punctuation
"""The characters of the regular expression class ``[\\s[:punct:]]`` in RE2: ASCII whitespace as
RE2 defines ``\\s`` (no vertical tab) and ASCII punctuation."""

_DELETE = SPACE_AND_PUNCTUATION.encode()
_WORD_BYTES = bytes(
    byte if chr(byte).isascii() and chr(byte).isalnum() else ord(" ") for byte in range(256)
).lower()
"""A ``bytes.translate`` table: ASCII letters (lower-cased) and digits stay, every other byte
becomes a space."""

_CANDIDATES = """
SELECT
    e.event_id AS edit_event_id,
    e.response_id,
    e.occurred_at,
    encode(original.text) AS original,
    encode(edited.text) AS edited
FROM events AS e
JOIN {responses} AS r ON r.response_id = e.response_id
JOIN lake_texts AS edited ON edited.event_id = e.event_id
JOIN lake_texts AS original ON original.event_id = r.event_id
WHERE e.type = 'edit'
"""
"""Each edit with its text and the text of the response it edits (as UTF-8 bytes)."""

_ROWS = """
SELECT
    unnest($edit_event_id::VARCHAR[]) AS edit_event_id,
    unnest($response_id::VARCHAR[]) AS response_id,
    unnest($occurred_at::TIMESTAMPTZ[]) AS occurred_at,
    unnest($real_edit::BOOLEAN[]) AS real_edit,
    unnest($change::DOUBLE[]) AS change
"""


def without_space_or_punct(text: bytes) -> bytes:
    """A UTF-8 text without its ASCII whitespace and punctuation."""
    return text.translate(None, _DELETE)


def words(text: bytes) -> set[bytes]:
    """The words of a UTF-8 text, lower-cased."""
    return set(text.translate(_WORD_BYTES).split())


def change(original: bytes, edited: bytes) -> float:
    """1 - the Jaccard similarity of the two texts' word sets."""
    before, after = words(original), words(edited)
    common = len(before & after)
    return 1.0 - common / max(len(before) + len(after) - common, 1)


def edit_changes(db: Any, responses: str = "responses") -> tuple[str, dict[str, list[Any]]]:
    """The rows of the edits of the responses in ``responses`` (a table name or a parenthesised
    ``SELECT``): a ``SELECT`` and its parameters (the computed values, bound)."""
    rows = db.execute(_CANDIDATES.format(responses=responses)).fetchall()
    return _ROWS, {
        "edit_event_id": [row[0] for row in rows],
        "response_id": [row[1] for row in rows],
        "occurred_at": [row[2] for row in rows],
        "real_edit": [
            without_space_or_punct(row[3]) != without_space_or_punct(row[4]) for row in rows
        ],
        "change": [change(row[3], row[4]) for row in rows],
    }
