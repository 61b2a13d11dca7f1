"""``warehouse.query``: a connection that reads the warehouse and can do nothing else."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from flywheel.errors import NotFoundError, QueryError, WarehouseBusyError
from warehouse.db import open_warehouse, warehouse_path
from warehouse.query import execute, read_only, statements, tables

HOLDER = """
import sys, duckdb
db = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
db.close()
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM labels",
        "INSERT INTO transform_runs (run_id, started_at, full_refresh, status) "
        "VALUES ('x', now(), false, 'succeeded')",
        "CREATE TABLE mine AS SELECT 1",
        "DROP TABLE labels",
    ],
)
def test_a_statement_that_writes_is_refused_and_the_file_is_unchanged(
    data_dir: Path, statement: str
) -> None:
    before = digest(warehouse_path(data_dir))
    with read_only(data_dir) as db, pytest.raises(QueryError, match="only reads the warehouse"):
        execute(db, statement)
    assert digest(warehouse_path(data_dir)) == before


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('{outside}')",
        "COPY labels TO '{outside}'",
        "ATTACH '{outside}' AS other",
        "SET enable_external_access = true",
        "INSTALL httpfs",
    ],
)
def test_a_statement_cannot_reach_a_file_or_unlock_the_connection(
    data_dir: Path, tmp_path: Path, statement: str
) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    with read_only(data_dir) as db, pytest.raises(QueryError):
        execute(db, statement.format(outside=outside))
    assert outside.read_text() == "a\n1\n"


def test_a_query_reads_what_the_warehouse_holds(data_dir: Path) -> None:
    engine = open_warehouse(data_dir)
    with engine.connect() as connection:
        [(expected,)] = connection.exec_driver_sql("SELECT count(*) FROM labels").fetchall()
    engine.dispose()
    with read_only(data_dir) as db:
        result = execute(db, "SELECT count(*) AS n FROM labels")
        assert result.columns == ["n"]
        assert [row for batch in result.batches() for row in batch] == [(expected,)]
        names = [name for name, _, _ in tables(db)]
    assert {"labels", "preference_pairs", "rewards", "transform_runs"} <= set(names)
    assert names == sorted(names)


def test_statements_split_on_semicolons_outside_strings_and_comments() -> None:
    found = statements("SELECT ';' AS a; -- a comment; still one\nSELECT 2;")
    assert len(found) == 2
    assert "';'" in found[0]
    with pytest.raises(QueryError, match="syntax error"):
        statements("SELEC 1")


def test_no_warehouse_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="flywheel transform run"), read_only(tmp_path):
        pass


def test_a_warehouse_being_written_is_busy_after_the_wait(data_dir: Path) -> None:
    # Another process holds the file read-write, as a transform run does.
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(warehouse_path(data_dir))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "holding\n"
        with pytest.raises(WarehouseBusyError), read_only(data_dir, busy_wait_s=0.2):
            pass
    finally:
        writer.communicate("", timeout=60)
    with read_only(data_dir) as db:  # free again
        assert execute(db, "SELECT 1").columns
