"""`flywheel export` and `flywheel schedule` as a user runs them: exit codes and one red line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from export.catalog import Catalog
from flywheel.net import free_port
from privacy.keys import write_keyring
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import KEYRING, rewrite_texts
from tests.helpers.metrics import samples


@pytest.mark.slow
def test_export_run_then_nothing_new_then_list(data_dir: Path) -> None:
    first = flywheel("export", "run", "--dataset", "default", env=env(data_dir))
    assert first.returncode == 0, first.stderr
    assert "published default v1" in first.stdout
    # The command hands the reward model to the export: the shipped policy evaluates.
    evaluation = Catalog.in_data_dir(data_dir).read_manifest("default", "v1").evaluation
    assert evaluation is not None and evaluation.ablations
    again = flywheel("export", "run", env=env(data_dir))
    assert again.returncode == 0 and "nothing new for dataset 'default' since v1" in again.stdout
    listing = flywheel("export", "list", env=env(data_dir))
    assert listing.returncode == 0 and "default" in listing.stdout and "v1" in listing.stdout


@pytest.mark.slow
def test_user_mistakes_are_one_red_line(data_dir: Path, tmp_path: Path) -> None:
    assert_one_line_error(
        flywheel("export", "run", "--dataset", "nope", env=env(data_dir)),
        "no dataset called",
        code=3,
    )
    no_key = env(data_dir)
    del no_key["FLYWHEEL_PRIVACY__HMAC_KEY_FILE"]
    assert_one_line_error(
        flywheel("export", "run", env=no_key), "FLYWHEEL_PRIVACY__HMAC_KEY_FILE", code=3
    )
    empty = env(
        tmp_path / "empty", FLYWHEEL_PRIVACY__HMAC_KEY_FILE=str(data_dir.parent / "keys.json")
    )
    assert_one_line_error(flywheel("export", "run", env=empty), "flywheel transform run")
    bad_file = tmp_path / "datasets.toml"
    bad_file.write_text("[datasets.default]\nsplits = { train = 0.5 }\n")
    result = flywheel(
        "export", "run", env=env(data_dir, FLYWHEEL_EXPORT__DATASETS_FILE=str(bad_file))
    )
    assert_one_line_error(result, "datasets.default.splits", code=3)


@pytest.mark.slow
def test_a_failed_gate_exits_5_and_names_the_report(data_dir: Path) -> None:
    rewrite_texts(
        data_dir,
        "SELECT event_id FROM labels JOIN responses USING (response_id)",
        "mail jane.doe@example.com",
    )
    result = flywheel("export", "run", env=env(data_dir))
    assert_one_line_error(result, "quality gate failed", code=5)
    assert "quality/index.html" in result.stderr
    assert not list((data_dir / "datasets" / "default").glob("v*"))


@pytest.mark.slow
def test_schedule_once(data_dir: Path) -> None:
    first = flywheel("schedule", "--once", env=env(data_dir, FLYWHEEL_LOG_FORMAT="json"))
    assert first.returncode == 0, first.stderr
    assert '"outcome": "skipped: no new lake files"' in first.stderr
    assert '"outcome": "published v1"' in first.stderr
    second = flywheel("schedule", "--once", env=env(data_dir, FLYWHEEL_LOG_FORMAT="json"))
    assert '"outcome": "skipped: nothing new since v1"' in second.stderr


@pytest.mark.slow
def test_schedule_serves_its_metrics_with_the_last_publication_read_from_the_target(
    data_dir: Path,
) -> None:
    assert flywheel("schedule", "--once", env=env(data_dir)).returncode == 0  # publishes v1
    published = Catalog.in_data_dir(data_dir).read_manifest("default", "v1").created_at
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "flywheel", "schedule", "--metrics-port", str(port)],
        env={**clean, **env(data_dir)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert scheduler.poll() is None, scheduler.communicate()[1]
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the scheduler served no /metrics"
                time.sleep(0.2)
        got = samples(text)
        # No job is due yet: every job known at 0, the publication time from the target.
        failed = (("outcome", "failed"), ("scheduled_job", "export:default"))
        assert got[("flywheel_schedule_runs_total", failed)] == 0
        gate = (("dataset", "default"), ("result", "failed"))
        assert got[("flywheel_export_gate_results_total", gate)] == 0
        assert (
            got[("flywheel_export_last_published_timestamp_seconds", (("dataset", "default"),))]
            == datetime.fromisoformat(published).timestamp()
        )
    finally:
        scheduler.send_signal(signal.SIGTERM)
        _, stderr = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, stderr


def test_a_datasets_file_that_cannot_be_read_is_one_red_line(tmp_path: Path) -> None:
    folder = tmp_path / "datasets-dir"
    folder.mkdir()
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[datasets.default]\ndescription = "caf\xe9"\n')
    for path in (folder, latin1):
        settings = env(tmp_path, FLYWHEEL_EXPORT__DATASETS_FILE=str(path))
        assert_one_line_error(
            flywheel("export", "run", env=settings), f"the datasets file {path} ", code=3
        )


def test_a_schedule_that_never_fires_is_refused_on_load(tmp_path: Path) -> None:
    write_keyring(KEYRING, tmp_path / "keys.json")
    datasets = tmp_path / "datasets.toml"
    datasets.write_text('[datasets.feb]\nschedule = "0 0 31 2 *"\n')
    settings = env(tmp_path / "data", FLYWHEEL_EXPORT__DATASETS_FILE=str(datasets))
    result = flywheel("schedule", env=settings)
    assert_one_line_error(result, "datasets.feb.schedule", code=3)
    assert "'0 0 31 2 *' never fires" in result.stderr


def test_a_corrupt_manifest_is_one_red_line(tmp_path: Path) -> None:
    manifest = tmp_path / "datasets" / "default" / "v1" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text('{"dataset": "default", "vers')
    # Named by dataset and version (the same message reaches API clients, never a server path).
    result = flywheel("export", "list", env=env(tmp_path))
    assert_one_line_error(result, "version v1 of dataset 'default' is not valid JSON")
