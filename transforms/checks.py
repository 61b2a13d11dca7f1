"""Process checks on the code in responses: does each fenced block parse, did a secret leak.

The one transform step in Python (parsing needs Python's parsers). polars finds the responses
with a fence natively; only those are parsed. A block tagged ``python``/``py`` must pass
``ast.parse``, one tagged ``json`` must pass ``json.loads``; other languages are counted, not
checked. A response that still holds a ``<SECRET:...>`` placeholder had a secret in it (the
scrubber replaced it before landing): the model leaked one. Each distinct text is checked and each
distinct block parsed once per run (answers repeat themselves often); the results reach DuckDB as
bound lists.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from typing import Any

FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
PYTHON_TAGS = frozenset({"python", "py", "python3"})

COUNTS = ("code_blocks", "python_blocks", "python_parsed", "json_blocks", "json_parsed")


def _parses(tag: str, body: str) -> bool | None:
    """Whether a block parses (None: a language that is not checked)."""
    if tag in PYTHON_TAGS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not a fail
                ast.parse(body)
            return True
        except (SyntaxError, ValueError):
            return False
    if tag == "json":
        try:
            json.loads(body)
            return True
        except ValueError:
            return False
    return None


def check_response(
    text: str, parsed: dict[tuple[str, str], bool | None] | None = None
) -> dict[str, Any]:
    """The checks of one response's text (``parsed``: results of blocks seen before, by tag and
    body, filled as it goes: the same block is parsed once)."""
    parsed = {} if parsed is None else parsed
    counts = dict.fromkeys(COUNTS, 0)
    for tag, body in FENCE.findall(text):
        counts["code_blocks"] += 1
        tag = tag.lower()
        key = (tag, body)
        if key not in parsed:
            parsed[key] = _parses(tag, body)
        ok = parsed[key]
        if tag in PYTHON_TAGS:
            counts["python_blocks"] += 1
            counts["python_parsed"] += bool(ok)
        elif tag == "json":
            counts["json_blocks"] += 1
            counts["json_parsed"] += bool(ok)
    return {**counts, "leaked_secret": "<SECRET:" in text}


CHECKS_SELECT = (
    "SELECT UNNEST($response_id)::VARCHAR AS response_id, "
    + ", ".join(f"UNNEST(${name})::INTEGER AS {name}" for name in COUNTS)
    + ", UNNEST($leaked_secret)::BOOLEAN AS leaked_secret"
)
"""The checks as rows, from the lists ``code_checks`` returns (bound, never formatted in)."""


def code_checks(db: Any, responses: str = "responses") -> tuple[str, dict[str, list[Any]]]:
    """The checks of the responses in ``responses`` (a table name or a parenthesised
    ``SELECT``) that hold a fence or a secret placeholder: a ``SELECT`` and its parameters."""
    # One check per distinct text: answers repeat themselves (templates, cached completions).
    texts = db.execute(
        f"SELECT response, list(response_id) FROM {responses} AS r "
        "WHERE contains(response, '```') OR contains(response, '<SECRET:') GROUP BY response"
    ).fetchall()
    columns: dict[str, list[Any]] = {name: [] for name in ("response_id", *COUNTS, "leaked_secret")}
    parsed: dict[tuple[str, str], bool | None] = {}
    for text, response_ids in texts:
        columns["response_id"] += response_ids
        for name, value in check_response(text or "", parsed).items():
            columns[name] += [value] * len(response_ids)
    return CHECKS_SELECT, columns
