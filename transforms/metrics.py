"""Prometheus metrics of the transform runs a long-running process (``flywheel schedule``)
runs; the scheduler serves them with its own job metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram

if TYPE_CHECKING:
    from transforms.runner import RunSummary


class TransformMetrics:
    """Lake files and events loaded into the warehouse, and each model's build time."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.files_loaded = Counter(
            "flywheel_transform_files_loaded",
            "Lake files loaded into the warehouse.",
            registry=self.registry,
        )
        self.events_loaded = Counter(
            "flywheel_transform_events_loaded",
            "New events loaded into the warehouse.",
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "flywheel_transform_step_seconds",
            "Time of one step of a transform run (loading, or building a model), by step.",
            ["step"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=self.registry,
        )

    def record(self, summary: RunSummary) -> None:
        """Count what a finished run did."""
        self.files_loaded.inc(summary.files_loaded)
        self.events_loaded.inc(summary.events_loaded)
        for step in summary.steps:
            self.step_seconds.labels(step.name).observe(step.seconds)
