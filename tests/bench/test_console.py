"""bench.console at a tiny size: it sets up two versions, serves them, times every page and
writes its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.console import PAGES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_tiny_run_times_every_page(tmp_path: Path) -> None:
    out = tmp_path / "console.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.console", "--events", "3000", "--repeats", "2",
         "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert doc["events"] > 0 and doc["pairs"] > 0 and doc["goal_ms"] == 300
    assert set(PAGES) < set(doc["timings"])
    for runs in doc["timings"].values():
        assert len(runs["first"]) == 1 and len(runs["cold"]) == 2 and len(runs["warm"]) == 2
        assert all(ms > 0 for kind in runs.values() for ms in kind)
    for name in PAGES:
        assert f"\n{name} " in done.stdout
