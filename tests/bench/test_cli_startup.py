"""The CLI start-up benchmark: it measures every command line the CLI has, and reads its figures
the way `make bench` does. Whether the goal is met is the benchmark's to say, not a test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.all import cli_startup_rows
from bench.cli_startup import command_paths

ROOT = Path(__file__).resolve().parents[2]


def test_every_command_line_is_found_in_the_cli() -> None:
    paths = command_paths()
    assert [] in paths  # flywheel --help itself
    for expected in (["export", "run"], ["kafka", "local", "start"], ["serve"], ["demo"]):
        assert expected in paths
    assert len(paths) == len({tuple(path) for path in paths})


@pytest.mark.slow
def test_a_run_measures_each_command_line_against_the_limit(tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.cli_startup", "--repeats", "1", "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    doc = json.loads(out.read_text())
    assert done.returncode == (0 if doc["goal_met"] else 1), done.stdout + done.stderr
    commands = doc["commands"]
    assert set(commands) == {" ".join(["flywheel", *p, "--help"]) for p in command_paths()}
    assert all(seconds > 0 for seconds in [*commands.values(), *doc["floors"].values()])
    assert doc["slowest"]["seconds"] == max(commands.values())
    assert doc["goal_met"] == (max(commands.values()) < doc["limit_seconds"] == 0.3)
    assert doc["costliest_imports"], "the slowest command's imports are named"
    verdict = "met" if doc["goal_met"] else "NOT met"
    assert f"against the limit 0.30 s: goal {verdict}" in done.stdout

    [row] = cli_startup_rows(doc)
    assert doc["slowest"]["command"] in row[0] and "limit 0.30 s" in row[2]
    assert row[4].startswith("< 0.3 s") and ("NOT met" in row[4]) == (not doc["goal_met"])
