"""How much each edit changed the response it edits: the ``edit_changes`` model.

The second transform step with Python in it. For every edit whose texts are in ``lake_texts`` (the
edit's and the response's it edits), one row: the edit event, the response, when, whether the edit
is real, and how much it changed.

- ``real_edit``: the edit changes more than whitespace and punctuation. The two texts still differ
  once the characters of ``SPACE_AND_PUNCTUATION`` are deleted (ASCII whitespace and punctuation:
  what ``[\\s[:punct:]]`` matches in RE2, DuckDB's engine).
- ``change``: 1 - the Jaccard similarity of the two texts' word sets (0: the same words, 1: none in
  common). A word is a run of ASCII letters and digits, compared without case (lower-cased as
  DuckDB's ``lower()`` does, which turns two non-ASCII capitals into ASCII letters); any other
  character separates words. Characters would call two unrelated sentences "70% similar".

Both work on the texts' UTF-8 bytes with ``bytes.translate``: deleting an ASCII byte never cuts a
character in two (the bytes of a multi-byte character are all above 127), and, but for the two
capitals above, every such byte is a separator. On the benchmark's 30,776 edits (23 MB of text)
the step takes 0.5 s (reading the texts, comparing, writing the rows); the same comparison in SQL
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
_LOWER_TO_ASCII = ((b"\xc4\xb0", b"i"), (b"\xe2\x84\xaa", b"k"))
"""The two non-ASCII characters DuckDB's ``lower()`` turns into ASCII letters (U+0130, capital I
with a dot, and U+212A, the Kelvin sign), as UTF-8: the SQL this step replaced lower-cased the
texts before splitting them into words."""

_CANDIDATES = """
SELECT e.event_id, encode(original.text), encode(edited.text)
FROM {events} AS e
JOIN {responses} AS r ON r.response_id = e.response_id
JOIN lake_texts AS edited ON edited.event_id = e.event_id
JOIN lake_texts AS original ON original.event_id = r.event_id
WHERE e.type = 'edit' AND original.text IS NOT NULL AND edited.text IS NOT NULL
"""
"""Each edit's event id, the text of the response it edits and its own (as UTF-8 bytes)."""

_ROWS = """
SELECT e.event_id AS edit_event_id, e.response_id, e.occurred_at, c.real_edit, c.change
FROM (
    SELECT
        unnest($edit_event_id::VARCHAR[]) AS edit_event_id,
        unnest($real_edit::BOOLEAN[]) AS real_edit,
        unnest($change::DOUBLE[]) AS change
) AS c
JOIN {events} AS e ON e.event_id = c.edit_event_id
"""
"""The computed values (bound), with the rest of each edit's row from ``events`` (whose ids are
unique). Timestamps stay in DuckDB: DuckDB 1.x needs pytz to hand them to Python."""


def without_space_or_punct(text: bytes) -> bytes:
    """A UTF-8 text without its ASCII whitespace and punctuation."""
    return text.translate(None, _DELETE)


def words(text: bytes) -> set[bytes]:
    """The words of a UTF-8 text, lower-cased as DuckDB's ``lower()`` would."""
    for upper, lower in _LOWER_TO_ASCII:
        text = text.replace(upper, lower)
    return set(text.translate(_WORD_BYTES).split())


def change(original: bytes, edited: bytes) -> float:
    """1 - the Jaccard similarity of the two texts' word sets."""
    before, after = words(original), words(edited)
    common = len(before & after)
    return 1.0 - common / max(len(before) + len(after) - common, 1)


def edit_changes(db: Any, inputs: dict[str, str]) -> tuple[str, dict[str, list[Any]]]:
    """The rows of the edits in ``inputs["events"]`` of the responses in ``inputs["responses"]``
    (each a table name or a parenthesised ``SELECT``): a ``SELECT`` and its parameters (the
    computed values, bound)."""
    rows = db.execute(_CANDIDATES.format(**inputs)).fetchall()
    return _ROWS.format(**inputs), {
        "edit_event_id": [edit for edit, _, _ in rows],
        "real_edit": [
            without_space_or_punct(original) != without_space_or_punct(edited)
            for _, original, edited in rows
        ],
        "change": [change(original, edited) for _, original, edited in rows],
    }
