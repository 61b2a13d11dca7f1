"""Prometheus metrics of the API, in a registry of their own per app (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ApiMetrics:
    """Requests by status, events accepted and rejected, and produce latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "flywheel_api_requests",
            "HTTP requests answered, by route and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.events = Counter(
            "flywheel_api_events",
            "Events received, by outcome (accepted, rejected, unavailable).",
            ["outcome"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "flywheel_api_produce_seconds",
            "Time from handing a request's events to the sink until it acknowledged them.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
