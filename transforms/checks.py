"""Process checks on the code in responses: does each fenced block parse, did a secret leak.

The one transform step in Python (parsing needs Python's parsers). polars finds the responses
with a fence natively; only those are parsed. A block tagged ``python``/``py`` must pass
``ast.parse``, one tagged ``json`` must pass ``json.loads``; other languages are counted, not
checked. A response that still holds a ``<SECRET:...>`` placeholder had a secret in it (the
scrubber replaced it before landing): the model leaked one.
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


def check_response(text: str) -> dict[str, Any]:
    """The checks of one response's text."""
    counts = dict.fromkeys(COUNTS, 0)
    for tag, body in FENCE.findall(text):
        counts["code_blocks"] += 1
        tag = tag.lower()
        if tag in PYTHON_TAGS:
            counts["python_blocks"] += 1
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not a fail
                    ast.parse(body)
                counts["python_parsed"] += 1
            except (SyntaxError, ValueError):
                pass
        elif tag == "json":
            counts["json_blocks"] += 1
            try:
                json.loads(body)
                counts["json_parsed"] += 1
            except ValueError:
                pass
    return {**counts, "leaked_secret": "<SECRET:" in text}


def code_checks(db: Any, responses: str = "responses") -> Any:
    """The checks (a pyarrow table) of the responses in ``responses`` (a table name or a
    parenthesised ``SELECT``) that hold a fence or a secret placeholder."""
    import pyarrow as pa

    rows = db.execute(
        f"SELECT response_id, response FROM {responses} AS r "
        "WHERE contains(response, '```') OR contains(response, '<SECRET:')"
    ).fetchall()
    schema = pa.schema(
        [("response_id", pa.string())]
        + [(name, pa.int32()) for name in COUNTS]
        + [("leaked_secret", pa.bool_())]
    )
    return pa.Table.from_pylist(
        [{"response_id": rid, **check_response(text or "")} for rid, text in rows], schema=schema
    )
