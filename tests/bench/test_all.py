"""`make bench`'s aggregator: a real (quick) benchmark run, and the figures it reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.all import ingest_rows, transforms_rows

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_quick_run_writes_the_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.all", "--quick", "--only", "anonymiser",
         "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    table = (tmp_path / "latest.md").read_text()
    assert "machine: " in table and " cores" in table
    assert "| anonymiser: scrubbing throughput |" in table and "Presidio" in table
    assert (tmp_path / "anonymiser.log").read_text().strip()


def test_ratios_and_verdicts() -> None:
    rates = {"bare kafka-python consumer": 100_000.0, "bare confluent-kafka consumer": 250_000.0,
             "ingest worker, anonymisation off": 65_000.0,
             "ingest worker, anonymisation on": 40_000.0}  # fmt: skip
    off, on = ingest_rows({"rates": rates})
    assert off[3] == "0.65 (0.26)" and off[4] == ">= 0.6 met"
    assert on[3] == "0.40 (0.16)" and on[4] == "(none)"

    result = {"events": 1000, "floor_seconds": 1.0, "full": {"seconds": 4.0, "peak_rss_mb": 9},
              "incremental": {"seconds": 0.2}}  # fmt: skip
    full, incremental = transforms_rows({"results": [result]})
    assert full[3] == "4.0x" and "NOT met" in full[4]
    assert incremental[3] == "0.05" and incremental[4] == "<= 0.10 met"
