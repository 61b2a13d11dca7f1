"""Benchmark: events per second from the topic into the lake, beside a bare consumer loop.

    .venv/bin/python -m bench.ingest [--events 100000] [--partitions 6] [--repeats 2]

Produces simulated events (about 1 KiB each) to a fresh topic once, then alternates, ``repeats``
times each:

- ``bare kafka-python consumer``: a consumer-group member that polls every message and touches
  its value, nothing else (the limit the goal is stated against: what the client library the
  design names can read);
- ``bare confluent-kafka consumer``: the same loop with confluent-kafka, the client the worker
  reads with (a second reference: what the worker's own client can read);
- ``ingest worker, anonymisation off``: ``IngestWorker`` with no anonymiser (validate, dedupe,
  build the frame, write Parquet, commit, rename);
- ``ingest worker, anonymisation on``: the same with the production anonymiser (pseudonyms,
  PII and secret scrubbing).

Each run uses a fresh consumer group (so it joins like the bare loop does) and a fresh lake, and
stops when every message was consumed. The goal: anonymisation off reaches at least 0.6 of the
bare kafka-python loop; the ratio to the bare confluent-kafka loop is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from flywheel.dev import localkafka
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.kafka import create_topics
from flywheel.settings import IngestSettings, KafkaSettings, Settings
from ingest.deadletters import MemoryDeadLetters
from ingest.pipeline import Pipeline
from ingest.scrubbing import ScrubbingAnonymiser
from ingest.worker import IngestWorker, WorkerStats
from privacy.keys import Keyring
from warehouse.lake import Lake


def produce_events(bootstrap: str, topic: str, events: int) -> tuple[int, int]:
    """Produce simulated events; returns (messages, bytes)."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024)
    size = 0
    for event in simulate(SimulationConfig(events=events, seed=7)):
        value = json.dumps(event, separators=(",", ":")).encode()
        size += len(value)
        producer.send(topic, key=event["conversation_id"].encode(), value=value)
    producer.flush(timeout=300)
    producer.close()
    return events, size


def bare_consumer(bootstrap: str, topic: str, total: int) -> float:
    """Seconds for a bare consumer-group member to read ``total`` messages."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5000,
    )
    started = time.perf_counter()
    seen = 0
    checksum = 0
    while seen < total:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                checksum += len(record.value)
            seen += len(records)
    elapsed = time.perf_counter() - started
    consumer.close(autocommit=False)
    return elapsed


def bare_confluent(bootstrap: str, topic: str, total: int) -> float:
    """Seconds for a bare confluent-kafka consumer-group member to read ``total`` messages."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-bare-ck-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    started = time.perf_counter()
    seen = 0
    checksum = 0
    while seen < total:
        for message in consumer.consume(num_messages=5000, timeout=0.5):
            if message.error() is None:
                checksum += len(message.value() or b"")
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def worker_run(kafka: KafkaSettings, total: int, *, anonymise: bool) -> float:
    """Seconds for an ingest worker to consume and land ``total`` messages."""
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            data_dir=Path(data),
            kafka=kafka,
            ingest=IngestSettings(group_id=f"bench-{uuid.uuid4().hex[:8]}", batch_max_events=5000),
        )
        anonymiser = ScrubbingAnonymiser(Keyring(1, {1: os.urandom(32)})) if anonymise else None
        worker = IngestWorker(
            settings=settings,
            lake=Lake.in_data_dir(settings.data_dir),
            pipeline=Pipeline(anonymiser, max_event_bytes=settings.ingest.max_event_bytes),
            dead_letters=MemoryDeadLetters(),
        )
        stop = threading.Event()

        def progress(stats: WorkerStats) -> None:
            # Everything read: stop as SIGTERM would, so the worker lands what it holds at once
            # instead of waiting batch_max_wait_ms for each partition's last, partial batch.
            if stats.read >= total:
                stop.set()

        started = time.perf_counter()
        stats = worker.run(stop, on_progress=progress)
        elapsed = time.perf_counter() - started
        assert stats.consumed == total, f"{stats.consumed} of {total} messages landed"
        return elapsed


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    home = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        home = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
        bootstrap = localkafka.start(home).bootstrap_servers
    try:
        topic = f"bench.ingest.{uuid.uuid4().hex[:8]}"
        kafka = KafkaSettings(
            bootstrap_servers=bootstrap, events_topic=topic, dead_letter_topic=topic + ".dlq",
            partitions=args.partitions,
        )  # fmt: skip
        create_topics(kafka)
        total, size = produce_events(bootstrap, topic, args.events)

        runs: dict[str, Callable[[], float]] = {
            "bare kafka-python consumer": lambda: bare_consumer(bootstrap, topic, total),
            "bare confluent-kafka consumer": lambda: bare_confluent(bootstrap, topic, total),
            "ingest worker, anonymisation off": lambda: worker_run(kafka, total, anonymise=False),
            "ingest worker, anonymisation on": lambda: worker_run(kafka, total, anonymise=True),
        }
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                seconds[name].append(run())
        rates = {name: total / statistics.median(s) for name, s in seconds.items()}
        bare = rates["bare kafka-python consumer"]
        bare_ck = rates["bare confluent-kafka consumer"]

        from confluent_kafka import libversion
        from kafka import __version__ as kafka_version

        print(
            f"\ningest: {total:,} events ({size / total:,.0f} B avg), {args.partitions} "
            f"partitions, median of {args.repeats} runs each, alternating"
        )
        print(f"{'':36} {'events/s':>10} {'vs bare kafka-python':>21} {'vs bare confluent':>18}")
        for name, rate in rates.items():
            print(f"{name:36} {rate:>10,.0f} {rate / bare:>21.2f} {rate / bare_ck:>18.2f}")
        print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"kafka-python {kafka_version}, librdkafka {libversion()[0]}")  # fmt: skip
        goal = rates["ingest worker, anonymisation off"] / bare
        print(f"goal: anonymisation off >= 0.60 of bare kafka-python: "
              f"{'met' if goal >= 0.6 else 'NOT met'} ({goal:.2f}; "
              f"{rates['ingest worker, anonymisation off'] / bare_ck:.2f} of bare "
              f"confluent-kafka)")  # fmt: skip
        if args.json_out:
            result = {"events": total, "bytes": size, "seconds": seconds, "rates": rates}
            args.json_out.write_text(json.dumps(result, indent=2))
    finally:
        if home is not None:
            localkafka.stop(home)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
