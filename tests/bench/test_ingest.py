"""bench.ingest --lake s3 at a tiny size (its own broker and moto_server), and the two helpers
that must leave the process as they found it: the AWS environment and the timed steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.ingest import STEPS, aws_environment, timed_steps
from warehouse.lake import Lake

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.integration  # starts a Kafka broker of its own (Java) and moto_server
def test_a_tiny_s3_run_lands_every_event_on_both_lakes_and_reports_the_ratio(
    tmp_path: Path,
) -> None:
    out = tmp_path / "ingest-s3.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--lake", "s3", "--events", "300",
         "--partitions", "2", "--repeats", "1", "--commit-interval", "0.5",
         "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(out.read_text())
    local, s3 = "lake on local disk", "lake on S3 (moto_server)"

    # Both ran (each asserts that every event landed and that the table committed every offset).
    assert doc["events"] == 300 and doc["lake"] == "s3" and doc["commit_interval_s"] == 0.5
    assert set(doc["rates"]) == {local, s3}
    assert doc["ratio"] == pytest.approx(doc["rates"][s3] / doc["rates"][local])
    assert doc["goal_ratio"] == 0.8 and doc["goal_met"] == (doc["ratio"] >= 0.8)
    for mode in (local, s3):
        (steps,) = doc["steps"][mode]
        assert steps["files"] >= 2 and steps["table commits"] > 0
    # Only the S3 run uploads; moto's CPU is counted for it alone.
    assert doc["steps"][s3][0]["place"] > 0 and len(doc["moto_cpu_seconds"]) == 1

    assert "goal: S3 >= 0.80 of local disk: " in done.stdout
    assert "machine: " in done.stdout and "load average" in done.stdout


def test_the_aws_environment_is_set_for_the_block_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "mine")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with aws_environment({"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}):
        assert "AWS_PROFILE" not in os.environ  # nothing of the machine's own reaches the runs
        assert os.environ["AWS_REGION"] == "us-east-1"
    assert os.environ["AWS_PROFILE"] == "mine"
    assert "AWS_REGION" not in os.environ and "AWS_ENDPOINT_URL" not in os.environ


def test_timed_steps_add_up_and_put_the_methods_back(tmp_path: Path) -> None:
    originals = {name: getattr(owner, method) for name, (owner, method) in STEPS.items()}
    seconds: dict[str, float] = {}
    lake = Lake.in_data_dir(tmp_path)
    folder = tmp_path / "landed"
    folder.mkdir()
    with timed_steps(seconds):
        lake.sync_landed(folder / "a.parquet")
        lake.sync_landed(folder / "b.parquet")
    assert set(seconds) == set(STEPS) and seconds["durable"] > 0 and seconds["place"] == 0
    assert {name: getattr(owner, method) for name, (owner, method) in STEPS.items()} == originals
