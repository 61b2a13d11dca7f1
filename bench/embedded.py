"""Embedded mode under 100 concurrent clients: group commit against one file per request.

What it compares (both measured in the same run, alternately, ``--repeats`` times each), each
run on a fresh data dir with its own ``flywheel serve`` process in embedded mode (no Kafka):

- ``group commit``: the sink as shipped. Its writer thread lands every request waiting when it
  is free in one Parquet file (fsynced, renamed, its folder fsynced) and then answers them all.
- ``one file per request``: the same server with ``FLYWHEEL_INGEST__BATCH_MAX_EVENTS=1``, so
  each group holds one request: one file and two fsyncs per request, as the sink did before
  group commit (``asyncio.to_thread(land)`` under one lock).
- ``API without landing`` (the ceiling, no goal): the same API, settings and clients with an
  in-memory sink that keeps the events and answers at once; what the HTTP stack and the event
  loop can do on this machine. Group commit near it means the writer thread is not the limit.

``--clients`` concurrent clients (asyncio, one keep-alive HTTP connection each) post single
events of about 1 KiB (``POST /v1/events`` with one event object) for ``--seconds``; each waits
for its 202 before sending the next. Reported per run: requests/s, events/s, p50/p99 latency,
lake files written, and the CPU seconds of the server (and of its event loop's thread, to tell
a saturated loop from a busy writer) and of the clients. The goal: group commit at least
``GOAL_RATIO`` times the requests/s of one file per request (medians). After every run the lake
is checked to hold exactly the events accepted.

``--transform-events N`` (0: skip) also times full transform runs over the same N events (from
the last group commit run's lake) landed two ways: one file per event, and files as large as
group commit made them in this run (the issue found transforms 3 times slower on a lake of
9,458 small files).

Run from the project root: ``.venv/bin/python -m bench.embedded`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.api_ingest import (
    compact,
    cpu_seconds,
    flywheel_command,
    make_events,
    read_log,
    served,
)

PER_REQUEST, GROUP, WITHOUT_LANDING = "one file per request", "group commit", "API without landing"
MODES = (PER_REQUEST, GROUP, WITHOUT_LANDING)
GOAL_RATIO = 3.0
"""Group commit's requests/s over one file per request's, at 100 clients (docs/benchmarks.md)."""
WRITE_KEY = "bench-embedded-write-key-0123456789"
TEMPLATES = 400
"""Distinct events the bodies are made from; every request gets a fresh event id."""
CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class Bodies:
    """Request bodies: one event each, every one with its own event id."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.templates = [(e["event_id"].encode(), compact(e).encode()) for e in make_events(
            TEMPLATES, seed=seed)]  # fmt: skip
        self.sent = 0

    def next(self) -> bytes:
        old, body = self.templates[self.sent % len(self.templates)]
        self.sent += 1
        new = str(uuid.UUID(int=self.rng.getrandbits(128), version=4)).encode()
        return body.replace(old, new)


@dataclass
class Run:
    """One timed run of one mode."""

    mode: str
    requests: int
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float
    files: int
    landed: int
    cpu: dict[str, float | None] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def events_per_file(self) -> float:
        return self.landed / self.files if self.files else 0.0


def thread_cpu_seconds(pid: int, thread: int) -> float | None:
    """User + system CPU time of one thread of a process so far, from /proc; None if unknown. The
    server's main thread (``thread == pid``) runs its event loop; the sink's writer, polars and
    the rest are the process's other threads."""
    try:
        fields = Path(f"/proc/{pid}/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def lake_counts(data_dir: Path) -> tuple[int, int]:
    """(files, events) of the embedded partition, from the Parquet footers."""
    import pyarrow.parquet as pq

    from ingest.embedded import EMBEDDED_TOPIC
    from warehouse.lake import Lake

    files = Lake.in_data_dir(data_dir).partition_files(EMBEDDED_TOPIC, 0)
    return len(files), sum(pq.ParquetFile(f.path).metadata.num_rows for f in files)


@contextmanager
def api_server(
    mode: str, data_dir: Path, key_file: Path, *, log_path: Path
) -> Iterator[tuple[str, int]]:
    """The API of ``mode`` as its own process on ``data_dir``; yields its base URL and pid.

    ``flywheel serve`` in embedded mode for the two landing modes; stopping it (SIGTERM) closes
    the sink, which lands whatever is queued. Without landing: this module's ``--serve-in-memory``.
    """
    from flywheel.net import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env |= {
        "FLYWHEEL_DATA_DIR": str(data_dir),
        "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(key_file),
        "FLYWHEEL_API__WRITE_KEYS": json.dumps([WRITE_KEY]),
        "FLYWHEEL_LOG_LEVEL": "WARNING",
    }
    if mode == WITHOUT_LANDING:
        argv = [sys.executable, "-m", "bench.embedded", "--serve-in-memory", str(port)]
    else:
        argv = [flywheel_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        if mode == PER_REQUEST:
            env["FLYWHEEL_INGEST__BATCH_MAX_EVENTS"] = "1"
    root = Path(__file__).resolve().parents[1]
    with served(argv, port=port, env=env, log_path=log_path, cwd=root) as server:
        yield server


def serve_in_memory(port: int) -> None:
    """The API of the environment's settings with an in-memory sink (the ceiling's server)."""
    import uvicorn

    from api.main import create_app
    from api.sink import MemorySink
    from flywheel.settings import load_settings

    settings = load_settings()
    app = create_app(settings, MemorySink())
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


class Connection:
    """One keep-alive HTTP/1.1 connection that posts a body and reads the answer.

    Hand-written on asyncio streams because the load generator shares two cores with the server:
    an ``httpx.AsyncClient`` spent about 1.4 ms of CPU per request here, as much as the server."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.head = (
            f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {WRITE_KEY}\r\nContent-Type: application/json\r\n"
        ).encode()

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """(status, response body)."""
        assert self.reader is not None and self.writer is not None
        self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        match = CONTENT_LENGTH.search(head)
        if match is None:
            raise ConnectionError(f"HTTP {status} without Content-Length")
        return status, await self.reader.readexactly(int(match[1]))

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


@dataclass
class Posted:
    """What the clients did in one window."""

    requests: int
    seconds: float
    latencies: list[float]
    client_cpu: float


async def post_for(url: str, bodies: Bodies, *, clients: int, seconds: float) -> Posted:
    """``clients`` keep-alive connections posting one event per request until ``seconds`` have
    passed; every request is answered before a client sends its next."""
    parsed = httpx.URL(url)
    latencies: list[float] = []
    failures: list[str] = []
    connections = [Connection(parsed.host, parsed.port or 80) for _ in range(clients)]
    try:
        # Open every connection before the clock starts.
        await asyncio.gather(*(connection.open() for connection in connections))
        cpu_before = time.process_time()
        started = time.perf_counter()
        deadline = started + seconds

        async def client_loop(connection: Connection) -> None:
            clock = time.perf_counter
            while clock() < deadline:
                sent = clock()
                try:
                    status, answer = await connection.post(bodies.next())
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    return
                if status != 202:
                    failures.append(f"HTTP {status}: {answer[:300]!r}")
                    return
                latencies.append(clock() - sent)

        await asyncio.gather(*(client_loop(connection) for connection in connections))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu_before
    finally:
        await asyncio.gather(*(connection.close() for connection in connections))
    if failures:
        raise SystemExit(f"{len(failures)} requests failed; first: {failures[0]}")
    return Posted(len(latencies), elapsed, latencies, client_cpu)


def run_mode(mode: str, *, clients: int, seconds: float, seed: int, work: Path) -> Run:
    """One run: a fresh data dir and server, a short warm-up, the timed window, the check. The
    data dir is left in ``work``."""
    from privacy.keys import create_keyring

    data_dir = work / f"{mode.replace(' ', '-')}-{seed}"
    data_dir.mkdir()
    key_file = work / f"keys-{data_dir.name}.json"
    create_keyring(key_file)
    bodies = Bodies(seed)
    log_path = work / "server.log"
    with api_server(mode, data_dir, key_file, log_path=log_path) as (url, pid):
        # Warm-up: every connection's first request, and the server's first files.
        asyncio.run(post_for(url, bodies, clients=clients, seconds=min(1.0, seconds / 4)))
        files_before, events_before = lake_counts(data_dir)
        server_before, loop_before = cpu_seconds(pid), thread_cpu_seconds(pid, pid)
        posted = asyncio.run(post_for(url, bodies, clients=clients, seconds=seconds))
        # The thread is read inside the process's interval (after the process at the start, before
        # it at the end), so the event loop's share can never exceed the whole process's.
        loop_after, server_after = thread_cpu_seconds(pid, pid), cpu_seconds(pid)
    files_after, events_after = lake_counts(data_dir)
    expected = 0 if mode == WITHOUT_LANDING else bodies.sent
    if events_after != expected:
        raise SystemExit(
            f"{mode}: the lake holds {events_after} events for {expected} accepted:\n"
            + "\n".join(read_log(log_path))
        )

    def used(before: float | None, after: float | None) -> float | None:
        return None if before is None or after is None else round(after - before, 2)

    return Run(
        mode=mode, requests=posted.requests, events=posted.requests, seconds=posted.seconds,
        p50_ms=1000 * percentile(posted.latencies, 0.50),
        p99_ms=1000 * percentile(posted.latencies, 0.99), files=files_after - files_before,
        landed=events_after - events_before,
        cpu={"server": used(server_before, server_after),
             "server event loop": used(loop_before, loop_after),
             "clients": round(posted.client_cpu, 2)},
    )  # fmt: skip


def relanded(source: Path, target: Path, *, events: int, per_file: int) -> int:
    """The first ``events`` events of the lake in ``source`` landed again in ``target``'s lake,
    ``per_file`` to a file (written without fsync: this is setup); returns the files written."""
    import polars as pl

    from ingest.embedded import EMBEDDED_TOPIC
    from warehouse.lake import Lake, file_name

    paths = [f.path for f in Lake.in_data_dir(source).partition_files(EMBEDDED_TOPIC, 0)]
    frame = pl.read_parquet(paths).head(events)
    folder = Lake.in_data_dir(target).root / f"landed_date={paths[0].parent.name.split('=')[1]}"
    folder.mkdir(parents=True)
    written = 0
    for first in range(0, frame.height, per_file):
        chunk = frame.slice(first, per_file)
        last = first + chunk.height - 1
        chunk.write_parquet(
            folder / file_name(EMBEDDED_TOPIC, 0, first, last), compression="zstd", statistics=True
        )
        written += 1
    return written


def time_transforms(data_dir: Path) -> float:
    """Seconds of a full transform run on ``data_dir``, in a fresh process (clean caches)."""
    code = (
        "import sys, time; from pathlib import Path; from transforms.runner import run_transforms;"
        "t = time.perf_counter(); run_transforms(Path(sys.argv[1]), full_refresh=True);"
        "print(time.perf_counter() - t)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(data_dir)], capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the transform run failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def transform_comparison(
    source: Path, work: Path, *, events: int, per_file: int, repeats: int
) -> dict[str, Any]:
    """Full transform runs over the same events in one-event files and in ``per_file`` files."""
    from warehouse.db import warehouse_path

    _, available = lake_counts(source)
    events = min(events, available)
    shapes = {"small": 1, "grouped": per_file}
    files: dict[str, int] = {}
    seconds: dict[str, list[float]] = {name: [] for name in shapes}
    for name, size in shapes.items():
        files[name] = relanded(source, work / f"transforms-{name}", events=events, per_file=size)
    for _ in range(repeats):
        for name in shapes:
            data_dir = work / f"transforms-{name}"
            warehouse = warehouse_path(data_dir)
            for stale in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
                stale.unlink(missing_ok=True)
            seconds[name].append(time_transforms(data_dir))
    result: dict[str, Any] = {"events": events}
    for name in shapes:
        result[name] = {"files": files[name], "seconds": statistics.median(seconds[name]),
                        "runs": seconds[name]}  # fmt: skip
    result["ratio"] = result["small"]["seconds"] / result["grouped"]["seconds"]
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.embedded",
        description="Embedded mode, 100 clients posting single events: group commit against "
        "one file per request.",
    )
    parser.add_argument("--clients", type=int, default=100, help="concurrent HTTP clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed window of each run")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode (alternating)")
    parser.add_argument("--seed", type=int, default=21, help="seed of the simulated events")
    parser.add_argument(
        "--transform-events", type=int, default=0,
        help="also time full transform runs over this many events in one-event files and in "
        "group commit's files (0: skip; at most what the last group commit run landed)",
    )  # fmt: skip
    parser.add_argument("--transform-repeats", type=int, default=2, help="runs of each lake")
    parser.add_argument("--json-out", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--serve-in-memory", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.clients, args.repeats, args.transform_repeats) < 1 or args.seconds <= 0:
        parser.error("--clients and the repeats must be at least 1, --seconds above 0")
    if args.transform_events < 0:
        parser.error("--transform-events must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve_in_memory is not None:
        serve_in_memory(args.serve_in_memory)
        return
    load = [round(x, 2) for x in os.getloadavg()]
    runs: list[Run] = []
    transforms: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-embedded-") as tmp:
        work = Path(tmp)
        print(f"working in {work}", file=sys.stderr, flush=True)
        last_group: Path | None = None
        for repeat in range(1, args.repeats + 1):
            for mode in MODES:
                seed = args.seed + repeat
                run = run_mode(mode, clients=args.clients, seconds=args.seconds, seed=seed,
                               work=work)  # fmt: skip
                runs.append(run)
                print(
                    f"  {mode:<21} run {repeat}: {run.requests_per_s:>7,.0f} requests/s, p50 "
                    f"{run.p50_ms:6.1f} ms, p99 {run.p99_ms:7.1f} ms, {run.files:>6,} files "
                    f"({run.events_per_file:,.1f} events each); cpu server "
                    f"{run.cpu['server'] or 0:.1f} s (event loop "
                    f"{run.cpu['server event loop'] or 0:.1f} s), clients "
                    f"{run.cpu['clients'] or 0:.1f} s",
                    flush=True,
                )
                data_dir = work / f"{mode.replace(' ', '-')}-{seed}"
                if mode == GROUP:
                    if last_group is not None:
                        shutil.rmtree(last_group)
                    last_group = data_dir
                else:
                    shutil.rmtree(data_dir)
        summary = summarise(runs)
        if args.transform_events and last_group is not None:
            per_file = max(1, round(summary["modes"][GROUP]["events_per_file"]))
            print(f"timing transform runs: one-event files against files of {per_file} ...",
                  flush=True)  # fmt: skip
            transforms = transform_comparison(
                last_group, work, events=args.transform_events, per_file=per_file,
                repeats=args.transform_repeats,
            )  # fmt: skip
    print_summary(summary, args, load, transforms)
    if args.json_out:
        document = {
            "benchmark": "embedded",
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "machine": {"cpu_count": os.cpu_count(), "load_average": load},
            "runs": [asdict(r) | {"requests_per_s": r.requests_per_s} for r in runs],
            **summary,
            "transforms": transforms,
        }
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")


def summarise(runs: list[Run]) -> dict[str, Any]:
    """Medians per mode, the ratio the goal is about, and group commit's share of the ceiling."""
    modes: dict[str, dict[str, float]] = {}
    for mode in MODES:
        mine = [r for r in runs if r.mode == mode]
        modes[mode] = {
            "requests_per_s": statistics.median(r.requests_per_s for r in mine),
            "events_per_s": statistics.median(r.events_per_s for r in mine),
            "p50_ms": statistics.median(r.p50_ms for r in mine),
            "p99_ms": statistics.median(r.p99_ms for r in mine),
            "files": statistics.median(r.files for r in mine),
            "events_per_file": statistics.median(r.events_per_file for r in mine),
        }
    group = modes[GROUP]["requests_per_s"]
    ratio = group / modes[PER_REQUEST]["requests_per_s"]
    return {
        "modes": modes,
        "ratio": ratio,
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio >= GOAL_RATIO,
        "share_of_ceiling": group / modes[WITHOUT_LANDING]["requests_per_s"],
    }


def print_summary(
    summary: dict[str, Any], args: argparse.Namespace, load: list[float],
    transforms: dict[str, Any] | None,
) -> None:  # fmt: skip
    print()
    print(
        f"{args.clients} clients posting single events of about 1 KiB for {args.seconds:g} s "
        f"per run, {args.repeats} runs of each mode (medians)"
    )
    print(f"{'':<22} {'requests/s':>10} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'files':>8} {'events/file':>12}")  # fmt: skip
    for mode, m in summary["modes"].items():
        print(
            f"{mode:<22} {m['requests_per_s']:>10,.0f} {m['events_per_s']:>10,.0f} "
            f"{m['p50_ms']:>8.1f} {m['p99_ms']:>8.1f} {m['files']:>8,.0f} "
            f"{m['events_per_file']:>12,.1f}"
        )
    verdict = "met" if summary["goal_met"] else "NOT met"
    print(
        f"ratio group commit / one file per request: {summary['ratio']:.1f}x "
        f"(goal >= {GOAL_RATIO:g}x: {verdict}); group commit / API without landing: "
        f"{summary['share_of_ceiling']:.2f}"
    )
    if transforms is not None:
        small, grouped = transforms["small"], transforms["grouped"]
        print(
            f"full transform run over {transforms['events']:,} events: {small['seconds']:.2f} s "
            f"in {small['files']:,} one-event files, {grouped['seconds']:.2f} s in "
            f"{grouped['files']:,} files; ratio {transforms['ratio']:.1f}x"
        )
    print(f"machine: {os.cpu_count()} CPUs, load average at start {load}")


if __name__ == "__main__":
    main()
