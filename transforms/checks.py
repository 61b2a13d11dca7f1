"""Process checks on the code in responses: does each fenced block parse, did a secret leak.

One of the two transform steps with Python in it (parsing needs Python's parsers; the other is
transforms/edits.py). DuckDB finds the fenced blocks (```` ```tag ... ``` ````) of each distinct
response text with a fence or a secret placeholder; Python parses each distinct Python or JSON
block once (answers repeat themselves, and so does their code); DuckDB counts per text and hands
each response its text's counts. A block tagged ``python``/``py``/``python3`` must pass
``ast.parse``, one tagged ``json`` must pass ``json.loads``; other languages are counted, not
checked. A response that still holds a ``<SECRET:...>`` placeholder had a secret in it (the
scrubber replaced it before landing): the model leaked one. The texts come from ``lake_texts``,
read from the lake before the models run (the warehouse keeps none).
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from functools import lru_cache
from typing import Any

PYTHON_TAGS = ("python", "py", "python3")

FENCE = r"(?s)```[A-Za-z0-9_+-]*[^\n]*\n.*?```"
"""A fenced block: three backticks, a tag, the rest of the line, the body up to the next three
backticks (RE2 syntax, as DuckDB's regexp functions take it)."""
TAG = r"^```([A-Za-z0-9_+-]*)"
"""A block's tag, at the start of its first line (the body is what follows that line, without the
closing backticks: cut with string functions, a second regular expression over every block cost
as much as finding them)."""

COUNTS = ("code_blocks", "python_blocks", "python_parsed", "json_blocks", "json_parsed")

SECRET = "<SECRET:"
"""What the scrubber leaves where it removed a secret (``<SECRET:kind>``)."""

TEXTS = """
SELECT t.text, list(r.response_id) AS response_ids
FROM {responses} AS r
JOIN lake_texts AS t ON t.event_id = r.event_id
WHERE contains(t.text, '```') OR contains(t.text, '<SECRET:')
GROUP BY t.text
"""
"""Each distinct response text with a fence or a secret placeholder, and the responses that have
it (the same SQL on both engines)."""

_BLOCKS = """
CREATE OR REPLACE TEMP TABLE code_texts AS
WITH texts AS ({texts})
SELECT
    row_number() OVER () AS text_id,
    response_ids,
    contains(text, '<SECRET:') AS leaked_secret,
    list_transform(regexp_extract_all(text, $fence), lambda b: struct_pack(
        tag := lower(regexp_extract(split_part(b, chr(10), 1), $tag, 1)),
        body := b[strpos(b, chr(10)) + 1 : length(b) - 3])) AS blocks
FROM texts
"""

_CHECKABLE = """
SELECT DISTINCT b.tag, b.body
FROM (SELECT unnest(blocks) AS b FROM code_texts)
WHERE b.tag IN ('json', {python})
"""

CHECKS_SELECT = """
WITH parsed AS (
    SELECT unnest($tag) AS tag, unnest($body) AS body, unnest($ok) AS ok
),
blocks AS (
    SELECT text_id, b.tag, b.body
    FROM (SELECT text_id, unnest(blocks) AS b FROM code_texts)
),
counts AS (
    SELECT
        text_id,
        count(*) AS code_blocks,
        count(*) FILTER (WHERE b.tag IN ({python})) AS python_blocks,
        count(*) FILTER (WHERE b.tag IN ({python}) AND p.ok) AS python_parsed,
        count(*) FILTER (WHERE b.tag = 'json') AS json_blocks,
        count(*) FILTER (WHERE b.tag = 'json' AND p.ok) AS json_parsed
    FROM blocks AS b
    LEFT JOIN parsed AS p ON p.tag = b.tag AND p.body = b.body
    GROUP BY text_id
)
SELECT
    unnest(t.response_ids)::VARCHAR AS response_id,
    {counts},
    t.leaked_secret
FROM code_texts AS t
LEFT JOIN counts AS c USING (text_id)
"""

_PYTHON = ", ".join(f"'{tag}'" for tag in PYTHON_TAGS)


def parses(tag: str, body: str) -> bool:
    """Whether a Python or JSON block parses."""
    if tag in PYTHON_TAGS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not a fail
                ast.parse(body)
            return True
        except (SyntaxError, ValueError):
            return False
    try:
        json.loads(body)
        return True
    except ValueError:
        return False


_FENCE = re.compile(FENCE)
_TAG = re.compile(TAG)


def text_counts(text: str) -> dict[str, int]:
    """A text's block counts (``COUNTS``) computed in Python: the twin of the SQL above, for
    engines without RE2 and lambdas (Spark runs it on its executors; the parity tests hold the
    two to the same counts). Python's ``re`` reads ``FENCE`` and ``TAG`` as RE2 does."""
    counts = dict.fromkeys(COUNTS, 0)
    for block in _FENCE.findall(text):
        first_line = block.split("\n", 1)[0]
        found = _TAG.match(first_line)
        tag = found.group(1).lower() if found else ""
        body = block[block.index("\n") + 1 : len(block) - 3]
        counts["code_blocks"] += 1
        if tag in PYTHON_TAGS:
            counts["python_blocks"] += 1
            counts["python_parsed"] += _parses_once(tag, body)
        elif tag == "json":
            counts["json_blocks"] += 1
            counts["json_parsed"] += _parses_once(tag, body)
    return counts


@lru_cache(maxsize=4096)
def _parses_once(tag: str, body: str) -> bool:
    return parses(tag, body)


def code_checks(db: Any, inputs: dict[str, str]) -> tuple[str, dict[str, list[Any]]]:
    """The checks of the responses in ``inputs["responses"]`` (a table name or a parenthesised
    ``SELECT``) whose text holds a fence or a secret placeholder: a ``SELECT`` and its
    parameters (the parse results, bound, never formatted in)."""
    db.execute(
        _BLOCKS.format(texts=TEXTS.format(responses=inputs["responses"])),
        {"fence": FENCE, "tag": TAG},
    )
    checkable = db.execute(_CHECKABLE.format(python=_PYTHON)).fetchall()
    parameters: dict[str, list[Any]] = {
        "tag": [tag for tag, _ in checkable],
        "body": [body for _, body in checkable],
        "ok": [parses(tag, body) for tag, body in checkable],
    }
    counts = ", ".join(f"coalesce(c.{name}, 0)::INTEGER AS {name}" for name in COUNTS)
    return CHECKS_SELECT.format(python=_PYTHON, counts=counts), parameters
