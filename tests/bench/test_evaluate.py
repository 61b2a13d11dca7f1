"""bench.evaluate at a tiny size: it sets up two versions, evaluates the latest and writes its
figures beside the goal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_tiny_run_times_the_evaluation_and_its_parts(tmp_path: Path) -> None:
    out = tmp_path / "evaluate.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.evaluate", "--events", "3000", "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert doc["goal_s"] == 60 and doc["train_pairs"] > 0 and doc["fits"] >= 1
    assert all(doc[k] > 0 for k in ("read_s", "encode_s", "fit_s", "whole_s"))
    assert set(doc["accuracies"]) == {"test", "ab_choice"}
    assert len(doc["ablations"]) == doc["fits"] - 1
    assert all(set(found) == {"test", "ab_choice"} for found in doc["ablations"].values())
    assert "the whole evaluation, with ablations" in done.stdout
