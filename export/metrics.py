"""Prometheus metrics of the exports a long-running process (``flywheel schedule``) runs.

A one-shot ``flywheel export run`` from cron has nobody to scrape it; its exit code is its
report. The scheduler registers these beside its own job metrics and serves them together.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge

from flywheel.errors import QualityGateError

if TYPE_CHECKING:
    from collections.abc import Callable

    from export.catalog import Catalog
    from export.publish import ExportResult


class ExportMetrics:
    """Quality gate results, versions published, and when each dataset last published."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.gate_results = Counter(
            "flywheel_export_gate_results",
            "Quality gate runs, by dataset and result (passed, failed: nothing published).",
            ["dataset", "result"],
            registry=self.registry,
        )
        self.published = Counter(
            "flywheel_export_published_versions",
            "Dataset versions published, by dataset.",
            ["dataset"],
            registry=self.registry,
        )
        self.last_published = Gauge(
            "flywheel_export_last_published_timestamp_seconds",
            "When the dataset's latest version was published (its manifest's created_at), "
            "Unix time; read from the target at start, so it survives restarts.",
            ["dataset"],
            registry=self.registry,
        )

    def observe(self, dataset: str, run: Callable[[], ExportResult]) -> ExportResult:
        """Run one export of ``dataset`` and count its gate result and publication; errors
        propagate (a failed gate counted first)."""
        try:
            result = run()
        except QualityGateError:
            self.gate_results.labels(dataset, "failed").inc()
            raise
        if result.gate is not None:
            self.gate_results.labels(dataset, "passed").inc()
        if result.published:
            self.published.labels(dataset).inc()
            self.last_published.labels(dataset).set(_unix_time(result.manifest.created_at))
        return result

    def seed(self, catalog: Catalog, datasets: list[str]) -> None:
        """Start each dataset's counters at 0 (a series that appears at 1 shows no increase to
        alert on) and set its last publication time from its latest published version, so the
        gauge after a restart says what the target holds, not when the process started."""
        for dataset in datasets:
            for result in ("passed", "failed"):
                self.gate_results.labels(dataset, result)
            self.published.labels(dataset)
            versions = catalog.versions(dataset)
            if versions:
                created_at = catalog.read_manifest(dataset, versions[-1]).created_at
                self.last_published.labels(dataset).set(_unix_time(created_at))


def _unix_time(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
