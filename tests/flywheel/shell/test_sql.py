"""``flywheel sql``: read-only queries given with --query, piped in, or typed at the prompt,
as a table, CSV or JSON lines; a mistake is one red line (exit code 2), and at the prompt the
prompt stays."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from flywheel.errors import QueryError
from flywheel.shell.sql import Format, prompt
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.lake import query
from warehouse.query import read_only

BY_SIGNAL = (
    "SELECT signal, count(*) AS pairs FROM (SELECT unnest(signals) AS signal "
    "FROM preference_pairs) GROUP BY signal ORDER BY signal"
)


def test_a_query_as_a_table_csv_and_json_lines(data_dir: Path) -> None:
    expected = query(data_dir, BY_SIGNAL)
    assert len(expected) > 1

    shown = flywheel("sql", "--query", BY_SIGNAL, env=env(data_dir))
    assert shown.returncode == 0, shown.stderr
    for signal, pairs in expected:
        assert any(signal in line and f"{pairs:,}" in line for line in shown.stdout.splitlines())
    assert f"({len(expected)} rows)" in shown.stdout

    as_csv = flywheel("sql", "-q", BY_SIGNAL, "--format", "csv", env=env(data_dir))
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows == [["signal", "pairs"], *([s, str(n)] for s, n in expected)]

    as_json = flywheel("sql", "-q", BY_SIGNAL, "--format", "json", env=env(data_dir))
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert records == [{"signal": s, "pairs": n} for s, n in expected]


def test_a_table_shows_max_rows_and_says_how_many_more(data_dir: Path) -> None:
    [(labels,)] = query(data_dir, "SELECT count(*) FROM labels")
    shown = flywheel("sql", "-q", "SELECT * FROM labels", "--max-rows", "3", env=env(data_dir))
    assert shown.returncode == 0, shown.stderr
    assert f"({labels:,} rows, {labels - 3:,} not shown" in shown.stdout
    assert sum(line.startswith(" resp_") for line in shown.stdout.splitlines()) == 3
    every = flywheel("sql", "-q", "SELECT * FROM labels", "--format", "csv", env=env(data_dir))
    assert len(every.stdout.splitlines()) == labels + 1  # csv writes them all


def test_statements_piped_in_run_in_order(data_dir: Path) -> None:
    piped = subprocess.run(
        [sys.executable, "-m", "flywheel", "sql", "--format", "json"],
        input="SELECT 1 AS a;\nSELECT ';' AS b;\n",
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, **env(data_dir)},
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines() == ['{"a": 1}', '{"b": ";"}']


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("DELETE FROM labels", "only reads the warehouse"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM read_csv('/etc/hostname')", "disabled by configuration"),
    ],
)
def test_a_bad_statement_is_one_line_and_exit_code_2(
    data_dir: Path, sql: str, fragment: str
) -> None:
    before = query(data_dir, "SELECT count(*) FROM labels")
    assert_one_line_error(flywheel("sql", "-q", sql, env=env(data_dir)), fragment, code=2)
    assert query(data_dir, "SELECT count(*) FROM labels") == before


def test_no_warehouse_is_exit_code_6(tmp_path: Path) -> None:
    missing = flywheel("sql", "-q", "SELECT 1", env=env(tmp_path / "data"))
    assert_one_line_error(missing, "flywheel transform run", code=6)


def test_the_prompt_runs_statements_across_lines_and_survives_a_mistake(data_dir: Path) -> None:
    typed = iter(
        [
            "SELECT count(*)",
            "  AS n FROM labels;",
            "SELECT * FROM nowhere;",
            ".schema labels",
            ".tables",
            ".nonsense",
            "",
            ".quit",
            "SELECT 'never run' AS x;",
        ]
    )
    prompts: list[str] = []

    def read(shown: str) -> str:
        prompts.append(shown)
        return next(typed)

    errors: list[QueryError] = []
    console = Console(file=io.StringIO(), width=200)
    stream = io.StringIO()
    with read_only(data_dir) as db:
        prompt(db, read, Format.json, out=console, stream=stream, max_rows=10,
               on_error=errors.append)  # fmt: skip

    [(labels,)] = query(data_dir, "SELECT count(*) FROM labels")
    assert stream.getvalue().splitlines() == [json.dumps({"n": labels})]
    assert prompts[:2] == ["flywheel> ", "     ...> "]  # the statement went on
    assert len(prompts) == 8  # nothing read after .quit
    assert [type(e) for e in errors] == [QueryError, QueryError]
    assert "nowhere" in str(errors[0])
    assert "unknown command .nonsense" in str(errors[1])
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    assert "confidence" in printed and "DOUBLE" in printed  # .schema labels
    assert "preference_pairs" in printed  # .tables


def test_the_prompt_on_a_terminal(data_dir: Path) -> None:
    controller, terminal = pty.openpty()
    session = subprocess.Popen(
        [sys.executable, "-m", "flywheel", "sql"],
        stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env(data_dir), "COLUMNS": "200"},
    )  # fmt: skip
    os.close(terminal)
    os.write(controller, b"SELECT 40 + 2\n  AS answer;\nDELETE FROM labels;\n.quit\n")
    stdout, stderr = session.communicate(timeout=300)
    os.close(controller)
    assert session.returncode == 0, stderr
    assert "42" in stdout
    assert "only reads the warehouse" in stderr  # the mistake, and the prompt went on
    assert query(data_dir, "SELECT count(*) FROM labels")[0][0] > 0


def test_json_lines_hold_every_value_as_json_can(data_dir: Path) -> None:
    sql = (
        "SELECT 'nan'::DOUBLE AS nan, 'inf'::DOUBLE AS inf, [1.5, 'nan'::DOUBLE] AS list, "
        "'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS uuid, INTERVAL 1 DAY AS span"
    )
    shown = flywheel("sql", "-q", sql, "--format", "json", env=env(data_dir))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout, parse_constant=pytest.fail) == {
        "nan": None, "inf": None, "list": [1.5, None],
        "uuid": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "span": "1 day, 0:00:00",
    }  # fmt: skip


def test_an_error_met_while_the_rows_stream_is_one_line(data_dir: Path) -> None:
    late = "SELECT CASE WHEN range > 100000 THEN error('boom') ELSE range END FROM range(200000)"
    for form in ("table", "csv", "json"):
        result = flywheel("sql", "-q", late, "--format", form, env=env(data_dir))
        assert_one_line_error(result, "boom", code=2)


def test_sql_that_is_not_utf8_is_one_line(data_dir: Path) -> None:
    piped = subprocess.run(
        [sys.executable, "-m", "flywheel", "sql"], input=b"\xff\xfe SELECT 1;",
        capture_output=True, timeout=300, check=False, env={**os.environ, **env(data_dir)},
    )  # fmt: skip
    assert piped.returncode == 2, piped.stderr
    assert b"Traceback" not in piped.stderr
    assert b"not valid UTF-8" in piped.stderr


def test_ctrl_c_stops_the_statement_and_the_prompt_stays(data_dir: Path) -> None:
    typed = iter(["SELECT 1 AS a;", "SELECT 2 AS b;"])
    calls: list[str] = []

    def read(_: str) -> str:
        line = next(typed, None)
        if line is None:
            raise EOFError
        return line

    def interrupted(*args: object, **kwargs: object) -> None:
        calls.append("run")
        if len(calls) == 1:
            raise KeyboardInterrupt

    errors: list[QueryError] = []
    with read_only(data_dir) as db, pytest.MonkeyPatch.context() as patched:
        patched.setattr("flywheel.shell.sql.run_script", interrupted)
        prompt(db, read, Format.json, out=Console(file=io.StringIO()), stream=io.StringIO(),
               max_rows=10, on_error=errors.append)  # fmt: skip
    assert calls == ["run", "run"]  # the second statement still ran
    assert [str(e) for e in errors] == ["interrupted"]
