"""bench.plan at a tiny size: it builds a lake, times full runs and plans, and writes the ratio
beside the goal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_tiny_run_times_the_plan_beside_a_full_run(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.plan", "--events", "3000", "--repeats", "1",
         "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    [plan], [full] = doc["plan"], doc["full"]
    assert doc["ratio"] == pytest.approx(plan["seconds"] / full["seconds"])
    assert set(plan["parts"]) == {"copy", "run", "compare", "dataset"}
    assert all(mode == "full" for mode, *_ in plan["models"].values())  # another policy
    assert plan["rows_next"] > 0
    assert "(goal: at most 2.0)" in done.stdout
