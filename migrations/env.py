"""alembic environment: migrates the DuckDB warehouse through duckdb_engine.

The URL is given by ``warehouse.db`` (from the settings) as the ``url`` attribute of the
alembic config, or falls back to the settings here when alembic runs from the command line.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from flywheel.settings import get_settings
from warehouse.db import warehouse_url  # also registers alembic's DuckDB dialect support
from warehouse.schema import metadata


def _url() -> str:
    url = context.config.attributes.get("url")
    return str(url) if url else warehouse_url(get_settings().data_dir)


def run_migrations_offline() -> None:
    """Emit SQL instead of running it (``alembic upgrade --sql``)."""
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the warehouse (on the caller's connection when given one)."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
