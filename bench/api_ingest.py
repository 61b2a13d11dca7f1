"""Ingest throughput: events/s through ``POST /v1/events`` into a real Kafka broker.

What it compares (both measured in the same run, alternately, ``--repeats`` times each):

- ``api``: the real API (``flywheel serve``, a separate process) produces to Kafka; several
  concurrent Python clients (``flywheel_client.Client.send``, as a chat backend posts; one
  thread and keep-alive connection each, no retries) post batches of ``--batch`` events of about
  1 KiB of compact JSON each. Throughput is counted from the first request to the last 202, so
  it includes waiting for the broker's acks (``acks=all``); the events are encoded by the
  client's ``prepare`` before the clock starts, as the bare side's records are.
- ``bare``: a plain kafka-python ``KafkaProducer`` with the same settings
  (``flywheel.kafka.producer_config``: acks=all, idempotence, the same linger_ms) sends the same
  records (the very key, value and header bytes the API produces) to a fresh topic of the same
  partition count, then flushes: the limit the API can approach at best.

The issue's goal: the API reaches at least half the bare producer's rate. The machine may be
shared and noisy, so each side runs ``--repeats`` times, alternately, and the medians are
compared. At the end the API's topic is checked to hold at least as many records as were posted.

Run from the project root: ``.venv/bin/python -m bench.api_ingest`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from api.producer import HEADERS
from flywheel.dev import localkafka
from flywheel.kafka import check_durable, create_topics, producer_config
from flywheel.net import free_port
from flywheel.settings import KafkaSettings
from flywheel_client import App, Client, PreparedEvent, prepare
from ingest.contract import encode_event, parse_events

EVENT_BYTES = 1024
"""Target size of one event's compact JSON, as the client sends it."""
EVENT_TYPES = ("generation", "copy", "edit", "rating")
"""One conversation turn: a response is shown, copied, edited and rated."""
PADDED_FIELD = {"generation": "response", "copy": "text", "edit": "edited_text", "rating": "reason"}
WORDS = (
    "the list is reversed in place with a slice so the original order is kept while the "
    "function returns a new copy and the caller can compare both versions before writing "
    "them back to the database table that holds every answer of the assistant"
).split()
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
APP: App = {"name": "web", "version": "3.2.0"}
MAX_BODY_BYTES = 1024 * 1024
"""The API's default request limit: the clients' batches are cut by ``--batch`` alone."""


def compact(value: Any) -> str:
    """JSON without spaces, as a frontend would send it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def filler(rng: random.Random, length: int) -> str:
    """Plain ASCII words (no JSON escapes) of exactly ``length`` characters."""
    text = ""
    while len(text) < length:
        text += rng.choice(WORDS) + " "
    text = text[:length]
    return text[:-1] + "." if text.endswith(" ") else text


def make_events(count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` contract-valid events of about ``EVENT_BYTES`` each, four per conversation."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    conversation = response = ""
    user = ""
    for i in range(count):
        type_ = EVENT_TYPES[i % len(EVENT_TYPES)]
        if type_ == "generation":
            conversation = f"conv-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            response = f"resp-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            user = f"user-{rng.randrange(5000):05d}"
        occurred = START + timedelta(milliseconds=37 * i)
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "type": type_,
            "occurred_at": occurred.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "user_id": user,
            "conversation_id": conversation,
            "app": {"name": "web", "version": "3.2.0"},
            "consent": {"training": True, "policy_version": "2025-11"},
            "schema_version": 1,
        }
        if type_ == "generation":
            event |= {
                "response_id": response,
                "parent_id": f"msg-{i:08d}",
                "prompt": [
                    {"role": "system", "content": "You are a helpful coding assistant."},
                    {"role": "user", "content": "How do I reverse a list in Python?"},
                ],
                "response": "",
                "model": {"id": "chat-small", "version": "2026-09"},
            }
        elif type_ == "copy":
            event |= {"response_id": response, "text": "", "code_block": True}
        elif type_ == "edit":
            event |= {"response_id": response, "edited_text": ""}
        else:
            event |= {"response_id": response, "value": rng.choice(("up", "down")), "reason": ""}
        field = PADDED_FIELD[type_]
        event[field] = filler(rng, max(1, EVENT_BYTES - len(compact(event).encode())))
        events.append(event)
    return events


@dataclass(frozen=True)
class Workload:
    """What both sides send: batches of events for the API's clients (encoded by the client's
    ``prepare``), key/value records for the bare producer."""

    batches: list[list[PreparedEvent]]
    records: list[tuple[bytes, bytes]]
    events: int
    client_event_bytes: float
    kafka_value_bytes: float


def build_workload(count: int, batch: int) -> Workload:
    """Encode everything up front so neither side's timing includes building the data."""
    events = make_events(count)
    prepared = [prepare(event, app=APP) for event in events]
    batches = [prepared[i : i + batch] for i in range(0, len(prepared), batch)]
    # The bare producer sends exactly what the API produces: the contract's re-encoded value.
    records: list[tuple[bytes, bytes]] = []
    for i in range(0, len(events), batch):
        for event in parse_events(list(events[i : i + batch])):
            records.append((event.conversation_id.encode(), encode_event(event)))
    return Workload(
        batches=batches,
        records=records,
        events=len(events),
        client_event_bytes=statistics.fmean(len(compact(e).encode()) for e in events),
        kafka_value_bytes=statistics.fmean(len(value) for _, value in records),
    )


def read_log(path: Path, lines: int = 10) -> list[str]:
    """The last lines of a log file (the API logs only warnings and errors here)."""
    if not path.exists():
        return []
    return path.read_text(errors="replace").splitlines()[-lines:]


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (all its threads) so far, from /proc; None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class RunResult:
    """One timed run of one side."""

    side: str
    events: int
    seconds: float
    cpu: dict[str, float | None]

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.events / self.seconds


class CpuMeter:
    """CPU seconds used during a ``with`` block by the given processes and by this one."""

    def __init__(self, pids: dict[str, int | None], *, this_process: str) -> None:
        self.pids = pids
        self.this_process = this_process
        self.start: dict[str, float | None] = {}
        self.used: dict[str, float | None] = {}

    def snapshot(self) -> dict[str, float | None]:
        now = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        now[self.this_process] = time.process_time()
        return now

    def __enter__(self) -> CpuMeter:
        self.start = self.snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        for name, value in self.snapshot().items():
            before = self.start.get(name)
            self.used[name] = None if value is None or before is None else round(value - before, 2)


def flywheel_command() -> str:
    """The installed ``flywheel`` command (beside this interpreter, or on PATH)."""
    executable = Path(sys.executable).parent / "flywheel"
    command = str(executable) if executable.exists() else shutil.which("flywheel")
    if command is None:
        raise SystemExit("the flywheel command is not installed (pip install -e . in .venv)")
    return command


@contextmanager
def served(
    argv: list[str], *, port: int, env: dict[str, str], log_path: Path, cwd: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Run a server process (its output appended to ``log_path``) until it answers
    ``GET /healthz``; yields its base URL and pid, and stops it on the way out."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True, cwd=cwd,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(
                    f"`{' '.join(argv[-4:])}` exited with code {process.returncode} before "
                    "serving:\n" + log_path.read_text(errors="replace")[-3000:]
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"`{' '.join(argv[-4:])}` did not answer GET /healthz within 60s:\n"
                    + log_path.read_text(errors="replace")[-3000:]
                )
            time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def api_server(
    *, bootstrap: str, topic: str, key: str, linger_ms: int, log_path: Path
) -> Iterator[tuple[str, int]]:
    """Run ``flywheel serve`` in its own process; yields its base URL and pid."""
    port = free_port()
    env = {
        **os.environ,
        "FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "FLYWHEEL_KAFKA__EVENTS_TOPIC": topic,
        "FLYWHEEL_KAFKA__DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "FLYWHEEL_KAFKA__LINGER_MS": str(linger_ms),
        "FLYWHEEL_API__WRITE_KEYS": json.dumps([key]),
        "FLYWHEEL_LOG_LEVEL": "WARNING",
    }
    argv = [flywheel_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    log_path.unlink(missing_ok=True)
    with served(argv, port=port, env=env, log_path=log_path) as server:
        yield server


def post_all(
    url: str, key: str, batches: list[list[PreparedEvent]], clients: int
) -> tuple[int, float]:
    """Post ``batches`` from ``clients`` threads, each with its own ``flywheel_client.Client``
    sending its share batch by batch; (accepted, seconds). Nothing is retried: a refused or
    failed batch is a failure of the run."""
    shares = [batches[i::clients] for i in range(clients)]
    accepted = [0] * clients
    failures: list[str] = []
    ready = threading.Barrier(clients + 1)
    batch_size = max(len(batch) for batch in batches)

    def client_thread(index: int) -> None:
        with (
            httpx.Client(timeout=60) as http,
            Client(
                url, key, app=APP, batch_size=batch_size, max_batch_bytes=MAX_BODY_BYTES,
                max_retries=0, timeout=60, http_client=http,
            ) as client,
        ):  # fmt: skip
            try:
                http.get(f"{url}/healthz")  # open the keep-alive connection before the clock
            finally:
                ready.wait()
            for batch in shares[index]:
                result = client.send(batch)
                accepted[index] += len(result.accepted)
                failures.extend(str(dropped) for dropped in result.dropped[:1])

    threads = [
        threading.Thread(target=client_thread, args=(i,), name=f"client-{i}", daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed; first: {failures[0]}")
    return sum(accepted), seconds


def produce_bare(settings: KafkaSettings, records: list[tuple[bytes, bytes]]) -> float:
    """Send ``records`` with a fresh durable producer and flush; seconds from first send."""
    from kafka import KafkaProducer

    producer = KafkaProducer(**producer_config(settings, client_suffix="bench-bare"))
    try:
        check_durable(producer)
        topic = settings.events_topic
        producer.partitions_for(topic)  # metadata before the clock starts, as the warm API has
        producer.send(topic, key=b"warm-up", value=b"{}", headers=HEADERS).get(timeout=30)
        started = time.perf_counter()
        futures = [
            producer.send(topic, key=key, value=value, headers=HEADERS) for key, value in records
        ]
        producer.flush()
        seconds = time.perf_counter() - started
        failed = [future for future in futures if not future.succeeded()]
        if failed:
            raise SystemExit(f"{len(failed)} records failed; first: {failed[0].exception!r}")
        return seconds
    finally:
        producer.close(timeout=10)


def topic_records(bootstrap: str, topic: str) -> int:
    """Records in a topic: the sum of its partitions' end offsets (nothing is ever deleted)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), client_id="bench-check")
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        offsets = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(offsets.values())
    finally:
        consumer.close()


@contextmanager
def broker(bootstrap: str | None) -> Iterator[tuple[str, int | None]]:
    """The given broker, or a fresh local one stopped at the end; yields (bootstrap, pid)."""
    if bootstrap:
        yield bootstrap, None
        return
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        home = Path(tmp) / "kafka"
        print("starting a local Kafka broker ...", flush=True)
        state = localkafka.start(home)
        try:
            yield state.bootstrap_servers, state.pid
        finally:
            localkafka.stop(home)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.api_ingest",
        description="Events/s through POST /v1/events into real Kafka vs a bare KafkaProducer.",
    )
    parser.add_argument("--events", type=int, default=50_000, help="events per run")
    parser.add_argument("--batch", type=int, default=100, help="events per POST")
    parser.add_argument("--clients", type=int, default=6, help="concurrent HTTP clients")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side (alternating)")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of each topic")
    parser.add_argument(
        "--linger-ms",
        type=int,
        default=KafkaSettings().linger_ms,
        help="producer linger_ms of both sides (default: the settings default)",
    )
    parser.add_argument("--bootstrap", help="HOST:PORT of a running broker (default: start one)")
    parser.add_argument("--json-out", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    for name in ("events", "batch", "clients", "repeats", "partitions"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def machine_info() -> dict[str, Any]:
    import kafka

    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "kafka_python": kafka.__version__,
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def describe_cpu(cpu: dict[str, float | None]) -> str:
    return ", ".join(f"{name} {value:.1f}s" for name, value in cpu.items() if value is not None)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    info = machine_info()
    print(f"building {args.events:,} events in batches of {args.batch} ...", flush=True)
    work = build_workload(args.events, args.batch)
    suffix = uuid.uuid4().hex[:8]
    key = secrets.token_urlsafe(24)
    results: list[RunResult] = []

    with ExitStack() as stack:
        bootstrap, broker_pid = stack.enter_context(broker(args.bootstrap))

        def kafka_settings(topic: str) -> KafkaSettings:
            return KafkaSettings(
                bootstrap_servers=bootstrap, events_topic=topic, dead_letter_topic=f"{topic}.dlq",
                partitions=args.partitions, linger_ms=args.linger_ms,
            )  # fmt: skip

        api_topic = f"bench.api.{suffix}"
        create_topics(kafka_settings(api_topic))
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-api-")))
        server_log: list[str] = []
        # Runs once the server has stopped, before its folder is removed.
        stack.callback(lambda: server_log.extend(read_log(log_dir / "server.log")))
        url, server_pid = stack.enter_context(
            api_server(
                bootstrap=bootstrap,
                topic=api_topic,
                key=key,
                linger_ms=args.linger_ms,
                log_path=log_dir / "server.log",
            )
        )
        # Warm up: the API builds its producer on first use; open its connections now.
        warm_up = work.batches[: args.clients]
        posted, _ = post_all(url, key, warm_up, args.clients)
        pids = {"server": server_pid, "broker": broker_pid}

        for repeat in range(1, args.repeats + 1):
            with CpuMeter(pids, this_process="clients") as meter:
                accepted, seconds = post_all(url, key, work.batches, args.clients)
            posted += accepted
            if accepted != work.events:
                raise SystemExit(f"the API accepted {accepted} of {work.events} events")
            result = RunResult("api", accepted, seconds, meter.used)
            results.append(result)
            print(
                f"  api  run {repeat}: {result.rate:>9,.0f} events/s  ({seconds:.2f}s; "
                f"cpu {describe_cpu(result.cpu)})",
                flush=True,
            )

            bare_settings = kafka_settings(f"bench.bare.{suffix}.{repeat}")
            create_topics(bare_settings)
            with CpuMeter({"broker": broker_pid}, this_process="producer") as meter:
                seconds = produce_bare(bare_settings, work.records)
            result = RunResult("bare", len(work.records), seconds, meter.used)
            results.append(result)
            print(
                f"  bare run {repeat}: {result.rate:>9,.0f} events/s  ({seconds:.2f}s; "
                f"cpu {describe_cpu(result.cpu)})",
                flush=True,
            )

        stored = topic_records(bootstrap, api_topic)

    api_rates = [r.rate for r in results if r.side == "api"]
    bare_rates = [r.rate for r in results if r.side == "bare"]
    api_median = statistics.median(api_rates)
    bare_median = statistics.median(bare_rates)
    ratio = api_median / bare_median

    def runs(rates: list[float]) -> str:
        return " / ".join(f"{rate:,.0f}" for rate in rates)

    print()
    print(
        f"{work.events:,} events per run, {args.batch} per request, {args.clients} clients, "
        f"{args.partitions} partitions, linger_ms={args.linger_ms}, acks=all, idempotent; "
        f"event JSON {work.client_event_bytes:,.0f} B as sent, "
        f"{work.kafka_value_bytes:,.0f} B as produced"
    )
    print(f"{'':<28} {'events/s (median)':>18}   runs")
    print(f"{'api (POST /v1/events)':<28} {api_median:>18,.0f}   {runs(api_rates)}")
    print(f"{'bare kafka-python producer':<28} {bare_median:>18,.0f}   {runs(bare_rates)}")
    verdict = "meets" if ratio >= 0.5 else "misses"
    print(f"{'ratio api/bare':<28} {ratio:>18.3f}   ({verdict} the goal of >= 0.50)")
    print(
        f"machine: {info['cpu_count']} CPUs, Python {info['python']}, "
        f"kafka-python {info['kafka_python']}, load average at start {info['load_average']}"
    )
    verified = stored >= posted
    print(
        f"check: the API topic holds {stored:,} records for {posted:,} events accepted "
        f"({'ok' if verified else 'MISSING RECORDS'})"
    )

    if server_log:
        print("the API server logged (last lines):")
        for line in server_log:
            print(f"  {line}")

    if args.json_out:
        document = {
            "benchmark": "api_ingest",
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": info,
            "event_bytes": {
                "as_sent": work.client_event_bytes,
                "as_produced": work.kafka_value_bytes,
            },
            "runs": [asdict(r) | {"rate": r.rate} for r in results],
            "median_events_per_s": {"api": api_median, "bare": bare_median},
            "ratio": ratio,
            "goal_met": ratio >= 0.5,
            "check": {"accepted": posted, "records_in_topic": stored, "ok": verified},
            "server_log_tail": server_log,
        }
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    if not verified:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
