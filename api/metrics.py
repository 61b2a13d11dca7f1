"""Prometheus metrics of the API, in a registry of their own per app (tests build many apps).

Under ``flywheel serve --workers N`` every server process counts what it answered, and a scrape
reaches whichever process accepts the connection. So that each scrape shows the whole server,
``serve`` runs its processes in prometheus_client's multiprocess mode: each writes its values to
files in the directory ``PROMETHEUS_MULTIPROC_DIR`` names, and ``/metrics`` sums every process's
files (``exposition``). The variable must be set before prometheus_client is first imported,
which is why ``serve`` sets it before its processes start. Counters of a process that exited stay
in the sum: counters never go down.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from flywheel.errors import ConfigError

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable that puts prometheus_client in multiprocess mode (its own name)."""


class ApiMetrics:
    """Requests by status, events accepted and rejected, rate-limit refusals, produce latency,
    and erasures."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        directory = os.environ.get(MULTIPROCESS_DIR)
        self.multiprocess_dir = Path(directory) if directory else None
        """Where every server process writes its values (multiprocess mode), or None."""
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
        self.rate_limited = Counter(
            "flywheel_api_rate_limited",
            "Requests refused with 429 by a publishable key's rate limit, by the key's name.",
            ["key"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "flywheel_api_produce_seconds",
            "Time from handing a request's events to the sink until it acknowledged them.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.erasures = Counter(
            "flywheel_api_erasures",
            "Erasure requests the background queue ran to the end, by outcome (completed, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.erasure_seconds = Histogram(
            "flywheel_api_erasure_seconds",
            "Time the background queue spent on an erasure request (lake, warehouse, datasets).",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The Prometheus text of the metrics: this process's, or in multiprocess mode the sum
        over every process of the server."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        summed = CollectorRegistry()
        MultiProcessCollector(summed, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(summed)


@contextmanager
def multiprocess_mode() -> Iterator[Path]:
    """Multiprocess mode for the server processes started inside: ``PROMETHEUS_MULTIPROC_DIR``
    names a new, empty directory, removed afterwards. A directory the operator named already
    must exist and hold no metric files (an earlier server's would be summed in); it is used and
    left as it is."""
    given = os.environ.get(MULTIPROCESS_DIR)
    if given:
        directory = Path(given)
        if not directory.is_dir():
            raise ConfigError(f"{MULTIPROCESS_DIR} names {directory}, which is not a directory")
        if any(directory.glob("*.db")):
            raise ConfigError(
                f"{MULTIPROCESS_DIR} ({directory}) holds metric files of an earlier server: "
                "empty it before starting (or unset it to use a new directory)"
            )
        yield directory
        return
    created = tempfile.mkdtemp(prefix="flywheel-api-metrics-")
    os.environ[MULTIPROCESS_DIR] = created
    try:
        yield Path(created)
    finally:
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(created, ignore_errors=True)
