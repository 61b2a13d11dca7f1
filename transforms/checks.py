"""Process and constitutional checks on the code in responses, and whether a secret leaked.

One of the two transform steps with Python in it (the checks need Python's parsers and ruff;
the other is transforms/edits.py). DuckDB finds the fenced blocks (```` ```tag ... ``` ````) of
each distinct response text with a fence or a secret placeholder; Python checks each distinct
checkable block once (answers repeat themselves, and so does their code); DuckDB counts per text
and hands each response its text's counts. Code is never executed.

- Process: a block tagged ``python``/``py``/``python3`` is *parsed* by ``ast.parse``,
  *compiled* by ``compile`` (which also refuses ``return`` outside a function, a ``nonlocal``
  with nothing to bind...), and *clean* when it compiles and ruff finds none of its error rules
  (transforms/lint.py: syntax errors, invalid comparisons and statements, undefined names). A
  block tagged ``json`` must pass ``json.loads``, ``yaml``/``yml`` ``yaml.safe_load_all`` (the
  safe loader builds no objects of its own), ``sql`` DuckDB's parser (``extract_statements``:
  parsed, never planned or run; at least one statement). Other languages are counted, not
  checked.
- Constitutional: the same ruff run checks the rules of the principles file
  (transforms/principles.toml) on every Python block that compiles; a response's
  ``principles_broken`` are those broken by any of its blocks, and its
  ``constitutional_score`` follows from their weights (``Principles.score``; 0 without Python
  that compiles). ruff runs once per batch of blocks: once per model build on DuckDB, once per
  Arrow batch on Spark.
- A response that still holds a ``<SECRET:...>`` placeholder had a secret in it (the scrubber
  replaced it before landing): the model leaked one.

The texts come from ``lake_texts``, read from the lake before the models run (the warehouse keeps
none).
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from transforms import lint
from transforms.principles import Principles, load_principles

PYTHON_TAGS = ("python", "py", "python3")
JSON_TAGS = ("json",)
YAML_TAGS = ("yaml", "yml")
SQL_TAGS = ("sql",)
KINDS = {
    **dict.fromkeys(PYTHON_TAGS, "python"),
    **dict.fromkeys(JSON_TAGS, "json"),
    **dict.fromkeys(YAML_TAGS, "yaml"),
    **dict.fromkeys(SQL_TAGS, "sql"),
}
"""The checked languages by tag."""

FENCE = r"(?s)```[A-Za-z0-9_+-]*[^\n]*\n.*?```"
"""A fenced block: three backticks, a tag, the rest of the line, the body up to the next three
backticks (RE2 syntax, as DuckDB's regexp functions take it)."""
TAG = r"^```([A-Za-z0-9_+-]*)"
"""A block's tag, at the start of its first line (the body is what follows that line, without the
closing backticks: cut with string functions, a second regular expression over every block cost
as much as finding them)."""

COUNTS = (
    "code_blocks",
    "python_blocks",
    "python_parsed",
    "python_compiled",
    "python_clean",
    "json_blocks",
    "json_parsed",
    "yaml_blocks",
    "yaml_parsed",
    "sql_blocks",
    "sql_parsed",
)

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
WHERE b.tag IN ({checkable})
"""

CHECKS_SELECT = """
WITH checked AS (
    SELECT unnest($tag) AS tag, unnest($body) AS body, unnest($parsed) AS parsed,
           unnest($compiled) AS compiled, unnest($clean) AS clean, unnest($broken) AS broken
),
weights AS (
    SELECT unnest($principle) AS principle, unnest($weight)::DECIMAL(18, 6) AS weight
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
        count(*) FILTER (WHERE b.tag IN ({python}) AND p.parsed) AS python_parsed,
        count(*) FILTER (WHERE b.tag IN ({python}) AND p.compiled) AS python_compiled,
        count(*) FILTER (WHERE b.tag IN ({python}) AND p.clean) AS python_clean,
        count(*) FILTER (WHERE b.tag IN ({json})) AS json_blocks,
        count(*) FILTER (WHERE b.tag IN ({json}) AND p.parsed) AS json_parsed,
        count(*) FILTER (WHERE b.tag IN ({yaml})) AS yaml_blocks,
        count(*) FILTER (WHERE b.tag IN ({yaml}) AND p.parsed) AS yaml_parsed,
        count(*) FILTER (WHERE b.tag IN ({sql})) AS sql_blocks,
        count(*) FILTER (WHERE b.tag IN ({sql}) AND p.parsed) AS sql_parsed,
        list_sort(list_distinct(flatten(
            list(string_split(p.broken, ',')) FILTER (WHERE p.broken <> '')))) AS broken
    FROM blocks AS b
    LEFT JOIN checked AS p ON p.tag = b.tag AND p.body = b.body
    GROUP BY text_id
),
scored AS (
    -- Decimal weights: the sum is exact in any order (transforms/principles.py).
    SELECT
        c.text_id,
        CASE WHEN c.python_compiled > 0
             THEN (1 - 2 * least(1, coalesce(sum(w.weight), 0)))::DOUBLE
             ELSE 0 END AS score
    FROM counts AS c
    LEFT JOIN weights AS w ON list_contains(c.broken, w.principle)
    GROUP BY c.text_id, c.python_compiled
)
SELECT
    unnest(t.response_ids)::VARCHAR AS response_id,
    {counts},
    coalesce(c.broken, []::VARCHAR[]) AS principles_broken,
    coalesce(s.score, 0)::DOUBLE AS constitutional_score,
    t.leaked_secret
FROM code_texts AS t
LEFT JOIN counts AS c USING (text_id)
LEFT JOIN scored AS s USING (text_id)
"""


def _quoted(tags: Iterable[str]) -> str:
    return ", ".join(f"'{tag}'" for tag in tags)


@dataclass(frozen=True)
class BlockCheck:
    """One block's checks (``compiled``, ``clean`` and ``broken`` for Python only)."""

    parsed: bool
    compiled: bool = False
    clean: bool = False
    broken: tuple[str, ...] = ()
    """The principles the block broke, by name, sorted."""


def python_parses(body: str) -> bool:
    """Whether a Python block parses (``ast.parse``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not a fail
            ast.parse(body)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def python_compiles(body: str) -> bool:
    """Whether a Python block compiles to bytecode (``compile``; the code object is dropped,
    never run), and can be written as UTF-8 for the linter."""
    try:
        body.encode()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(body, "<block>", "exec", dont_inherit=True)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # UnicodeError: ValueError
        return False


def json_parses(body: str) -> bool:
    """Whether a JSON block parses."""
    try:
        json.loads(body)
        return True
    except (ValueError, RecursionError):
        return False


def yaml_parses(body: str) -> bool:
    """Whether a YAML block parses, every document of it (with the safe loader)."""
    import yaml

    try:
        for _ in yaml.load_all(body, Loader=yaml.SafeLoader):  # noqa: S506 - the safe loader
            pass
        return True
    except (yaml.YAMLError, ValueError, RecursionError):
        return False


@cache
def _sql_parser() -> Any:
    import duckdb

    return duckdb.connect(":memory:")


def sql_parses(body: str) -> bool:
    """Whether a SQL block is one statement or more that DuckDB's parser takes (parsed only:
    nothing is bound, planned or run)."""
    import duckdb

    try:
        return len(_sql_parser().extract_statements(body)) > 0
    except (duckdb.Error, RuntimeError, ValueError):
        return False


_PARSERS = {"json": json_parses, "yaml": yaml_parses, "sql": sql_parses}


def parses(tag: str, body: str) -> bool:
    """Whether a block of a checked language parses."""
    if KINDS[tag] == "python":
        return python_parses(body)
    return _PARSERS[KINDS[tag]](body)


@cache
def principles() -> Principles:
    """The principles the code is held to (transforms/principles.toml)."""
    return load_principles()


def check_blocks(blocks: Sequence[tuple[str, str]], rules: Principles) -> list[BlockCheck]:
    """Each (tag, body) block's checks, in order; the Python blocks that compile are linted by
    one ruff process."""
    results: list[BlockCheck] = []
    compiled: list[int] = []
    for tag, body in blocks:
        if KINDS[tag] != "python":
            results.append(BlockCheck(parses(tag, body)))
        elif python_compiles(body):  # compiling parses: most blocks are parsed once
            compiled.append(len(results))
            results.append(BlockCheck(True, True))
        else:
            results.append(BlockCheck(python_parses(body)))
    linted = lint.lint([blocks[index][1] for index in compiled], rules)
    for index, found in zip(compiled, linted, strict=True):
        results[index] = BlockCheck(True, True, not found.errors, found.broken)
    return results


_FENCE = re.compile(FENCE)
_TAG = re.compile(TAG)


def text_blocks(text: str) -> list[tuple[str, str]]:
    """A text's fenced blocks as (tag, body): the twin of the SQL above, for engines without
    RE2 and lambdas (Spark runs it on its executors; the parity tests hold the two to the same
    counts). Python's ``re`` reads ``FENCE`` and ``TAG`` as RE2 does."""
    found = []
    for block in _FENCE.findall(text):
        first_line = block.split("\n", 1)[0]
        tag = _TAG.match(first_line)
        body = block[block.index("\n") + 1 : len(block) - 3]
        found.append((tag.group(1).lower() if tag else "", body))
    return found


@dataclass(frozen=True)
class TextChecks:
    """A text's row of ``code_checks`` but the response id."""

    counts: dict[str, int]
    principles_broken: list[str]
    constitutional_score: float


def text_checks(
    blocks: list[tuple[str, str]], checked: dict[tuple[str, str], BlockCheck], rules: Principles
) -> TextChecks:
    """A text's counts (``COUNTS``) and constitutional score from its blocks' checks (every
    checkable block of ``blocks`` is in ``checked``)."""
    counts = dict.fromkeys(COUNTS, 0)
    broken: set[str] = set()
    for tag, body in blocks:
        counts["code_blocks"] += 1
        kind = KINDS.get(tag)
        if kind is None:
            continue
        check = checked[tag, body]
        counts[f"{kind}_blocks"] += 1
        counts[f"{kind}_parsed"] += check.parsed
        if kind == "python":
            counts["python_compiled"] += check.compiled
            counts["python_clean"] += check.clean
            broken.update(check.broken)
    score = rules.score(broken) if counts["python_compiled"] else 0.0
    return TextChecks(counts, sorted(broken), score)


def code_checks(db: Any, inputs: dict[str, str]) -> tuple[str, dict[str, list[Any]]]:
    """The checks of the responses in ``inputs["responses"]`` (a table name or a parenthesised
    ``SELECT``) whose text holds a fence or a secret placeholder: a ``SELECT`` and its
    parameters (the check results, bound, never formatted in)."""
    rules = principles()
    db.execute(
        _BLOCKS.format(texts=TEXTS.format(responses=inputs["responses"])),
        {"fence": FENCE, "tag": TAG},
    )
    checkable = [
        (str(tag), str(body))
        for tag, body in db.execute(_CHECKABLE.format(checkable=_quoted(KINDS))).fetchall()
    ]
    results = check_blocks(checkable, rules)
    weights = rules.weights()
    parameters: dict[str, list[Any]] = {
        "tag": [tag for tag, _ in checkable],
        "body": [body for _, body in checkable],
        "parsed": [r.parsed for r in results],
        "compiled": [r.compiled for r in results],
        "clean": [r.clean for r in results],
        "broken": [",".join(r.broken) for r in results],
        "principle": list(weights),
        "weight": [str(weight) for weight in weights.values()],
    }
    counts = ", ".join(f"coalesce(c.{name}, 0)::INTEGER AS {name}" for name in COUNTS)
    select = CHECKS_SELECT.format(
        python=_quoted(PYTHON_TAGS),
        json=_quoted(JSON_TAGS),
        yaml=_quoted(YAML_TAGS),
        sql=_quoted(SQL_TAGS),
        counts=counts,
    )
    return select, parameters
