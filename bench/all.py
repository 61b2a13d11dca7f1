"""Every benchmark, one after another, and one table of their figures beside their limits.

    .venv/bin/python -m bench.all [--quick] [--only NAME,...]
    make bench

Each benchmark runs as its own process (``python -m bench.<name> ... --json-out FILE``), its
printed output kept in ``bench/results/<name>.log``; the figures come from its JSON. The table
(Markdown, with the machine it ran on) is printed and written to ``bench/results/latest.md``;
docs/benchmarks.md quotes the latest one. ``--quick`` runs smaller sizes (minutes instead of
about twenty; figures are noisier, the transforms run at 0.25M and 0.5M events only, the export
at 0.2M, the embedded API for 3 s per run). ``--only`` takes names from ``FULL`` below. A
benchmark that fails is reported as failed in the table, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results")

FULL: dict[str, list[str]] = {
    "api_ingest": ["--repeats", "3"],
    "ingest": ["--events", "100000", "--repeats", "3"],
    "anonymiser": [],
    "transforms": ["--sizes", "500000,1000000,2000000"],
    "export": ["--events", "500000", "--repeats", "3"],
    "embedded": ["--seconds", "10", "--repeats", "3", "--transform-events", "5000"],
    "cli_startup": ["--repeats", "7"],
}
QUICK: dict[str, list[str]] = {
    "api_ingest": ["--events", "20000", "--repeats", "2"],
    "ingest": ["--events", "40000", "--repeats", "2"],
    "anonymiser": ["--per-kind", "40", "--clean", "200"],
    "transforms": ["--sizes", "250000,500000", "--floor-repeats", "2"],
    "export": ["--events", "200000", "--repeats", "2"],
    "embedded": ["--seconds", "3", "--repeats", "1", "--transform-events", "1000",
                 "--transform-repeats", "1"],
    "cli_startup": ["--repeats", "3"],
}  # fmt: skip

Row = tuple[str, str, str, str, str]
"""benchmark, figure, limit or peer, ratio, goal (with met / NOT met)."""


def machine() -> str:
    """Cores, memory, CPU model, Python: the line every table carries."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{memory_kb / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown memory"
    return f"{os.cpu_count()} cores ({model}), {memory}, Python {platform.python_version()}"


def verdict(met: bool) -> str:
    return "met" if met else "**NOT met**"


def api_rows(doc: dict[str, Any]) -> list[Row]:
    medians = doc["median_events_per_s"]
    return [(
        "ingest API: `POST /v1/events` into Kafka", f"{medians['api']:,.0f} events/s",
        f"bare kafka-python producer {medians['bare']:,.0f} events/s", f"{doc['ratio']:.2f}",
        f">= 0.5 {verdict(doc['ratio'] >= 0.5)}",
    )]  # fmt: skip


def ingest_rows(doc: dict[str, Any]) -> list[Row]:
    rates = doc["rates"]
    bare, bare_ck = rates["bare kafka-python consumer"], rates["bare confluent-kafka consumer"]
    rows: list[Row] = []
    for name in ("ingest worker, anonymisation off", "ingest worker, anonymisation on"):
        if name not in rates:
            continue
        rate = rates[name]
        goal = f">= 0.6 {verdict(rate / bare >= 0.6)}" if name.endswith("off") else "(none)"
        rows.append((
            f"{name}: Kafka to the lake", f"{rate:,.0f} events/s",
            f"bare kafka-python consumer {bare:,.0f}/s (bare confluent-kafka {bare_ck:,.0f}/s)",
            f"{rate / bare:.2f} ({rate / bare_ck:.2f})", goal,
        ))  # fmt: skip
    return rows


def anonymiser_rows(doc: dict[str, Any]) -> list[Row]:
    goals = doc["goals"]
    ours, theirs = doc["scrubber"], doc["presidio"]
    return [
        (
            "anonymiser: scrubbing throughput", f"{ours['mb_per_s']:.2f} MB/s",
            f"Presidio {theirs['mb_per_s']:.3f} MB/s", f"{doc['speedup']:.1f}x",
            f">= 10x {verdict(goals['speedup'])}",
        ),
        (
            "anonymiser: recall, worst structured-PII kind",
            f"{ours['min_structured_recall']:.3f}",
            f"Presidio {theirs['structured_recall']:.3f} (all structured kinds)", "",
            f">= 0.99 {verdict(goals['structured_recall'])}",
        ),
        (
            "anonymiser: recall, worst secret kind", f"{ours['min_secret_recall']:.3f}",
            "Presidio: no secret recognizers", "", f">= 0.99 {verdict(goals['secret_recall'])}",
        ),
        (
            "anonymiser: clean texts changed",
            f"{ours['clean_changed']:.1%} of {ours['clean_texts']}",
            f"Presidio {theirs['clean_changed']:.1%}", "",
            f"< 1% {verdict(goals['clean_changed'])}",
        ),
    ]  # fmt: skip


def transforms_rows(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for result in doc["results"]:
        events, full = result["events"], result["full"]["seconds"]
        floor, incremental = result["floor_seconds"], result["incremental"]["seconds"]
        rows.append((
            f"transform run, full, {events:,} events",
            f"{full:.2f} s (peak {result['full']['peak_rss_mb']:,.0f} MB)",
            f"DuckDB scan of the lake {floor:.2f} s", f"{full / floor:.1f}x",
            f"<= 3x {verdict(full / floor <= 3)}",
        ))  # fmt: skip
        rows.append((
            f"transform run, incremental (+1%), {events:,} events", f"{incremental:.2f} s",
            f"full run {full:.2f} s", f"{incremental / full:.2f}",
            f"<= 0.10 {verdict(incremental / full <= 0.10)}",
        ))  # fmt: skip
    return rows


def export_rows(doc: dict[str, Any]) -> list[Row]:
    export, limit = doc["export_seconds"], doc["limit_seconds"]
    return [(
        f"export: the `default` dataset from {doc['events']:,} events",
        f"{export:.2f} s (peak {doc['peak_rss_mb']:,.0f} MB)",
        f"DuckDB copying the candidate rows and their lake texts to Parquet {limit:.2f} s",
        f"{export / limit:.1f}x", "(none)",
    )]  # fmt: skip


def embedded_rows(doc: dict[str, Any]) -> list[Row]:
    modes, clients = doc["modes"], doc["parameters"]["clients"]
    group, single = modes["group commit"], modes["one file per request"]
    ceiling = modes["API without landing"]

    def figure(mode: dict[str, float]) -> str:
        return (f"{mode['requests_per_s']:,.0f} requests/s (p50 {mode['p50_ms']:,.0f} ms, p99 "
                f"{mode['p99_ms']:,.0f} ms, {mode['files']:,.0f} files)")  # fmt: skip

    rows: list[Row] = [
        (
            f"embedded API: {clients} clients posting single events, group commit",
            figure(group), f"one file per request {figure(single)}", f"{doc['ratio']:.1f}x",
            f">= {doc['goal_ratio']:g}x {verdict(doc['goal_met'])}",
        ),
        (
            "embedded API: group commit beside the API without landing", figure(group),
            f"API without landing {ceiling['requests_per_s']:,.0f} requests/s",
            f"{doc['share_of_ceiling']:.2f}", "(none)",
        ),
    ]  # fmt: skip
    transforms = doc.get("transforms")
    if transforms:
        small, grouped = transforms["small"], transforms["grouped"]
        rows.append((
            f"transform run, full, {transforms['events']:,} events in one-event files",
            f"{small['seconds']:.2f} s ({small['files']:,} files)",
            f"the same events in {grouped['files']:,} files {grouped['seconds']:.2f} s",
            f"{transforms['ratio']:.1f}x", "(none)",
        ))  # fmt: skip
    return rows


def cli_startup_rows(doc: dict[str, Any]) -> list[Row]:
    slowest, limit = doc["slowest"], doc["limit_seconds"]
    interpreter, typer = doc["floors"].values()
    return [(
        f"CLI: `--help` of the slowest of {len(doc['commands'])} command lines "
        f"(`{slowest['command']}`)", f"{slowest['seconds']:.3f} s",
        f"limit {limit:.2f} s (same run: `python -c pass` {interpreter:.3f} s, "
        f"`import typer` {typer:.3f} s)",
        f"{slowest['seconds'] / limit:.2f}", f"< {limit:.1f} s {verdict(doc['goal_met'])}",
    )]  # fmt: skip


READERS = {
    "api_ingest": api_rows,
    "ingest": ingest_rows,
    "anonymiser": anonymiser_rows,
    "transforms": transforms_rows,
    "export": export_rows,
    "embedded": embedded_rows,
    "cli_startup": cli_startup_rows,
}


def run(name: str, args: list[str], results: Path = RESULTS) -> tuple[list[Row], float]:
    """Run one benchmark; its rows (or one "failed" row) and its wall-clock seconds."""
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"{name}.json"
    out.unlink(missing_ok=True)
    started = time.monotonic()
    with (results / f"{name}.log").open("w") as log:
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *args, "--json-out", str(out)],
            stdout=log, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    seconds = time.monotonic() - started
    # The anonymiser exits 1 when a goal is missed; its JSON still says which.
    if not out.exists():
        return [(name, f"**failed** (exit {done.returncode})", f"bench/results/{name}.log",
                 "", "")], seconds  # fmt: skip
    return READERS[name](json.loads(out.read_text())), seconds


def table(rows: list[Row], header_line: str) -> str:
    lines = [
        header_line,
        "",
        "| benchmark | figure | limit or peer (same run) | ratio | goal |",
        "|---|---|---|---:|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (minutes)")
    parser.add_argument("--only", default=",".join(FULL), help="comma-separated benchmarks")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where logs and JSON go")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in FULL]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(FULL)}")
    sizes = QUICK if args.quick else FULL
    rows: list[Row] = []
    for name in chosen:
        print(f"running bench.{name} {' '.join(sizes[name])} ...", flush=True)
        found, seconds = run(name, sizes[name], args.results)
        print(f"  done in {seconds:,.0f} s", flush=True)
        rows += found
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = f"make bench{' QUICK=1' if args.quick else ''}"
    header = (f"`{command}` on {when}; machine: {machine()}. Each figure is a median over "
              "repeated runs; its limit ran in the same run.")  # fmt: skip
    text = table(rows, header)
    (args.results / "latest.md").write_text(text)
    print()
    print(text)
    return 1 if any("failed" in row[1] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
