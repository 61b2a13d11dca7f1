"""``flywheel sql``: read-only queries on the warehouse, given with ``--query``, piped on standard
input, or typed at a prompt; the results as a table, CSV or JSON lines.

At the prompt a statement runs when a line ends it with ``;`` (it may span lines); a mistake is
one red line and the prompt stays. ``.tables`` lists the tables, ``.schema NAME`` a table's
columns, ``.quit`` (or Ctrl-D) leaves, Ctrl-C drops the statement being typed. Everything runs on
``warehouse.query.read_only``: nothing a person types can change the warehouse.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, TextIO
from uuid import UUID

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flywheel.errors import QueryError
from warehouse.query import Result, execute, statements, tables

PROMPT = "flywheel> "
MORE = "     ...> "
HELP = (
    "end a statement with ; to run it; .tables lists the tables, .schema NAME a table's columns, "
    ".quit leaves"
)


class Format(StrEnum):
    """How results are written."""

    table = "table"
    csv = "csv"
    json = "json"


def _plain(value: Any) -> Any:
    """A value as JSON has it: times as ISO 8601, decimals as numbers, NaN and infinities as
    null (JSON has neither), UUIDs and intervals as text, lists and structs kept."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID | timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def write_result(
    result: Result, form: Format, *, out: Console, stream: TextIO, max_rows: int
) -> int:
    """Write a statement's rows (a table shows at most ``max_rows`` and says how many more there
    were; CSV and JSON lines write them all, streamed); returns how many rows there were."""
    if not result.columns:
        return 0
    batches = result.batches()
    if form is Format.csv:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(result.columns)
        count = 0
        for batch in batches:
            writer.writerows(_plain(row) for row in batch)
            count += len(batch)
        return count
    if form is Format.json:
        count = 0
        for batch in batches:
            for row in batch:
                record = dict(zip(result.columns, map(_plain, row), strict=True))
                stream.write(json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
            count += len(batch)
        return count
    table = Table(show_edge=False)
    for column in result.columns:
        table.add_column(escape(column))
    count = 0
    for batch in batches:
        for row in batch[: max(max_rows - count, 0)]:
            table.add_row(*("NULL" if v is None else escape(str(_plain(v))) for v in row))
        count += len(batch)
    out.print(table)
    shown = min(count, max_rows)
    more = f", {count - shown:,} not shown: --max-rows, or --format csv" if shown < count else ""
    out.print(f"({count:,} row{'' if count == 1 else 's'}{more})", style="dim")
    return count


def run_script(
    db: Any, sql: str, form: Format, *, out: Console, stream: TextIO, max_rows: int
) -> None:
    """Run every statement of ``sql`` in order; the first that fails stops the rest
    (``QueryError``)."""
    for statement in statements(sql):
        write_result(execute(db, statement), form, out=out, stream=stream, max_rows=max_rows)


def _command(db: Any, line: str, out: Console) -> bool:
    """A dot command at the prompt; False when it asks to leave."""
    word, _, argument = line.partition(" ")
    if word in (".quit", ".exit"):
        return False
    if word == ".tables":
        table = Table(show_edge=False)
        for column in ("table", "columns", "rows (estimate)"):
            table.add_column(column, justify="left" if column == "table" else "right")
        for name, columns, rows in tables(db):
            table.add_row(escape(name), str(columns), f"{rows:,}")
        out.print(table)
    elif word == ".schema" and argument.strip():
        found = db.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = $name AND table_catalog = current_database() "
            "ORDER BY ordinal_position",
            {"name": argument.strip()},
        ).fetchall()
        if not found:
            raise QueryError(f"no table named {argument.strip()} (.tables lists them)")
        table = Table(show_edge=False)
        for column in ("column", "type", "null"):
            table.add_column(column)
        for name, kind, nullable in found:
            table.add_row(escape(name), kind, "yes" if nullable == "YES" else "no")
        out.print(table)
    else:
        raise QueryError(f"unknown command {word}: {HELP}")
    return True


def prompt(
    db: Any,
    read: Callable[[str], str],
    form: Format,
    *,
    out: Console,
    stream: TextIO,
    max_rows: int,
    on_error: Callable[[QueryError], None],
) -> None:
    """The interactive prompt: lines from ``read`` (``input``, which raises ``EOFError`` at
    the end) until ``.quit`` or the end; a failed statement goes to ``on_error`` and the prompt
    goes on."""
    buffer: list[str] = []
    while True:
        try:
            line = read(MORE if buffer else PROMPT)
        except EOFError:
            return
        except KeyboardInterrupt:
            buffer.clear()  # Ctrl-C drops what was typed, as psql does
            out.print()
            continue
        try:
            if not buffer and line.strip().startswith("."):
                if not _command(db, line.strip(), out):
                    return
                continue
            buffer.append(line)
            text = "\n".join(buffer)
            if not text.rstrip().endswith(";"):
                if not text.strip():
                    buffer.clear()
                continue
            buffer.clear()
            run_script(db, text, form, out=out, stream=stream, max_rows=max_rows)
        except QueryError as exc:
            on_error(exc)
        except KeyboardInterrupt:  # Ctrl-C while a statement runs: it stops, the prompt stays
            on_error(QueryError("interrupted"))
