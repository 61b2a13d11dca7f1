"""What an erasure test looks for: the simulated users, where their pseudonyms remain, and an
erasure's status once it is done."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.settings import Settings
from tests.factories import WRITE_KEY
from tests.helpers.datasets import ADMIN_KEY
from warehouse.lake import Lake


def heavy_users(count: int = 3) -> list[str]:
    """Raw ids of the simulated users with the most events (the fixture's traffic)."""
    events = simulate(SimulationConfig(events=12_000, seed=11, ab_rate=0.2))
    return [user for user, _ in Counter(e["user_id"] for e in events).most_common(count)]


def lake_users(data_dir: Path) -> Counter[str]:
    """Rows per user pseudonym in the lake."""
    files = [f.path for f in Lake.in_data_dir(data_dir).files()]
    return Counter(pl.concat([pl.read_parquet(f, columns=["user_pseudonym"]) for f in files])
                   ["user_pseudonym"].to_list())  # fmt: skip


def warehouse_hits(data_dir: Path, users: set[str]) -> dict[str, int]:
    """Rows per table that name the users (or a conversation of theirs, or a response of it)."""
    hits = {}
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        tables = [t for (t,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        for table in tables:
            columns = {c for (c,) in db.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = $t", {"t": table}
            ).fetchall()}  # fmt: skip
            if "user_pseudonym" in columns:
                [(n,)] = db.execute(
                    f"SELECT count(*) FROM {table} WHERE user_pseudonym IN (SELECT unnest($u))",
                    {"u": sorted(users)},
                ).fetchall()
                hits[table] = n
    return hits


def dataset_users(version_dir: Path) -> set[str]:
    """The (re-keyed) users of a published version's files."""
    files = sorted((version_dir / "data").rglob("*.parquet"))
    return set(pl.concat([pl.read_parquet(f, columns=["user"]) for f in files])["user"])


def settings_for(data_dir: Path, **more: Any) -> Settings:
    """Settings of ``data_dir`` with the key file beside it, and ``more``."""
    return Settings(
        data_dir=data_dir, privacy={"hmac_key_file": data_dir.parent / "keys.json"}, **more
    )


API_KEYS = {"write_keys": [WRITE_KEY], "admin_keys": [ADMIN_KEY]}
"""The ``api`` settings of an API that takes events and erasure requests."""


def wait_for(get: Callable[[], dict[str, Any]], *, seconds: float = 120) -> dict[str, Any]:
    """Poll an erasure's status until it is no longer pending; the last status."""
    deadline = time.monotonic() + seconds
    while (found := get())["status"] == "pending":
        assert time.monotonic() < deadline, f"still pending after {seconds} s: {found}"
        time.sleep(0.1)
    return found
