"""Benchmark: a transform run (load and models) over 0.5M, 1M and 2M events, beside a floor.

    .venv/bin/python -m bench.transforms [--sizes 500000,1000000,2000000] [--floor-repeats 3]

For each size it builds a lake once in a temporary data directory (setup, not measured):
simulated events (``--seed``), landed through the ingest ``Pipeline`` with the scrubbing
anonymiser the platform runs (pseudonyms, and PII and secrets replaced by placeholders, under a
random key), spread over ``--partitions`` partitions by a hash of the conversation id, in files
of ``--file-events`` events, as the ingest workers would land them. Then it measures, each step
in a fresh child process of its own (so that one step's memory does not count against another's):

- ``floor``: DuckDB (in memory) scans the same lake files and groups by conversation, fetching
  the result: what reading the lake at all costs. Two readings, both printed: the narrow floor
  reads two columns (``SELECT conversation_id, count(*), max(occurred_at) ... GROUP BY ALL``, the
  first version of this benchmark); the floor the goal is judged against reads every column the
  transforms read (prompts and texts included) into per-conversation aggregates. Median of
  ``--floor-repeats`` runs;
- ``full run``: ``run_transforms(data_dir, full_refresh=True)`` on a new, empty warehouse (the
  migrations run before the clock starts), with the seconds of each step (load, each model);
- ``incremental``: ``--increment`` (1%) more events, from another seed, landed after the full run,
  then ``run_transforms(data_dir)``.

With ``--engine spark`` the same lakes are also built on Apache Spark (``local[N]`` with N the
machine's cores, a 6 GB driver; transforms/spark.py): a full build (``--full-refresh``) and an
incremental one after the same new events, each in a child of its own whose Spark application
starts with it (its start-up is printed apart). Spark reads the lake's Iceberg table, which the
DuckDB run before it committed. The report puts both engines side by side, with events per
second per core: Spark is expected to be slower on one small machine; the figure is there to
size a cluster (docs/spark.md), not to win.

Peak memory is each child's peak resident set (``ru_maxrss``), interpreter and libraries
included; CPU seconds (user and system, all threads) are printed beside the wall-clock seconds,
as they move less when other processes share the machine. Goals: a full run at most 3 times the
floor (the floor reading every column the transforms read); cost growing linearly with the events
(full-run seconds per million events at the largest size within 1.25 times the smallest's); an
incremental run at most 10% of a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.anonymiser import Anonymiser

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "flywheel.events.v1"
GOAL_FLOOR_RATIO = 3.0
GOAL_INCREMENTAL_RATIO = 0.10
GOAL_LINEARITY = 1.25


def cpu_seconds() -> float:
    """CPU time (user and system) this process has used so far, on all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# --- Child steps: each runs in a process of its own and prints one JSON line ---------------------


def build(
    data_dir: Path,
    *,
    events: int,
    seed: int,
    partitions: int,
    file_events: int,
    later_days: int,
    anonymiser: Anonymiser | None = None,
) -> dict:
    """Simulate ``events`` (starting ``later_days`` after the simulator's default start) and land
    them, streaming, after whatever the lake holds already, through ``anonymiser`` (by default
    the scrubbing one under a random key, as the ingest workers land them)."""
    from flywheel.dev.simulator import SimulationConfig, simulate
    from ingest.pipeline import DedupeWindow, Pipeline, RawMessage
    from ingest.scrubbing import ScrubbingAnonymiser
    from privacy.keys import Keyring
    from warehouse.lake import Lake

    started = time.perf_counter()
    lake = Lake.in_data_dir(data_dir)
    pipeline = Pipeline(
        anonymiser
        if anonymiser is not None
        else ScrubbingAnonymiser(Keyring(1, {1: os.urandom(32)})),
        max_event_bytes=65536,
        drop_without_consent=False,
    )
    landed = lake.landed_offsets(TOPIC)
    offsets = [landed.get(p, -1) + 1 for p in range(partitions)]
    windows = [DedupeWindow(100_000) for _ in range(partitions)]
    buffers: list[list[RawMessage]] = [[] for _ in range(partitions)]
    totals = {"events": 0, "rows": 0, "files": 0}

    def land(partition: int) -> None:
        messages = buffers[partition]
        batch = pipeline.process(messages, windows[partition])
        for event_id in batch.event_ids:
            windows[partition].add(event_id)
        lake.land(pipeline.frame(batch), topic=TOPIC, partition=partition,
                  first_offset=batch.first_offset, last_offset=batch.last_offset)  # fmt: skip
        totals["rows"] += len(batch.kept)
        totals["files"] += 1
        buffers[partition] = []

    start = SimulationConfig().start + timedelta(days=later_days)
    for event in simulate(SimulationConfig(events=events, seed=seed, start=start)):
        key = event["conversation_id"].encode()
        partition = zlib.crc32(key) % partitions
        value = json.dumps(event, separators=(",", ":")).encode()
        buffers[partition].append(RawMessage(TOPIC, partition, offsets[partition], key, value))
        offsets[partition] += 1
        totals["events"] += 1
        if len(buffers[partition]) >= file_events:
            land(partition)
    for partition in range(partitions):
        if buffers[partition]:
            land(partition)
    size = sum(f.path.stat().st_size for f in lake.files())
    return {**totals, "lake_mb": size / 2**20, "seconds": time.perf_counter() - started}


FLOOR_NARROW = (
    "SELECT conversation_id, count(*), max(occurred_at) FROM read_parquet($files) GROUP BY ALL"
)
"""The first floor: two narrow columns grouped by conversation."""
FLOOR_COLUMNS = """
SELECT conversation_id, count(*), max(occurred_at), max(event_id), max(type), max(response_id),
    max(parent_id), max(user_pseudonym), bool_and(consent_training), sum(len(prompt)),
    sum(length(response)), max(model_id), max(model_version), count(code_block),
    sum(length(edited_text)), max(response_a_id), max(response_b_id), max(choice),
    max(rating_value)
FROM read_parquet($files)
GROUP BY ALL
"""
"""The floor the goal is judged against: every column the transforms read (texts and prompts
included), grouped by conversation."""


def floor(data_dir: Path) -> dict:
    """DuckDB scanning the lake's files and grouping by conversation: the least a run can cost.
    Both floors, each timed on its own."""
    import duckdb

    from warehouse.lake import Lake

    files = sorted(str(f.path) for f in Lake.in_data_dir(data_dir).files())
    connection = duckdb.connect()
    rss_before = peak_rss_mb()
    seconds = {}
    for name, sql in (("narrow", FLOOR_NARROW), ("columns", FLOOR_COLUMNS)):
        started = time.perf_counter()
        rows = connection.execute(sql, {"files": files}).fetchall()
        seconds[name] = time.perf_counter() - started
    connection.close()
    return {"seconds": seconds["columns"], "narrow_seconds": seconds["narrow"],
            "rows": len(rows), "files": len(files), "rss_before_mb": rss_before,
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def transform(data_dir: Path, *, full_refresh: bool) -> dict:
    """One ``run_transforms``; a full run starts from a new, empty (migrated) warehouse."""
    from transforms.runner import run_transforms
    from warehouse.db import open_warehouse, warehouse_path

    path = warehouse_path(data_dir)
    if full_refresh:
        for stale in (path, path.with_name(path.name + ".wal")):
            stale.unlink(missing_ok=True)
    open_warehouse(data_dir).dispose()  # migrations (a no-op after the full run): not timed
    rss_before = peak_rss_mb()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    summary = run_transforms(data_dir, full_refresh=full_refresh)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "files_loaded": summary.files_loaded,
        "events_loaded": summary.events_loaded,
        "steps": [{"name": s.name, "rows": s.rows, "seconds": s.seconds} for s in summary.steps],
        "overhead": summary.overhead,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
        "warehouse_mb": path.stat().st_size / 2**20,
    }


SPARK_DRIVER_MEMORY = "6g"


def spark_transform(data_dir: Path, *, full_refresh: bool) -> dict:
    """One run of the models on Spark (``local[<cores>]``), its application started here."""
    from flywheel.settings import SparkSettings
    from transforms.spark import run_transforms_on_spark
    from warehouse.lake import Lake
    from warehouse.table import LakeTable, default_catalog_uri

    cores = os.cpu_count() or 1
    settings = SparkSettings(
        master=f"local[{cores}]", properties={"spark.driver.memory": SPARK_DRIVER_MEMORY}
    )
    table = LakeTable(Lake.in_data_dir(data_dir), default_catalog_uri(data_dir))
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    run = run_transforms_on_spark(settings, table, full_refresh=full_refresh)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "session_seconds": run.overhead.get("session", 0.0),
        "cores": cores,
        "events": run.events,
        # The driver's Python only: the JVM and the Python workers are other processes.
        "driver_cpu_seconds": cpu_seconds() - cpu_before,
        "steps": [
            {"name": s.name, "rows": s.rows, "seconds": s.seconds, "mode": s.mode}
            for s in run.steps
        ],  # fmt: skip
        "overhead": run.overhead,
    }


def child(args: argparse.Namespace) -> None:
    """Run one step (``--child``) and print its result as one JSON line."""
    data_dir: Path = args.data_dir
    if args.child == "build":
        result = build(data_dir, events=args.events, seed=args.seed, partitions=args.partitions,
                       file_events=args.file_events, later_days=args.later_days)  # fmt: skip
    elif args.child == "floor":
        result = floor(data_dir)
    elif args.child.startswith("spark-"):
        result = spark_transform(data_dir, full_refresh=args.child == "spark-full")
    else:
        result = transform(data_dir, full_refresh=args.child == "full")
    print(json.dumps(result))


# --- Parent: set up, run the children, print the table -------------------------------------------


def run_child(
    step: str, data_dir: Path, *extra: str, module: str = "bench.transforms"
) -> dict[str, Any]:
    """Run one step of ``module`` in a fresh interpreter; its result (the last line it
    prints)."""
    command = [sys.executable, "-m", module, "--child", step,
               "--data-dir", str(data_dir), *extra]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it (read-only git)."""

    def git(*arguments: str) -> str:
        done = subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True)
        done.check_returncode()
        return done.stdout.strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}{' with uncommitted changes' if dirty else ''}"


def machine_line(*libraries: ModuleType) -> str:
    """The report's ``machine:`` line: cores, Python and the versions of ``libraries``."""
    versions = "".join(f", {library.__name__} {library.__version__}" for library in libraries)
    return f"machine: {os.cpu_count()} cores, Python {platform.python_version()}{versions}"


def note(message: str, *, module: str = "bench.transforms") -> None:
    """Progress, on stderr (the table goes to stdout)."""
    print(f"[{module} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Build a lake of ``size`` events, then the floor, a full run and an incremental run."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-transforms-"))
    layout = ["--partitions", str(args.partitions), "--file-events", str(args.file_events)]
    try:
        note(f"{size:,} events: building the lake in {data_dir}")
        lake = run_child("build", data_dir, "--events", str(size), "--seed", str(args.seed),
                         *layout)  # fmt: skip
        note(f"{size:,} events: {lake['rows']:,} rows in {lake['files']} files "
             f"({lake['lake_mb']:,.0f} MiB) built in {lake['seconds']:.0f} s; floor")  # fmt: skip
        floors = [run_child("floor", data_dir) for _ in range(args.floor_repeats)]
        note(f"{size:,} events: full run")
        full = run_child("full", data_dir)
        increment = max(1, round(size * args.increment))
        note(f"{size:,} events: landing {increment:,} more, incremental run")
        added = run_child("build", data_dir, "--events", str(increment),
                          "--seed", str(args.seed + 1), "--later-days", "30", *layout)  # fmt: skip
        incremental = run_child("incremental", data_dir)
        spark: dict[str, Any] = {}
        if args.engine == "spark":
            # After DuckDB's runs: Spark's full build reads the lake with DuckDB's increment
            # in it (1% more events than DuckDB's full run), and its incremental build follows
            # a second increment of the same size.
            note(f"{size:,} events: Spark, full build")
            spark["full"] = run_child("spark-full", data_dir)
            note(f"{size:,} events: landing {increment:,} more, Spark incremental build")
            spark["increment"] = run_child(
                "build", data_dir, "--events", str(increment), "--seed", str(args.seed + 2),
                "--later-days", "31", *layout,
            )  # fmt: skip
            spark["incremental"] = run_child("spark-incremental", data_dir)
        return {
            "spark": spark,
            "events": size,
            "lake": lake,
            "floor": floors,
            "floor_seconds": statistics.median(f["seconds"] for f in floors),
            "narrow_floor_seconds": statistics.median(f["narrow_seconds"] for f in floors),
            "full": full,
            "increment": added,
            "incremental": incremental,
        }
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


OVERHEAD = {
    "open": "open",
    "record": "run row",
    "commit_lake": "lake commit",
    "plan": "plan",
    "scope": "scope",
    "texts": "lake texts",
    "commit": "commit",
    "close": "close",
}
"""The parts of a run outside its steps (``RunSummary.overhead``), as the report names them."""


def steps_line(run: dict[str, Any]) -> str:
    """A run's seconds per step, then the rest ("other") by part: opening the warehouse (engine
    and migration check), the run's row in ``transform_runs`` (its two commits), planning the
    models (variables, fingerprints, state), the incremental scope (what the new events touch),
    committing the models' transaction, closing the warehouse, and what is left (policy, model
    discovery, Python). DuckDB writes the run's changes into the database file (a checkpoint,
    which also rewrites the events table's primary-key index) at the first commit after its
    write-ahead log passes 16 MiB, else at close: that cost is in whichever part holds it."""
    parts = [f"{s['name']} {s['seconds']:.2f}" for s in run["steps"]]
    other = run["seconds"] - sum(s["seconds"] for s in run["steps"])
    overhead = run.get("overhead", {})
    named = [f"{label} {overhead[key]:.2f}" for key, label in OVERHEAD.items() if key in overhead]
    rest = other - sum(overhead.get(key, 0.0) for key in OVERHEAD)
    return ", ".join([*parts, f"other {other:.2f} ({', '.join([*named, f'rest {rest:.2f}'])})"])


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Print the table, the per-step lines, linearity, the machine and the goals."""
    import duckdb
    import polars

    print(
        f"\ntransforms: full run vs floor (DuckDB scanning the lake, GROUP BY conversation_id), "
        f"{args.partitions} partitions, ~{args.file_events:,} events a file, floor median of "
        f"{args.floor_repeats}, incremental over {args.increment:.0%} new events"
    )
    print("floor: every column the transforms read; narrow floor: conversation_id and occurred_at")
    header = (
        f"{'events':>10} {'narrow s':>8} {'floor s':>8} {'full run s':>10} {'full/narrow':>11} "
        f"{'full/floor':>10} {'incr s':>8} {'incr/full':>9} {'peak RSS MB':>11} {'events/s':>9}"
    )
    print(header)
    print(f"{'':>10} {'':>8} {'':>8} {'':>10} {'':>11} {'(<= 3)':>10} {'':>8} {'(<= 0.10)':>9} "
          f"{'(full run)':>11} {'(full)':>9}")  # fmt: skip
    for r in results:
        full, incr = r["full"]["seconds"], r["incremental"]["seconds"]
        print(
            f"{r['events']:>10,} {r['narrow_floor_seconds']:>8.2f} {r['floor_seconds']:>8.2f} "
            f"{full:>10.2f} {full / r['narrow_floor_seconds']:>11.1f} "
            f"{full / r['floor_seconds']:>10.1f} {incr:>8.2f} {incr / full:>9.2f} "
            f"{r['full']['peak_rss_mb']:>11,.0f} {r['events'] / full:>9,.0f}"
        )
    for r in results:
        print(f"\n{r['events']:,} events: lake {r['lake']['rows']:,} rows in {r['lake']['files']} "
              f"files ({r['lake']['lake_mb']:,.0f} MiB), {r['floor'][0]['rows']:,} conversations; "
              f"warehouse {r['full']['warehouse_mb']:,.0f} MiB")  # fmt: skip
        floor_runs = ", ".join(f"{f['seconds']:.2f}" for f in r["floor"])
        narrow_runs = ", ".join(f"{f['narrow_seconds']:.2f}" for f in r["floor"])
        print(f"  floor runs s: {floor_runs}; narrow floor runs s: {narrow_runs}")
        print(f"  full run steps s: {steps_line(r['full'])}")
        print(f"  incremental ({r['incremental']['events_loaded']:,} new events in "
              f"{r['incremental']['files_loaded']} files) steps s: "
              f"{steps_line(r['incremental'])}")  # fmt: skip
        print(f"  CPU s (user + system, all threads): full run {r['full']['cpu_seconds']:.1f}, "
              f"incremental {r['incremental']['cpu_seconds']:.1f}")  # fmt: skip
        print(f"  peak RSS MB: floor {max(f['peak_rss_mb'] for f in r['floor']):,.0f}, "
              f"full {r['full']['peak_rss_mb']:,.0f}, "
              f"incremental {r['incremental']['peak_rss_mb']:,.0f} "
              f"(interpreter and libraries before the run: "
              f"{r['full']['rss_before_mb']:,.0f})")  # fmt: skip
    per_million = {r["events"]: r["full"]["seconds"] / (r["events"] / 1e6) for r in results}
    growth = per_million[max(per_million)] / per_million[min(per_million)]
    print("\nlinearity: full-run s per million events: "
          + ", ".join(f"{n:,}: {s:.1f}" for n, s in per_million.items())
          + f" (largest / smallest {growth:.2f}; 1.00 is linear)")  # fmt: skip
    print(machine_line(duckdb, polars))
    models = ", ".join(s["name"] for s in results[0]["full"]["steps"][1:])
    print(f"code: {code_version()}; models: {models}")
    worst_floor = max(r["full"]["seconds"] / r["floor_seconds"] for r in results)
    worst_narrow = max(r["full"]["seconds"] / r["narrow_floor_seconds"] for r in results)
    worst_incr = max(r["incremental"]["seconds"] / r["full"]["seconds"] for r in results)
    print(
        f"goal: full run <= {GOAL_FLOOR_RATIO:.0f}x floor: "
        f"{'met' if worst_floor <= GOAL_FLOOR_RATIO else 'NOT met'} (worst {worst_floor:.1f}; "
        f"against the narrow floor {worst_narrow:.1f})"
    )
    if len(per_million) > 1:
        print(
            f"goal: linear (per-million growth <= {GOAL_LINEARITY:.2f}): "
            f"{'met' if growth <= GOAL_LINEARITY else 'NOT met'} ({growth:.2f})"
        )
    else:
        print("goal: linear: not judged (one size)")
    print(f"goal: incremental <= {GOAL_INCREMENTAL_RATIO:.2f} of full: "
          f"{'met' if worst_incr <= GOAL_INCREMENTAL_RATIO else 'NOT met'} "
          f"(worst {worst_incr:.2f})")  # fmt: skip


def report_spark(results: list[dict[str, Any]]) -> None:
    """Spark beside DuckDB on the same lakes: seconds, and events per second per core."""
    print("\nSpark beside DuckDB, the same lakes (Spark's seconds include its application's "
          "start; 'start' is that part)")  # fmt: skip
    print(f"{'events':>10} {'duckdb s':>9} {'spark s':>8} {'start s':>7} {'spark/duckdb':>12} "
          f"{'duckdb ev/s/core':>16} {'spark ev/s/core':>15} {'duckdb incr s':>13} "
          f"{'spark incr s':>12}")  # fmt: skip
    for r in results:
        duck, spark = r["full"], r["spark"]["full"]
        cores = spark["cores"]
        warm = spark["seconds"] - spark["session_seconds"]
        print(
            f"{r['events']:>10,} {duck['seconds']:>9.1f} {spark['seconds']:>8.1f} "
            f"{spark['session_seconds']:>7.1f} {spark['seconds'] / duck['seconds']:>12.1f} "
            f"{r['events'] / duck['seconds'] / cores:>16,.0f} "
            f"{r['events'] / warm / cores:>15,.0f} "
            f"{r['incremental']['seconds']:>13.1f} {r['spark']['incremental']['seconds']:>12.1f}"
        )
    for r in results:
        spark = r["spark"]
        for kind in ("full", "incremental"):
            steps = ", ".join(f"{s['name']} {s['seconds']:.1f}" for s in spark[kind]["steps"])
            overhead = ", ".join(f"{k} {v:.1f}" for k, v in spark[kind]["overhead"].items())
            print(f"  {r['events']:,} events, Spark {kind}: {steps}; {overhead}")
    print(f"Spark: local[{results[0]['spark']['full']['cores']}], driver "
          f"{SPARK_DRIVER_MEMORY}; events per second per core leave out the start")  # fmt: skip


def main() -> None:
    """Run the benchmark (or, with ``--child``, one of its steps)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500000,1000000,2000000",
                        help="comma-separated event counts")  # fmt: skip
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--file-events", type=int, default=5000)
    parser.add_argument("--floor-repeats", type=int, default=3)
    parser.add_argument("--increment", type=float, default=0.01, help="share of new events")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default="duckdb",
        help="spark: Spark's full and incremental builds beside DuckDB's",
    )
    parser.add_argument("--child", choices=["build", "floor", "full", "incremental",
                                            "spark-full", "spark-incremental"],
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--later-days", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    results = [measure(size, args) for size in sizes]
    report(results, args)
    if args.engine == "spark":
        report_spark(results)
    if args.json_out:
        args.json_out.write_text(json.dumps({"sizes": sizes, "results": results}, indent=2))


if __name__ == "__main__":
    main()
