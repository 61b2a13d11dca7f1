"""Read-only SQL on the warehouse, for people (``flywheel sql``).

The file is opened read-only, so no statement can change it, and with DuckDB's external access
off and its configuration locked, so no statement can read or write a file, attach another
database or load an extension either: the warehouse holds pseudonyms and counts, never texts
(those stay in the lake), and a query here cannot reach further than the warehouse. A query
that does not parse, names what is not there or tries to write is one ``QueryError`` with
DuckDB's first line.

A read-only open shares the file with other readers (the console) but not with a writer: while
a transform run holds it, opening waits a little (``warehouse.db.BUSY_WAIT_S``), then says busy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flywheel.errors import NotFoundError, QueryError
from warehouse.db import BUSY_WAIT_S, retry_while_busy, warehouse_path

T = TypeVar("T")
FETCH = 1000
"""Rows fetched at a time from a result (a large one is streamed, never held whole)."""


@contextmanager
def read_only(data_dir: Path, *, busy_wait_s: float = BUSY_WAIT_S) -> Iterator[Any]:
    """A DuckDB connection on the warehouse that can read it and nothing else; closed at the
    end. No warehouse yet is a ``NotFoundError``."""
    import duckdb

    path = warehouse_path(data_dir)
    if not path.is_file():
        raise NotFoundError(f"there is no warehouse at {path} yet: run `flywheel transform run`")
    db = retry_while_busy(
        lambda: duckdb.connect(str(path), read_only=True), path=path, busy_wait_s=busy_wait_s
    )
    try:
        db.execute("SET enable_progress_bar = false")
        db.execute("SET enable_external_access = false")
        db.execute("SET lock_configuration = true")
        yield db
    finally:
        db.close()


@dataclass
class Result:
    """What a statement returned: its column names and a cursor to fetch its rows from (no
    columns: a statement that returns nothing, such as ``SET VARIABLE``)."""

    columns: list[str]
    cursor: Any

    def batches(self) -> Iterator[list[tuple[Any, ...]]]:
        """The rows, ``FETCH`` at a time; an error met while they are computed (DuckDB streams
        them) is a ``QueryError`` too."""
        if not self.columns:
            return
        while batch := _refused(lambda: self.cursor.fetchmany(FETCH)):
            yield batch


def statements(sql: str) -> list[str]:
    """The statements of ``sql`` (``;`` inside a string or a comment does not split), each as
    DuckDB's parser found it; SQL that does not parse is a ``QueryError``."""
    import duckdb

    try:
        return [statement.query for statement in duckdb.extract_statements(sql)]
    except duckdb.Error as exc:
        raise QueryError(_first_line(exc)) from None
    except (TypeError, UnicodeError):  # bytes that are not UTF-8, read as surrogates
        raise QueryError("the SQL is not valid UTF-8") from None


def execute(db: Any, statement: str) -> Result:
    """Run one statement on a connection from ``read_only``; DuckDB's refusal is a
    ``QueryError`` (a write says the warehouse is read-only here)."""
    cursor = _refused(lambda: db.execute(statement))
    columns = [column[0] for column in cursor.description or []]
    return Result(columns, cursor)


def tables(db: Any) -> list[tuple[str, int, int]]:
    """Every table of the warehouse: (name, columns, rows), by name."""
    found = db.execute(
        "SELECT table_name, column_count, estimated_size FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'main' ORDER BY table_name"
    ).fetchall()
    return [(name, int(columns), int(rows)) for name, columns, rows in found]


def _refused(call: Callable[[], T]) -> T:
    """``call()`` (a statement run, or its rows fetched) with DuckDB's refusal as a
    ``QueryError`` (a write says the warehouse is read-only here), and Ctrl-C, which DuckDB
    turns into a ``RuntimeError``, as the ``KeyboardInterrupt`` it was."""
    import duckdb

    try:
        return call()
    except duckdb.Error as exc:
        message = _first_line(exc)
        if "read-only mode" in message:
            message = f"flywheel sql only reads the warehouse ({message})"
        raise QueryError(message) from None
    except RuntimeError as exc:
        if "interrupted" in str(exc).lower():
            raise KeyboardInterrupt from None
        raise


def _first_line(exc: Exception) -> str:
    message = str(exc).strip()
    return message.splitlines()[0][:500] if message else type(exc).__name__
