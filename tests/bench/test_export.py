"""bench.export at a tiny size: it sets up, publishes, runs its limit and writes its figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.all import export_rows
from bench.export import READ_ORDER, READ_STEPS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_tiny_run_writes_figures_and_a_consistent_ratio(tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.export", "--events", "3000", "--repeats", "1",
         "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    (export,) = doc["exports"]
    (limit,) = doc["limits"]

    # Each run published a version that passed the gate, from a lake of the size asked for.
    assert doc["events"] == 3000 and doc["lake"]["events"] == 3000
    assert export["version"] == "v1" and export["gate_success"]
    assert export["data_files"] >= 3 and export["data_mb"] > 0
    assert set(export["rows"]) == set(limit["rows"]) == {"dpo", "kto", "reward"}
    for kind, rows in export["rows"].items():
        assert 0 < rows <= limit["rows"][kind]  # the export's caps only take rows away

    # The figures, and the ratios made of them.
    assert doc["export_seconds"] == export["seconds"] > 0
    assert doc["limit_seconds"] == limit["seconds"] > doc["narrow_limit_seconds"] > 0
    assert doc["ratio"] == pytest.approx(export["seconds"] / limit["seconds"])
    assert doc["narrow_ratio"] == pytest.approx(export["seconds"] / limit["narrow_seconds"])
    assert export["cpu_seconds"] > 0 and limit["cpu_seconds"] > 0
    assert export["peak_rss_mb"] >= export["rss_before_mb"] > 0 and doc["peak_rss_mb"] > 0

    # The steps account for the whole export, and the reading steps for the reading.
    steps = export["steps"]
    assert all(seconds >= -1e-6 for seconds in steps.values()), steps
    assert sum(steps.values()) == pytest.approx(export["seconds"], abs=1e-6)
    reading = [s for s in steps if s in READ_ORDER or s.split(": ", 1)[-1] in READ_STEPS]
    assert sum(steps[s] for s in reading) == pytest.approx(export["read_seconds"], abs=1e-6)
    for step in ("dpo: lake texts", "kto: shape", "write files",
                 "gate: import great_expectations", "gate: rest (Great Expectations)"):  # fmt: skip
        assert step in steps, step
    assert doc["steps"] == steps  # one run: its medians are its own

    # The printed table carries the same figures; the temporary data dir is gone.
    assert f"export / limit: {doc['ratio']:.1f};" in done.stdout
    assert re.search(rf"^\s+export\s+{export['seconds']:.2f}\s", done.stdout, re.MULTILINE)
    assert "machine: " in done.stdout and "code: " in done.stdout
    built = re.search(r"building the lake \(scrubbed\) in (\S+)", done.stderr)
    assert built and not Path(built.group(1)).exists()


def test_the_aggregator_row() -> None:
    doc = {"events": 500_000, "export_seconds": 12.0, "limit_seconds": 1.5, "peak_rss_mb": 900}
    ((benchmark, figure, limit, ratio, goal),) = export_rows(doc)
    assert "500,000 events" in benchmark and figure == "12.00 s (peak 900 MB)"
    assert "1.50 s" in limit and ratio == "8.0x" and goal == "(none)"
