"""How much each edit changed the response it edits, and what it weighs: the ``edit_changes``
model.

The second transform step with Python in it. For every edit whose texts are in ``lake_texts`` (the
edit's and the response's it edits), one row: the edit event, the response, when, whether the edit
is real, how much it changed, and the weight it carries as evidence. Pairs, labels and rewards
read the weight from here, and the calibration which edits count (real, within the thresholds),
so an edit means the same everywhere.

Both texts are compared as their *words*: each text in Unicode normalisation form NFKC (so that
full-width letters, ligatures and non-breaking spaces read as their plain forms), case-folded,
and cut into runs of letters, marks and digits of any script (Unicode categories L, M and N);
every other character (whitespace of any kind, punctuation such as dashes and quotes, symbols,
invisible format characters, underscores) separates words.

- ``real_edit``: the two texts' words, joined, differ: an edit of whitespace, punctuation,
  symbols or case alone is not real (the characters they delete or add are not in a word, and
  joining makes "a b" and "ab" the same, as a space is all that tells them apart).
- ``change``: 1 - the Jaccard similarity of the two texts' word sets (0: the same words, 1: none in
  common; two texts without words have nothing in common). Characters would call two unrelated
  sentences "70% similar".
- ``weight``: the policy's ``weights.edit`` times ``min(1, 0.5 + 0.5 * change / edit.max_change)``
  for the latest real edit of a response when its change lies between ``edit.min_change`` and
  ``edit.max_change``; 0 for any other edit (not real, below the threshold, a total rewrite, or
  superseded by a later real edit).

Most texts are ASCII: NFKC and case folding are C loops that return them unchanged quickly, and
only the characters above ASCII go through ``unicodedata.category`` (once per distinct
character). The step's time on the benchmark's edits is in docs/benchmarks.md.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Any

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_WORD = re.compile(r"[0-9a-z\x80-\U0010ffff]+")
"""A word once the text is folded: ASCII letters (lower case by then) and digits, and any
character above ASCII left (``_fold`` turned the others into spaces)."""

CANDIDATES = """
SELECT e.event_id, original.text, edited.text
FROM {events} AS e
JOIN {responses} AS r ON r.response_id = e.response_id
JOIN lake_texts AS edited ON edited.event_id = e.event_id
JOIN lake_texts AS original ON original.event_id = r.event_id
WHERE e.type = 'edit' AND original.text IS NOT NULL AND edited.text IS NOT NULL
"""
"""Each edit's event id, the text of the response it edits and its own."""

ROWS = """
SELECT
    *,
    -- The latest real edit of a response is the one that counts (the user's last word on it).
    CASE WHEN real_edit
              AND row_number() OVER (PARTITION BY response_id, real_edit
                                     ORDER BY occurred_at DESC, edit_event_id) = 1
              AND change >= getvariable('edit_min_change')
              AND change <= getvariable('edit_max_change')
         THEN round_half_up(getvariable('weights_edit')
                    * least(1.0, 0.5 + 0.5 * change / getvariable('edit_max_change')), 6)
         ELSE 0.0 END AS weight
FROM (
    SELECT e.event_id AS edit_event_id, e.response_id, e.occurred_at, c.real_edit, c.change
    FROM {computed} AS c
    JOIN {events} AS e ON e.event_id = c.edit_event_id
)
"""
"""The computed values (``computed``: bound on DuckDB, ``BOUND``; a view on Spark), with the rest
of each edit's row from ``events`` (whose ids are unique) and its weight. Timestamps stay in
DuckDB: DuckDB 1.x needs pytz to hand them to Python."""

BOUND = """(
    SELECT
        unnest($edit_event_id::VARCHAR[]) AS edit_event_id,
        unnest($real_edit::BOOLEAN[]) AS real_edit,
        unnest($change::DOUBLE[]) AS change
)"""


@lru_cache(maxsize=8192)
def _fold(character: str) -> str:
    """A character above ASCII as it stands in a word, or a space when it separates words."""
    return character if unicodedata.category(character)[0] in "LMN" else " "


def words(text: str) -> list[str]:
    """The words of a text, in order: runs of letters, marks and digits after NFKC and case
    folding."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    if not folded.isascii():
        folded = _NON_ASCII.sub(lambda found: _fold(found.group()), folded)
    return _WORD.findall(folded)


def is_real(original: list[str], edited: list[str]) -> bool:
    """Whether an edit changes the words' letters and digits (not only whitespace, punctuation,
    symbols or case)."""
    return "".join(original) != "".join(edited)


def change(original: list[str], edited: list[str]) -> float:
    """1 - the Jaccard similarity of the two texts' word sets."""
    before, after = set(original), set(edited)
    common = len(before & after)
    return 1.0 - common / max(len(before) + len(after) - common, 1)


def edit_changes(db: Any, inputs: dict[str, str]) -> tuple[str, dict[str, list[Any]]]:
    """The rows of the edits in ``inputs["events"]`` of the responses in ``inputs["responses"]``
    (each a table name or a parenthesised ``SELECT``): a ``SELECT`` and its parameters (the
    computed values, bound)."""
    rows = db.execute(CANDIDATES.format(**inputs)).fetchall()
    edits, real, changes = [], [], []
    for edit, original, edited in rows:
        before, after = words(original), words(edited)
        edits.append(edit)
        real.append(is_real(before, after))
        changes.append(change(before, after))
    computed = {"edit_event_id": edits, "real_edit": real, "change": changes}
    return ROWS.format(computed=BOUND, **inputs), computed
