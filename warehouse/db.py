"""Opening the DuckDB warehouse: one file, migrated to the code's schema before anything else.

``open_warehouse`` migrates to the alembic head first (or, with ``migrate=False``, refuses with a
message saying what to run), and translates DuckDB's errors in one place: the single-writer
lock becomes ``WarehouseBusyError``, the rest ``WarehouseError``.

DuckDB lets one process write the file, or any number read it, never both. Most holders keep it
for milliseconds: a console page reading, a reviewer's verdict being written. So opening waits
for the file a little (``busy_wait_s``, trying again every 50 ms up to every 500 ms) before it
says busy: a scheduled transform run or export that starts while a page is read then waits for
the page instead of failing. A holder that keeps the file longer (another run) still makes the
opener say busy, after the wait.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from alembic.ddl.impl import DefaultImpl

from flywheel.errors import FlywheelError, WarehouseBusyError, WarehouseError
from flywheel.files import packaged

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine


class AlembicDuckDBImpl(DefaultImpl):
    """Lets alembic talk to DuckDB (duckdb_engine's documented recipe); registered on import."""

    __dialect__ = "duckdb"
    # DuckDB runs DDL in transactions, so a failed migration leaves nothing half-done.
    transactional_ddl = True


T = TypeVar("T")
WAREHOUSE_FILE = "warehouse.duckdb"
BUSY_WAIT_S = 5.0
"""How long ``open_warehouse`` waits for a file another process holds before saying busy."""


def migrations_folder() -> Path:
    """The installed ``migrations`` package's folder (alembic reads its scripts as files)."""
    return packaged("migrations", "")


def warehouse_path(data_dir: Path) -> Path:
    """The warehouse file of a data directory."""
    return data_dir / WAREHOUSE_FILE


def warehouse_url(data_dir: Path) -> str:
    """The SQLAlchemy URL of the warehouse."""
    return f"duckdb:///{warehouse_path(data_dir)}"


def alembic_config(*, url: str | None = None, connection: Connection | None = None) -> Config:
    """alembic's configuration for the warehouse, bound to a URL or an open connection."""
    from alembic.config import Config

    # No ini file: the installed package has none beside it, and nothing here needs one.
    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision the code expects; refuses if the migrations have more than one head."""
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise WarehouseError(f"the migrations have {len(heads)} heads ({', '.join(heads)})")
    return str(heads[0])


def current_revision(connection: Connection) -> str | None:
    """The revision the warehouse is at (None for a new, empty warehouse)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def translate(exc: Exception, *, path: Path, action: str) -> WarehouseError:
    """DuckDB's error as the platform's: the write lock held elsewhere means busy."""
    message = str(exc)
    # Another process holds the file ("Conflicting lock"), or this process reads it (the web
    # console attaches it read-only while a page reads: "Unique file handle conflict").
    if ("lock" in message.lower() and ("conflicting" in message or "Could not set" in message)) or (
        "unique file handle conflict" in message.lower()
    ):
        return WarehouseBusyError(
            f"the warehouse {path} is in use by another process (another transform run or a "
            "shell holding it); wait for it to finish and run again"
        )
    first = message.splitlines()[0] if message else type(exc).__name__
    return WarehouseError(f"could not {action} the warehouse {path}: {first[:300]}")


def _quiet(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("SET enable_progress_bar = false")


def _is_busy(exc: Exception, path: Path) -> bool:
    return isinstance(translate(exc, path=path, action="open"), WarehouseBusyError)


def retry_while_busy(attempt: Callable[[], T], *, path: Path, busy_wait_s: float) -> T:
    """``attempt()`` (opening ``path``), tried again every 50 ms up to every 500 ms while
    another process holds the file, for up to ``busy_wait_s`` seconds; then, or on any other
    error, the error translated (``WarehouseBusyError`` for the lock)."""
    deadline = time.monotonic() + busy_wait_s
    pause = 0.05
    while True:
        try:
            return attempt()
        except Exception as exc:
            if not _is_busy(exc, path) or time.monotonic() + pause > deadline:
                raise translate(exc, path=path, action="open") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def open_warehouse(
    data_dir: Path, *, migrate: bool = True, busy_wait_s: float = BUSY_WAIT_S
) -> Engine:
    """An engine on the warehouse, migrated to the head revision (or refusing if ``migrate`` is
    off and it is not there). While another process holds the file, tries again for up to
    ``busy_wait_s`` seconds, then raises ``WarehouseBusyError``."""
    from alembic import command
    from sqlalchemy import create_engine, event, pool

    path = warehouse_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One connection, reused: DuckDB has one writer per file, and the pool would open more.
    engine = create_engine(warehouse_url(data_dir), poolclass=pool.SingletonThreadPool)
    # DuckDB draws a progress bar on the terminal for long queries: not in our output.
    event.listen(engine, "connect", _quiet)
    head = head_revision()
    try:
        # The first connection takes the file's lock (kept while the engine lives).
        retry_while_busy(lambda: engine.connect().close(), path=path, busy_wait_s=busy_wait_s)
    except WarehouseError:
        engine.dispose()
        raise
    try:
        with engine.begin() as connection:
            current = current_revision(connection)
            if current != head:
                if not migrate:
                    raise WarehouseError(
                        f"the warehouse {path} is at revision {current or 'none'} but this "
                        f"version needs {head}: run `flywheel db upgrade`"
                    )
                command.upgrade(alembic_config(connection=connection), "head")
    except WarehouseError:
        engine.dispose()
        raise
    except Exception as exc:
        engine.dispose()
        raise translate(exc, path=path, action="open") from None
    return engine


COMPACTING_PREFIX = ".compacting-"


def compact(db: Any, path: Path) -> None:
    """Rewrite the warehouse file ``path`` that ``db`` (a read-write DuckDB connection, outside
    any transaction) has open with its live data only.

    DuckDB marks deleted rows and freed blocks as free space but leaves their bytes in the file
    until they are reused, so an erased user's ids stay readable in it. ``COPY FROM DATABASE``
    into a new file carries tables, views, sequences (at their current values), constraints
    and the alembic revision, and none of those bytes; the copy is flushed and renamed over the
    original while ``db`` still holds the original's lock, so no writer comes in between. ``db``
    must do nothing after this: it still reads the old file, which the rename unlinked.
    """
    import duckdb

    from warehouse.lake import Lake

    [(name,)] = db.execute("SELECT current_database()").fetchall()
    copy = path.with_name(COMPACTING_PREFIX + path.name)
    for stale in (copy, copy.with_name(copy.name + ".wal")):
        stale.unlink(missing_ok=True)  # from a compaction a crash cut off
    db.execute("CHECKPOINT")
    db.execute(f"ATTACH '{_quoted(copy)}' AS flywheel_compacted")
    try:
        db.execute(f'COPY FROM DATABASE "{name}" TO flywheel_compacted')
    finally:
        db.execute("DETACH flywheel_compacted")
    if copy.with_name(copy.name + ".wal").exists():  # DETACH checkpoints: this is a bug
        raise duckdb.Error(f"the compacted copy {copy} kept a write-ahead log")
    with open(copy, "rb+") as handle:
        os.fsync(handle.fileno())
    Lake.publish(copy, path)  # the rename, and the folder's fsync


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def table_names(db: Any) -> set[str]:
    """The tables of a DuckDB connection's databases (the warehouse's, and any attached)."""
    return {name for (name,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def raw(connection: Connection) -> Any:
    """The DuckDB connection under a SQLAlchemy connection (for DuckDB-only SQL and parameters)."""
    return connection.connection.driver_connection


@contextmanager
def connected(data_dir: Path, *, action: str) -> Iterator[Any]:
    """The raw DuckDB connection of the (migrated) warehouse for one piece of work; DuckDB's
    errors come out as ``WarehouseError`` saying what could not be done (``action``)."""
    engine = open_warehouse(data_dir)
    try:
        with engine.connect() as connection:
            yield raw(connection)
    except FlywheelError:
        raise
    except Exception as exc:
        raise translate(exc, path=warehouse_path(data_dir), action=action) from None
    finally:
        engine.dispose()
