"""bench.embedded at a tiny size: three servers, their figures, the lakes checked, the ratio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.all import embedded_rows

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_tiny_run_writes_figures_and_a_consistent_ratio(tmp_path: Path) -> None:
    out = tmp_path / "embedded.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.embedded", "--clients", "10", "--seconds", "1",
         "--repeats", "1", "--transform-events", "60", "--transform-repeats", "1",
         "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    runs = {run["mode"]: run for run in doc["runs"]}
    single, group = runs["one file per request"], runs["group commit"]
    ceiling = runs["API without landing"]

    # Every accepted event landed (the benchmark exits otherwise): one file each, or shared.
    assert single["requests"] > 0 and single["files"] == single["landed"] == single["requests"]
    assert group["landed"] == group["requests"] > group["files"] > 0
    assert ceiling["requests"] > 0 and ceiling["files"] == ceiling["landed"] == 0
    tick = 1 / os.sysconf("SC_CLK_TCK")  # /proc counts whole ticks, per thread and per process
    for run in runs.values():
        assert run["requests_per_s"] == pytest.approx(run["requests"] / run["seconds"])
        assert 0 < run["p50_ms"] <= run["p99_ms"]
        assert run["cpu"]["server"] > 0
        assert run["cpu"]["clients"] >= 0  # one second of posting can round to 0.00 s when busy
        assert 0 < run["cpu"]["server event loop"] <= run["cpu"]["server"] + tick

    # The ratio is made of the medians (one run each: the runs themselves).
    modes = doc["modes"]
    assert modes["group commit"]["requests_per_s"] == group["requests_per_s"]
    assert doc["ratio"] == pytest.approx(group["requests_per_s"] / single["requests_per_s"])
    assert doc["share_of_ceiling"] == pytest.approx(
        group["requests_per_s"] / ceiling["requests_per_s"]
    )
    assert doc["goal_met"] == (doc["ratio"] >= doc["goal_ratio"])

    # The transform comparison ran over the same events, in more files one way than the other.
    transforms = doc["transforms"]
    small, grouped = transforms["small"], transforms["grouped"]
    assert transforms["events"] == small["files"] == 60 > grouped["files"] >= 1
    assert transforms["ratio"] == pytest.approx(small["seconds"] / grouped["seconds"])

    # The printed table carries the same figures; the temporary folder is gone.
    assert f"ratio group commit / one file per request: {doc['ratio']:.1f}x" in done.stdout
    assert "machine: " in done.stdout
    working = done.stderr.split("working in ", 1)[1].split()[0]
    assert not Path(working).exists()


def test_the_aggregator_rows() -> None:
    def mode(rate: float, files: float) -> dict[str, float]:
        return {"requests_per_s": rate, "p50_ms": 150.0, "p99_ms": 400.0, "files": files}

    doc = {
        "parameters": {"clients": 100},
        "modes": {"group commit": mode(600, 60), "one file per request": mode(75, 750),
                  "API without landing": mode(1000, 0)},
        "ratio": 8.0, "goal_ratio": 3.0, "goal_met": True, "share_of_ceiling": 0.6,
        "transforms": {"events": 5000, "ratio": 7.5, "small": {"seconds": 15.0, "files": 5000},
                       "grouped": {"seconds": 2.0, "files": 100}},
    }  # fmt: skip
    goal, ceiling, transforms = embedded_rows(doc)
    assert goal[1] == "600 requests/s (p50 150 ms, p99 400 ms, 60 files)"
    assert goal[2].startswith("one file per request 75 requests/s")
    assert goal[3] == "8.0x" and goal[4] == ">= 3x met"
    assert ceiling[2] == "API without landing 1,000 requests/s" and ceiling[3] == "0.60"
    assert "5,000 events" in transforms[0] and transforms[3] == "7.5x"

    doc |= {"ratio": 2.5, "goal_met": False, "transforms": None}
    goal, _ = embedded_rows(doc)
    assert goal[4] == ">= 3x **NOT met**"
