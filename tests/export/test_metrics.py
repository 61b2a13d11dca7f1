"""The exports' metrics: gate results, publications and the last publication time. A real
export counted through the scheduler is in tests/flywheel/shell/test_schedule.py."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest

from export.metrics import ExportMetrics
from flywheel.errors import ExportError, QualityGateError
from tests.helpers.metrics import samples

CREATED = "2026-03-02T10:00:30+00:00"


def result(*, published: bool, gate: bool) -> Any:
    """What the metrics read of an ``ExportResult``."""
    return SimpleNamespace(
        published=published, gate=object() if gate else None,
        manifest=SimpleNamespace(created_at=CREATED),
    )  # fmt: skip


def scraped(metrics: ExportMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return samples(generate_latest(metrics.registry).decode())


def test_a_publication_counts_a_passed_gate_and_sets_the_time() -> None:
    metrics = ExportMetrics()
    metrics.observe("default", lambda: result(published=True, gate=True))
    metrics.observe("default", lambda: result(published=False, gate=False))  # nothing new
    got = scraped(metrics)
    passed = (("dataset", "default"), ("result", "passed"))
    assert got[("flywheel_export_gate_results_total", passed)] == 1
    assert got[("flywheel_export_published_versions_total", (("dataset", "default"),))] == 1
    when = got[("flywheel_export_last_published_timestamp_seconds", (("dataset", "default"),))]
    assert when == datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC).timestamp()


def test_a_failed_gate_is_counted_and_raised_other_errors_only_raised() -> None:
    metrics = ExportMetrics()

    def gate_fails() -> Any:
        raise QualityGateError("the gate failed", report="failed-1", failed=[])

    def busy() -> Any:
        raise ExportError("another export of default is running")

    with pytest.raises(QualityGateError):
        metrics.observe("default", gate_fails)
    with pytest.raises(ExportError):
        metrics.observe("default", busy)
    got = scraped(metrics)
    failed = (("dataset", "default"), ("result", "failed"))
    assert got[("flywheel_export_gate_results_total", failed)] == 1
    passed = (("dataset", "default"), ("result", "passed"))
    assert ("flywheel_export_gate_results_total", passed) not in got
    assert not any(name.startswith("flywheel_export_last_published") for name, _ in got)


def test_seeding_starts_the_counters_at_zero_for_a_dataset_never_published() -> None:
    metrics = ExportMetrics()
    catalog = SimpleNamespace(versions=lambda name: [])
    metrics.seed(catalog, ["default"])  # type: ignore[arg-type]
    got = scraped(metrics)
    for outcome in ("passed", "failed"):
        series = (("dataset", "default"), ("result", outcome))
        assert got[("flywheel_export_gate_results_total", series)] == 0
    assert got[("flywheel_export_published_versions_total", (("dataset", "default"),))] == 0
    assert not any(name.startswith("flywheel_export_last_published") for name, _ in got)
