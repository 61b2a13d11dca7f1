"""Prometheus metrics of an ingest worker."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    """Events landed, dead-lettered and dropped as duplicates, batch latency, lag per partition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.landed = Counter(
            "flywheel_ingest_events_landed", "Events landed in the lake.", registry=self.registry
        )
        self.dead_letters = Counter(
            "flywheel_ingest_dead_letters",
            "Messages sent to the dead-letter topic, by error type.",
            ["error_type"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "flywheel_ingest_duplicates",
            "Events dropped because their id had already landed (client resends).",
            registry=self.registry,
        )
        self.without_consent = Counter(
            "flywheel_ingest_dropped_without_consent",
            "Events dropped before landing because their user did not consent to training.",
            registry=self.registry,
        )
        self.suppressed = Counter(
            "flywheel_ingest_suppressed",
            "Events dropped before landing because their user was erased (the suppression list).",
            registry=self.registry,
        )
        self.retries = Counter(
            "flywheel_ingest_retries",
            "Transient failures retried, by action.",
            ["action"],
            registry=self.registry,
        )
        self.fenced = Counter(
            "flywheel_ingest_fenced_batches",
            "Batches discarded because the partition moved to another worker before landing.",
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "flywheel_ingest_batch_seconds",
            "Time to validate, anonymise and land one micro-batch.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.lag = Gauge(
            "flywheel_ingest_consumer_lag",
            "Messages in the partition not yet landed.",
            ["partition"],
            registry=self.registry,
        )
