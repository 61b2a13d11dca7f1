"""The constitutional level's benchmark: a tiny run measures every step against compile, with
one ruff process for the whole batch. The figures are the benchmark's to report, not a test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.constitution import corpus

ROOT = Path(__file__).resolve().parents[2]


def test_the_corpus_is_distinct_python_with_planted_breaches() -> None:
    blocks = corpus(200, seed=0)
    assert len(set(blocks)) == 200
    assert sum('password = "hunter2"' in b for b in blocks) > 0


def test_a_tiny_run_reports_every_step(tmp_path: Path) -> None:
    out = tmp_path / "constitution.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.constitution", "--responses", "200", "--repeats", "1",
         "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    assert set(doc["seconds_per_100k"]) == {"parse", "compile", "lint", "checks", "spark batches"}
    assert doc["compiled"] == 190 and 0 < doc["broken"] <= 20
    assert "constitutional level (lint)" in done.stdout
