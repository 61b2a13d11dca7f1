"""Reading the warehouse for a page: the file attached read-only for the request, then detached.

DuckDB lets one process write a database file or any number of processes read it, never both.
A connection the console kept open would stop every ``flywheel transform run`` and export, so
the file is attached read-only only while pages read it: requests at the same time share one
attachment, and the last to finish detaches it, which releases the file. Creating a DuckDB
instance costs 30 to 100 ms on a busy machine, attaching a file a few, so the process keeps one
in-memory instance and attaches to it; each request reads through a cursor of its own. While a
writer holds the file (a transform run, an export, an erasure), pages answer "busy" instead of
waiting (``WarehouseBusyError``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from flywheel.errors import FlywheelError, WarehouseBusyError, WarehouseError
from warehouse.db import head_revision, warehouse_path

T = TypeVar("T")

MODEL_TABLES = ("responses", "preference_pairs", "labels", "signal_calibration", "signal_days")
"""What the pages read besides the loader's tables; built by the first transform run (a
warehouse built before a model existed gets it from the next run)."""


class NoWarehouseError(WarehouseError):
    """There is no warehouse yet, or no transform run has built its models."""


@cache
def _head() -> str:
    return head_revision()


def _translate(exc: Exception, path: Path) -> WarehouseError:
    message = str(exc)
    lowered = message.lower()
    if ("lock" in lowered and ("conflicting" in lowered or "could not set" in lowered)) or (
        "unique file handle conflict" in lowered
    ):
        # Another process writes the file, or this one does (an erasure in the API process).
        return WarehouseBusyError(
            "the warehouse is being written (a transform run, an export or an erasure); "
            "try again in a moment"
        )
    first = message.splitlines()[0] if message else type(exc).__name__
    return WarehouseError(f"could not read the warehouse: {first[:300]}")


class _Attachments:
    """One in-memory DuckDB instance per process, and the warehouse files attached to it with
    how many requests use each."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db: Any = None
        self._attached: dict[str, tuple[str, int]] = {}
        self._count = 0

    def prepare(self) -> None:
        """Create the instance now (when the console is built), not on the first page."""
        import duckdb

        with self._lock:
            if self._db is None:
                self._db = duckdb.connect(":memory:")
                self._db.execute("SET enable_progress_bar = false")

    def acquire(self, path: Path) -> tuple[Any, str]:
        """A cursor of its own for a request, with ``path`` attached read-only and in use."""
        self.prepare()
        key = str(path)
        with self._lock:
            if key not in self._attached:
                self._count += 1
                alias = f"warehouse_{self._count}"
                quoted = key.replace("'", "''")
                self._db.execute(f"ATTACH '{quoted}' AS {alias} (READ_ONLY)")
                self._attached[key] = (alias, 0)
            alias, users = self._attached[key]
            self._attached[key] = (alias, users + 1)
            cursor = self._db.cursor()
        return cursor, alias

    def release(self, path: Path) -> None:
        """The request is done; the last one out detaches the file."""
        key = str(path)
        with self._lock:
            alias, users = self._attached[key]
            if users > 1:
                self._attached[key] = (alias, users - 1)
                return
            del self._attached[key]
            self._db.execute(f"DETACH {alias}")


_ATTACHMENTS = _Attachments()


def prepare() -> None:
    """Create the process's DuckDB instance ahead of the first page (30 to 100 ms)."""
    _ATTACHMENTS.prepare()


def state(data_dir: Path) -> tuple[int, ...]:
    """What changes whenever anything writes the warehouse: the file's and its write-ahead
    log's modification times and sizes (every transform run, export's read excepted, and
    erasure writes one or the other; a read-only attachment writes neither)."""
    path = warehouse_path(data_dir)
    found: list[int] = []
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            stat = file.stat()
        except FileNotFoundError:
            found += [0, 0]
        else:
            found += [stat.st_mtime_ns, stat.st_size]
    return tuple(found)


class Memo:
    """Results of the heavy reads (the overview's counts, the signals' aggregates, the
    difference of two versions) kept while what they were read from is unchanged: keyed by the
    warehouse's ``state`` (or a version pair, immutable), at most ``size`` of them."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._found: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._found.get(key)

    def put(self, key: tuple[Any, ...], value: T) -> T:
        with self._lock:
            if len(self._found) >= self._size:
                self._found.pop(next(iter(self._found)))
            self._found[key] = value
        return value


@contextmanager
def reading(data_dir: Path) -> Iterator[Any]:
    """A read-only DuckDB cursor on the warehouse, at the code's schema revision and with the
    model tables built; released at the end. DuckDB's errors come out as the platform's."""
    import duckdb

    path = warehouse_path(data_dir)
    if not path.is_file():
        raise NoWarehouseError("there is no warehouse yet: run `flywheel transform run`")
    try:
        db, alias = _ATTACHMENTS.acquire(path)
    except duckdb.Error as exc:
        raise _translate(exc, path) from None
    try:
        db.execute(f"USE {alias}")
        tables = {
            name
            for (name,) in db.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = $db", {"db": alias}
            ).fetchall()
        }
        revision = (
            db.execute("SELECT version_num FROM alembic_version").fetchone()
            if "alembic_version" in tables
            else None
        )
        if revision is None or revision[0] != _head():
            raise NoWarehouseError(
                "the warehouse is not at this version's schema: run `flywheel db upgrade`"
            )
        missing = [table for table in MODEL_TABLES if table not in tables]
        if missing:
            raise NoWarehouseError(
                f"the warehouse has no {', '.join(missing)} yet: run `flywheel transform run`"
            )
        yield db
    except FlywheelError:
        raise
    except duckdb.Error as exc:
        raise _translate(exc, path) from None
    finally:
        db.close()
        _ATTACHMENTS.release(path)
