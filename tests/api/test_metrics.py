"""The API's metrics summed over server processes (``flywheel serve --workers N``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from api.metrics import MULTIPROCESS_DIR, ApiMetrics, multiprocess_mode
from flywheel.errors import ConfigError
from tests.helpers.metrics import samples

COUNT_IN_A_SERVER_PROCESS = """
import sys
from api.metrics import ApiMetrics
metrics = ApiMetrics()
metrics.events.labels("accepted").inc(int(sys.argv[1]))
metrics.requests.labels("POST", "/v1/events", "202").inc()
metrics.produce_seconds.observe(0.01)
"""


def test_a_scrape_in_multiprocess_mode_sums_every_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, MULTIPROCESS_DIR: str(tmp_path)}
    for accepted in (3, 4):  # two server processes, each counting its own requests
        subprocess.run([sys.executable, "-c", COUNT_IN_A_SERVER_PROCESS, str(accepted)],
                       env=env, check=True)  # fmt: skip
    monkeypatch.setenv(MULTIPROCESS_DIR, str(tmp_path))
    scraped = samples(ApiMetrics().exposition().decode())
    assert scraped[("flywheel_api_events_total", (("outcome", "accepted"),))] == 7
    route = (("method", "POST"), ("route", "/v1/events"), ("status", "202"))
    assert scraped[("flywheel_api_requests_total", route)] == 2
    assert scraped[("flywheel_api_produce_seconds_count", ())] == 2


def test_without_multiprocess_mode_a_scrape_is_the_apps_own_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROCESS_DIR, raising=False)
    first, second = ApiMetrics(), ApiMetrics()
    first.events.labels("accepted").inc(5)
    accepted = ("flywheel_api_events_total", (("outcome", "accepted"),))
    assert first.multiprocess_dir is None
    assert samples(first.exposition().decode())[accepted] == 5
    assert accepted not in samples(second.exposition().decode())


def test_multiprocess_mode_names_a_new_empty_directory_and_removes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROCESS_DIR, raising=False)
    with multiprocess_mode() as directory:
        assert os.environ[MULTIPROCESS_DIR] == str(directory)
        assert directory.is_dir() and not any(directory.iterdir())
        (directory / "counter_1.db").write_bytes(b"")
    assert MULTIPROCESS_DIR not in os.environ
    assert not directory.exists()


def test_multiprocess_mode_keeps_a_directory_the_operator_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROCESS_DIR, str(tmp_path))
    (tmp_path / "notes.txt").write_text("not a metric file")
    with multiprocess_mode() as directory:
        assert directory == tmp_path
    assert os.environ[MULTIPROCESS_DIR] == str(tmp_path)
    assert (tmp_path / "notes.txt").exists()


def test_an_operator_named_directory_that_is_missing_or_holds_metric_files_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROCESS_DIR, str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="not a directory"), multiprocess_mode():
        pass
    monkeypatch.setenv(MULTIPROCESS_DIR, str(tmp_path))
    (tmp_path / "counter_123.db").write_bytes(b"")
    with pytest.raises(ConfigError, match="metric files of an earlier server"), multiprocess_mode():
        pass
