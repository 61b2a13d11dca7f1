"""Benchmark: events per second from the topic into the lake, beside a bare consumer loop.

    .venv/bin/python -m bench.ingest [--events 100000] [--partitions 6] [--repeats 2]
    .venv/bin/python -m bench.ingest --lake s3 [--events 50000] [--commit-interval 60]

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

``--lake s3`` instead alternates two runs of the worker as a command runs it (the production
anonymiser, the lake's table committed by the worker every ``--commit-interval`` seconds and
before it stops, through a SQLite catalog in the run's data dir):

- ``lake on local disk``: the lake in the run's data dir;
- ``lake on S3 (moto_server)``: ``Lake.at`` an ``s3://`` location on a ``moto_server`` the
  benchmark starts (``flywheel.dev.locals3``), batches written in a spool in the data dir and
  uploaded once under their final key; the AWS environment points at the server during these
  runs only.

Each run has a fresh group, data dir and lake (a fresh prefix of one bucket on S3). The goal: the
S3 run at least 0.8 of the local one. Wrapped functions give each run's seconds in the steps
that differ between the two: the partition assignment (the lake's listing, the resume point, the
dedupe window), writing batches in the spool or the events folder, placing them (rename or
upload), making them durable, and the table commits.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flywheel.dev import localkafka
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.kafka import create_topics
from flywheel.settings import IngestSettings, KafkaSettings, LakeSettings, Settings
from ingest.deadletters import MemoryDeadLetters
from ingest.pipeline import Pipeline
from ingest.scrubbing import ScrubbingAnonymiser
from ingest.worker import IngestWorker, WorkerStats
from privacy.keys import Keyring
from warehouse.lake import Lake, open_lake
from warehouse.table import LakeTable

S3_GOAL = 0.8
"""The S3 run's events per second, at least this share of the local run's."""
BUCKET = "bench-ingest"
STEPS = {
    "assignment": (IngestWorker, "_on_assigned"),
    "write": (Lake, "write_temporary"),
    "place": (Lake, "place"),
    "durable": (Lake, "sync_landed"),
    "table commits": (LakeTable, "commit"),
}
"""The steps timed in ``--lake s3`` runs: (class, method) wrapped for the run."""


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
        settings = worker_settings(kafka, Path(data))
        lake = Lake.in_data_dir(settings.data_dir)
        elapsed, _ = run_worker(settings, lake, total, anonymise=anonymise, commit_landed=None)
        return elapsed


def worker_settings(kafka: KafkaSettings, data: Path, lake: LakeSettings | None = None) -> Settings:
    """The settings of one worker run: a fresh group, ``data`` as the data dir."""
    return Settings(
        data_dir=data,
        kafka=kafka,
        ingest=IngestSettings(group_id=f"bench-{uuid.uuid4().hex[:8]}", batch_max_events=5000),
        lake=lake or LakeSettings(),
    )


def run_worker(
    settings: Settings, lake: Lake, total: int, *, anonymise: bool,
    commit_landed: Callable[[], object] | None,
) -> tuple[float, WorkerStats]:  # fmt: skip
    """Seconds (and the totals) of an ingest worker on ``lake`` consuming and landing ``total``
    messages."""
    anonymiser = ScrubbingAnonymiser(Keyring(1, {1: os.urandom(32)})) if anonymise else None
    worker = IngestWorker(
        settings=settings,
        lake=lake,
        pipeline=Pipeline(anonymiser, max_event_bytes=settings.ingest.max_event_bytes),
        dead_letters=MemoryDeadLetters(),
        commit_landed=commit_landed,
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
    return elapsed, stats


@contextlib.contextmanager
def timed_steps(seconds: dict[str, float]) -> Iterator[None]:
    """Add the seconds spent in each of ``STEPS`` to ``seconds`` while the block runs."""
    originals = {name: getattr(owner, method) for name, (owner, method) in STEPS.items()}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started

        return wrapper

    for name, (owner, method) in STEPS.items():
        seconds.setdefault(name, 0.0)
        setattr(owner, method, timed(name, originals[name]))
    try:
        yield
    finally:
        for name, (owner, method) in STEPS.items():
            setattr(owner, method, originals[name])


@contextlib.contextmanager
def aws_environment(variables: dict[str, str]) -> Iterator[None]:
    """The process environment with ``variables`` as its only ``AWS_*`` ones, for the block."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("AWS_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(variables)
    try:
        yield
    finally:
        for name in variables:
            os.environ.pop(name, None)
        os.environ.update(saved)


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def lake_run(
    kafka: KafkaSettings, total: int, *, url: str | None, commit_interval_s: float,
    steps: dict[str, float],
) -> float:  # fmt: skip
    """Seconds for the worker with the production anonymiser and the table's commits to land
    ``total`` messages in a fresh lake: in the data dir (``url`` None) or at ``url``. ``steps``
    gets the seconds of each of ``STEPS`` and the number of files landed."""
    with tempfile.TemporaryDirectory() as data:
        lake_settings = LakeSettings(url=url, commit_interval_s=commit_interval_s)
        settings = worker_settings(kafka, Path(data), lake_settings)
        lake = open_lake(settings)  # as the command builds it: Lake.at the URL, the spool
        table = LakeTable.of(settings, lake)
        with timed_steps(steps):
            elapsed, stats = run_worker(
                settings, lake, total, anonymise=True, commit_landed=table.commit
            )
        steps["files"] = stats.files
        committed = sum(table.committed_offsets().get(kafka.events_topic, {}).values())
        assert committed == total, f"the table committed {committed} of {total} offsets"
        return elapsed


def warm_up(data: Path, *, url: str | None) -> None:
    """Commit an empty lake's table (at ``url``, else in ``data``) once: the imports and the
    first connection, paid here instead of in the first timed run."""
    settings = Settings(data_dir=data, lake=LakeSettings(url=url))
    data.mkdir(parents=True, exist_ok=True)
    LakeTable.of(settings, open_lake(settings)).commit()
    ScrubbingAnonymiser(Keyring(1, {1: os.urandom(32)}))


def compare_lakes(
    kafka: KafkaSettings, total: int, size: int, args: argparse.Namespace, work: Path
) -> None:
    """``--lake s3``: the worker on a lake on S3 (moto_server) beside the same on local disk."""
    from flywheel.dev import locals3

    load_before = os.getloadavg()
    server = locals3.start(work / "moto_server.log")
    try:
        variables = locals3.environment(server, config_dir=work)
        with aws_environment(variables):
            import boto3

            boto3.client(
                "s3", endpoint_url=server.endpoint_url, region_name=variables["AWS_REGION"],
                aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
            ).create_bucket(Bucket=BUCKET)  # fmt: skip
        # Not timed: the first consumer group on a new broker waits for the offsets topic to be
        # created, pyiceberg and its catalog take seconds to import, and the first request to
        # the S3 endpoint sets up its client. One bare read of the topic, and one commit on an
        # empty lake of each kind.
        bare_confluent(kafka.bootstrap_servers, kafka.events_topic, total)
        warm_up(work / "warm-up-local", url=None)
        with aws_environment(variables):
            warm_up(work / "warm-up-s3", url=f"s3://{BUCKET}/warm-up")
        modes = ("lake on local disk", "lake on S3 (moto_server)")
        seconds: dict[str, list[float]] = {mode: [] for mode in modes}
        cpu: dict[str, list[float]] = {mode: [] for mode in modes}
        moto_cpu: list[float] = []
        steps: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
        for _ in range(args.repeats):
            for mode in modes:
                run_steps: dict[str, float] = {}
                cpu_before, moto_before = cpu_seconds(), locals3.cpu_seconds(server)
                run = functools.partial(
                    lake_run, kafka, total, commit_interval_s=args.commit_interval, steps=run_steps
                )
                if mode == modes[0]:
                    elapsed = run(url=None)
                else:
                    with aws_environment(variables):
                        elapsed = run(url=f"s3://{BUCKET}/run-{uuid.uuid4().hex[:8]}")
                    moto_cpu.append(locals3.cpu_seconds(server) - moto_before)
                cpu[mode].append(cpu_seconds() - cpu_before)
                seconds[mode].append(elapsed)
                steps[mode].append(run_steps)
        load_after = os.getloadavg()
    finally:
        locals3.stop(server)

    rates = {mode: total / statistics.median(s) for mode, s in seconds.items()}
    local, s3 = rates[modes[0]], rates[modes[1]]
    ratio = s3 / local
    import pyarrow
    import pyiceberg
    from moto import __version__ as moto_version

    print(
        f"\ningest, lake on S3 beside local disk: {total:,} events ({size / total:,.0f} B avg), "
        f"{args.partitions} partitions, median of {args.repeats} runs each, alternating"
    )
    print(f"worker with the production anonymiser, the lake's table committed every "
          f"{args.commit_interval:g} s and at the end")  # fmt: skip
    print(f"{'':30} {'events/s':>10} {'worker CPU s':>13} {'moto CPU s':>11}   runs s")
    for mode in modes:
        runs = " / ".join(f"{s:.2f}" for s in seconds[mode])
        moto = f"{statistics.median(moto_cpu):>11.2f}" if mode == modes[1] else f"{'':>11}"
        print(f"{mode:30} {rates[mode]:>10,.0f} {statistics.median(cpu[mode]):>13.2f} {moto}   "
              f"{runs}")  # fmt: skip
    print("seconds per run in the steps (median of the runs):")
    print(f"  {'':28}" + "".join(f"{name:>14}" for name in STEPS) + f"{'files':>7}")
    for mode in modes:
        medians = [statistics.median(run[name] for run in steps[mode]) for name in STEPS]
        files = statistics.median(run["files"] for run in steps[mode])
        print(f"  {mode:28}" + "".join(f"{value:>14.2f}" for value in medians) + f"{files:>7g}")
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"pyarrow {pyarrow.__version__}, pyiceberg {pyiceberg.__version__}, "
          f"moto {moto_version}; load average (1 min) {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")  # fmt: skip
    print(f"goal: S3 >= {S3_GOAL:.2f} of local disk: "
          f"{'met' if ratio >= S3_GOAL else 'NOT met'} ({ratio:.2f})")  # fmt: skip
    if args.json_out:
        result = {
            "events": total, "bytes": size, "lake": "s3", "commit_interval_s": args.commit_interval,
            "seconds": seconds, "rates": rates, "cpu_seconds": cpu, "moto_cpu_seconds": moto_cpu,
            "steps": steps, "ratio": ratio, "goal_ratio": S3_GOAL, "goal_met": ratio >= S3_GOAL,
            "load_average": [load_before[0], load_after[0]],
        }  # fmt: skip
        args.json_out.write_text(json.dumps(result, indent=2))


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bootstrap", help="use this broker instead of starting one")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument(
        "--lake", choices=("local", "s3"), default="local",
        help="s3: the worker with the lake on a moto_server S3 bucket beside local disk",
    )  # fmt: skip
    parser.add_argument(
        "--commit-interval", type=float, default=LakeSettings().commit_interval_s,
        help="--lake s3: seconds between the worker's table commits (as "
        "FLYWHEEL_LAKE__COMMIT_INTERVAL_S)",
    )  # fmt: skip
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
        if args.lake == "s3":
            with tempfile.TemporaryDirectory(prefix="bench-s3-") as work:
                compare_lakes(kafka, total, size, args, Path(work))
            return

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
