"""Benchmark: an export (the warehouse into a published dataset), beside DuckDB copying its rows.

    .venv/bin/python -m bench.export [--events 500000] [--repeats 3] [--json-out FILE]

Setup (not measured), in a temporary data directory removed at the end: a pseudonym key file
(``flywheel keys create``'s code); a lake of ``--events`` simulated events landed as
``bench.transforms`` lands them, but through the anonymiser the platform runs (pseudonyms and
scrubbing: without scrubbing the quality gate rightly fails on the simulator's planted PII); a
full transform run. Then, alternately, ``--repeats`` times each, every run in a fresh child
process:

- ``export``: ``export_dataset(data_dir, "default", keyring)`` with the default datasets file,
  the dataset's folder removed first so that every run publishes ``v1`` (never "nothing new").
  The seconds of its steps are taken by wrapping the functions it calls (nothing in the exporter
  is changed): reading the warehouse (per config: ``select_rows``' candidates, its lake texts
  (``warehouse.texts.fetch_texts``) and its final query; ``shape``; then the lineage), writing
  the files, the quality gate (importing Great Expectations, the validation frames, the rest),
  and the rest (counts, card, hashes, manifest, rename);
- ``limit``: DuckDB doing the least an export needs: the candidate pairs and labels (consented,
  confidence at or above the policy's ``min_confidence``), their prompts and texts read once from
  the lake files their events were loaded from (matched on event id, file and offset, as
  ``warehouse.texts`` does), and one ``COPY ... TO`` Parquet (zstd) per config. No per-prompt or
  per-user cap, no ordering, no shaping, no gate. The narrow limit is the same rows without their
  texts (the warehouse alone, no lake read).

Peak memory is each child's peak resident set (``ru_maxrss``), interpreter and libraries
included; CPU seconds (user and system, all threads) are printed beside the wall-clock seconds.
No goal is set: the ratio to the limit is printed, not judged.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import transforms as transforms_bench
from bench.transforms import code_version, cpu_seconds, machine_line, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
DATASET = "default"
KEY_FILE = "pseudonym-keys.json"


# --- Child steps: each runs in a process of its own and prints one JSON line ---------------------


def build(data_dir: Path, *, events: int, seed: int, partitions: int, file_events: int) -> dict:
    """The lake, landed through the scrubbing anonymiser under the data dir's key file."""
    from bench.transforms import build as land
    from ingest.scrubbing import ScrubbingAnonymiser
    from privacy.keys import load_keyring

    anonymiser = ScrubbingAnonymiser(load_keyring(data_dir / KEY_FILE))
    return land(data_dir, events=events, seed=seed, partitions=partitions,
                file_events=file_events, later_days=0, anonymiser=anonymiser)  # fmt: skip


class StepClock:
    """Seconds spent in the functions an export calls, by step; the functions are wrapped in
    place (module attributes), the exporter's code is not changed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.kind = "?"
        self.texts_span = (0.0, 0.0)

    def add(self, step: str, seconds: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds

    def wrap(self, module: Any, name: str, around: Callable[..., Any]) -> None:
        """Replace ``module.name`` by ``around(original, *args, **kwargs)``; a function the
        module no longer has is left alone (its time then falls into the step around it)."""
        original = getattr(module, name, None)
        if original is None:
            return

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return around(original, *args, **kwargs)

        setattr(module, name, wrapper)

    def timed(self, step: str) -> Callable[..., Any]:
        def around(original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.add(step, time.perf_counter() - started)

        return around

    def select_rows(self, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``select_rows``: candidates (until its texts are fetched), texts, the final query."""
        self.kind = str(kwargs.get("kind", args[2] if len(args) > 2 else "?"))
        self.texts_span = (0.0, 0.0)
        started = time.perf_counter()
        result = original(*args, **kwargs)
        ended = time.perf_counter()
        texts_started, texts_ended = self.texts_span
        if texts_ended:
            self.add(f"{self.kind}: candidates", texts_started - started)
            self.add(f"{self.kind}: lake texts", texts_ended - texts_started)
            self.add(f"{self.kind}: final query", ended - texts_ended)
        else:
            self.add(f"{self.kind}: select rows", ended - started)
        return result

    def fetch_texts(self, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = original(*args, **kwargs)
        self.texts_span = (started, time.perf_counter())
        return result

    def shape(self, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kind = str(kwargs.get("kind", args[1] if len(args) > 1 else "?"))
        return self.timed(f"{kind}: shape")(original, *args, **kwargs)

    def run_gate(self, original: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The gate, its first import of Great Expectations timed apart (an export run as a
        command pays it every time; a long-lived scheduler once)."""
        started = time.perf_counter()
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # as run_gate sets it
        import great_expectations  # noqa: F401

        imported = time.perf_counter()
        self.add("gate: import great_expectations", imported - started)
        try:
            return original(*args, **kwargs)
        finally:
            self.add("gate: rest (Great Expectations)", time.perf_counter() - imported)


READ_STEPS = ("candidates", "lake texts", "final query", "select rows", "shape")
"""The parts of reading the warehouse timed per config (``<config>: <part>``)."""
READ_ORDER = ("read: lineage", "read: other (open, checks, re-keying, ids)")
GATE_ORDER = ("gate: import great_expectations", "gate: validation frames",
              "gate: rest (Great Expectations)")  # fmt: skip


def rank(step: str, order: list[str]) -> int:
    """Where a step goes in the report: the configs' parts first (as they ran), then ``order``,
    then the rest."""
    if step.split(": ", 1)[-1] in READ_STEPS:
        return -1
    return order.index(step) if step in order else len(order)


def run_export(data_dir: Path) -> dict:
    """One ``export_dataset`` of the default dataset, publishing ``v1``."""
    import duckdb  # noqa: F401  (libraries loaded before the clock; the limit loads duckdb too)
    import polars  # noqa: F401
    import pyarrow  # noqa: F401

    import export.publish as publish
    import export.quality as quality
    import warehouse.texts as texts
    from export.catalog import dataset_dir
    from privacy.keys import load_keyring

    shutil.rmtree(dataset_dir(data_dir, DATASET), ignore_errors=True)
    keyring = load_keyring(data_dir / KEY_FILE)
    clock = StepClock()
    clock.wrap(publish, "select_rows", clock.select_rows)
    clock.wrap(texts, "fetch_texts", clock.fetch_texts)
    clock.wrap(publish, "shape", clock.shape)
    clock.wrap(publish, "_lineage", clock.timed("read: lineage"))
    clock.wrap(publish, "read_warehouse", clock.timed("read: all"))
    clock.wrap(publish, "write_files", clock.timed("write files"))
    clock.wrap(publish, "run_gate", clock.run_gate)
    clock.wrap(quality, "validation_frame", clock.timed("gate: validation frames"))
    rss_before = peak_rss_mb()
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    result = publish.export_dataset(data_dir, DATASET, keyring)  # the default datasets file
    seconds = time.perf_counter() - started
    if not result.published or result.path is None:
        raise SystemExit("the export published nothing (its folder was not removed?)")
    steps = dict(clock.seconds)
    read_all = steps.pop("read: all", 0.0)
    in_read = sum(v for k, v in steps.items() if k.split(": ", 1)[-1] in READ_STEPS)
    steps["read: other (open, checks, re-keying, ids)"] = (
        read_all - in_read - steps.get("read: lineage", 0.0)
    )
    gate_rest = "gate: rest (Great Expectations)"
    if gate_rest in steps:
        steps[gate_rest] -= steps.get("gate: validation frames", 0.0)
    steps["other (counts, card, hashes, manifest, rename)"] = seconds - sum(steps.values())
    order = [*READ_ORDER, "write files", *GATE_ORDER]
    steps = dict(sorted(steps.items(), key=lambda item: rank(item[0], order)))
    data = [p for p in (result.path / "data").rglob("*") if p.is_file()]
    return {
        "seconds": seconds,
        "read_seconds": read_all,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "steps": steps,
        "rows": {kind: entry.rows for kind, entry in result.manifest.counts.items()},
        "data_files": len(data),
        "data_mb": sum(p.stat().st_size for p in data) / 2**20,
        "gate_success": result.gate is not None and result.gate.success,
        "version": result.version,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }


LIMIT_CANDIDATES = {
    "pairs": """
        CREATE TEMP TABLE pairs AS
        SELECT pair_id AS id, prompt_event_id, chosen_event_id, rejected_event_id, confidence
        FROM warehouse.preference_pairs
        WHERE consent_training AND confidence >= $min_confidence
            AND list_has_any(signals, $signals)""",
    "labels": """
        CREATE TEMP TABLE labels AS
        SELECT l.response_id AS id, r.event_id, l.label, l.confidence
        FROM warehouse.labels AS l JOIN warehouse.responses AS r USING (response_id)
        WHERE r.consent_training AND l.confidence >= $min_confidence""",
}
LIMIT_WANTED = """
CREATE TEMP TABLE wanted AS
SELECT event_id, lake_file, source_offset FROM warehouse.events
WHERE event_id IN (
    SELECT unnest([prompt_event_id, chosen_event_id, rejected_event_id]) FROM pairs
    UNION ALL SELECT event_id FROM labels)
"""
LIMIT_TEXTS = """
CREATE TEMP TABLE texts AS
SELECT landed.event_id, to_json(landed.prompt) AS prompt,
    coalesce(landed.response, landed.edited_text) AS text
FROM read_parquet($files, filename = true) AS landed
SEMI JOIN wanted
    ON wanted.event_id = landed.event_id
    AND wanted.lake_file = $names[list_position($files, landed.filename)]
    AND wanted.source_offset = landed.source_offset
"""
LIMIT_COPY = {
    "dpo": """
        SELECT c.id, p.prompt, chosen.text AS chosen, rejected.text AS rejected, c.confidence
        FROM pairs AS c
        JOIN texts AS p ON p.event_id = c.prompt_event_id
        JOIN texts AS chosen ON chosen.event_id = c.chosen_event_id
        JOIN texts AS rejected ON rejected.event_id = c.rejected_event_id""",
    "kto": """
        SELECT c.id, t.prompt, t.text AS completion, c.label, c.confidence
        FROM labels AS c JOIN texts AS t USING (event_id)""",
    "reward": """
        SELECT c.id, p.prompt, chosen.text AS chosen, rejected.text AS rejected,
            c.confidence AS margin
        FROM pairs AS c
        JOIN texts AS p ON p.event_id = c.prompt_event_id
        JOIN texts AS chosen ON chosen.event_id = c.chosen_event_id
        JOIN texts AS rejected ON rejected.event_id = c.rejected_event_id""",
}
LIMIT_NARROW = {
    "dpo": "SELECT id, prompt_event_id, chosen_event_id, rejected_event_id, confidence FROM pairs",
    "kto": "SELECT id, event_id, label, confidence FROM labels",
    "reward": "SELECT id, prompt_event_id, chosen_event_id, rejected_event_id, confidence AS "
    "margin FROM pairs",
}


def limit(data_dir: Path) -> dict:
    """DuckDB reading the rows an export selects, with their texts, and writing them: the
    least an export can cost. Then the narrow limit: the same rows without their texts."""
    import duckdb

    from export.policy import load_datasets
    from warehouse.db import warehouse_path
    from warehouse.lake import Lake

    policy = load_datasets().dataset(DATASET)
    out = data_dir / "limit"
    lake_root = Lake.in_data_dir(data_dir).root
    rss_before = peak_rss_mb()
    timings: dict[str, float] = {}
    rows: dict[str, int] = {}
    cpu_full = out_mb = 0.0
    cpu_before = cpu_seconds()
    for name, with_texts in (("full", True), ("narrow", False)):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        started = time.perf_counter()
        db = duckdb.connect()
        db.execute(f"ATTACH '{warehouse_path(data_dir)}' AS warehouse (READ_ONLY)")
        parameters = {"min_confidence": policy.min_confidence, "signals": list(policy.signals)}
        db.execute(LIMIT_CANDIDATES["pairs"], parameters)
        db.execute(LIMIT_CANDIDATES["labels"], {"min_confidence": policy.min_confidence})
        queries = LIMIT_NARROW
        if with_texts:
            db.execute(LIMIT_WANTED)
            names = [n for (n,) in db.execute(
                "SELECT DISTINCT lake_file FROM wanted ORDER BY 1").fetchall()]  # fmt: skip
            files = [str(lake_root / n) for n in names]
            db.execute(LIMIT_TEXTS, {"files": files, "names": names})
            queries = LIMIT_COPY
        for kind in policy.kinds:
            target = out / f"{kind}.parquet"
            copied = db.execute(
                f"COPY ({queries[kind]}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)"
            ).fetchone()
            if with_texts:
                rows[kind] = int(copied[0]) if copied else 0
        db.close()
        timings[name] = time.perf_counter() - started
        if with_texts:
            cpu_full = cpu_seconds() - cpu_before
            out_mb = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": timings["full"], "narrow_seconds": timings["narrow"],
            "cpu_seconds": cpu_full, "rows": rows, "out_mb": out_mb,
            "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def transform(data_dir: Path) -> dict:
    """The full transform run the export reads (setup)."""
    from bench.transforms import transform as run

    return run(data_dir, full_refresh=True)


def child(args: argparse.Namespace) -> None:
    """Run one step (``--child``) and print its result as one JSON line."""
    data_dir: Path = args.data_dir
    if args.child == "build":
        result = build(data_dir, events=args.events, seed=args.seed, partitions=args.partitions,
                       file_events=args.file_events)  # fmt: skip
    elif args.child == "transform":
        result = transform(data_dir)
    elif args.child == "export":
        result = run_export(data_dir)
    else:
        result = limit(data_dir)
    print(json.dumps(result))


# --- Parent: set up, run the children, print the table -------------------------------------------


def run_child(step: str, data_dir: Path, *extra: str) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its result (the last line it prints)."""
    return transforms_bench.run_child(step, data_dir, *extra, module="bench.export")


def note(message: str) -> None:
    """Progress, on stderr (the table goes to stdout)."""
    transforms_bench.note(message, module="bench.export")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Set up a data dir (key, lake, warehouse), then alternate limits and exports."""
    from privacy.keys import create_keyring

    data_dir = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        create_keyring(data_dir / KEY_FILE)
        note(f"{args.events:,} events: building the lake (scrubbed) in {data_dir}")
        lake = run_child("build", data_dir, "--events", str(args.events), "--seed", str(args.seed),
                         "--partitions", str(args.partitions),
                         "--file-events", str(args.file_events))  # fmt: skip
        note(f"{lake['rows']:,} rows in {lake['files']} files ({lake['lake_mb']:,.0f} MiB) built "
             f"in {lake['seconds']:.0f} s; transform run")  # fmt: skip
        warehouse = run_child("transform", data_dir)
        note(f"transform run {warehouse['seconds']:.1f} s; {args.repeats} limits and exports")
        limits, exports = [], []
        for repeat in range(args.repeats):
            limits.append(run_child("limit", data_dir))
            exports.append(run_child("export", data_dir))
            note(f"repeat {repeat + 1}: limit {limits[-1]['seconds']:.2f} s, "
                 f"export {exports[-1]['seconds']:.2f} s")  # fmt: skip
        export_seconds = statistics.median(e["seconds"] for e in exports)
        limit_seconds = statistics.median(m["seconds"] for m in limits)
        narrow_seconds = statistics.median(m["narrow_seconds"] for m in limits)
        steps = {
            step: statistics.median(e["steps"].get(step, 0.0) for e in exports)
            for step in exports[0]["steps"]
        }
        return {
            "events": args.events,
            "dataset": DATASET,
            "lake": lake,
            "transform": warehouse,
            "exports": exports,
            "limits": limits,
            "export_seconds": export_seconds,
            "limit_seconds": limit_seconds,
            "narrow_limit_seconds": narrow_seconds,
            "ratio": export_seconds / limit_seconds,
            "narrow_ratio": export_seconds / narrow_seconds,
            "steps": steps,
            "peak_rss_mb": max(e["peak_rss_mb"] for e in exports),
            "code": code_version(),
        }
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def report(result: dict[str, Any]) -> None:
    """Print the table, the steps, the rows, the machine and the commit."""
    import duckdb
    import polars

    exports, limits = result["exports"], result["limits"]
    export_s, limit_s = result["export_seconds"], result["limit_seconds"]
    narrow_s = result["narrow_limit_seconds"]
    print(f"\nexport of dataset {result['dataset']!r} (default datasets file) from "
          f"{result['events']:,} events, medians of {len(exports)} runs; limit: DuckDB reading "
          "the candidate rows and their lake texts, COPY to Parquet")  # fmt: skip
    print(f"{'':>14} {'seconds':>8} {'CPU s':>7} {'peak RSS MB':>11} {'runs s':<24}")
    lines = (
        ("export", export_s, exports, "seconds"),
        ("limit", limit_s, limits, "seconds"),
        ("narrow limit", narrow_s, limits, "narrow_seconds"),
    )
    for label, seconds, runs, key in lines:
        cpu = statistics.median(r["cpu_seconds"] for r in runs) if key == "seconds" else None
        peak = max(r["peak_rss_mb"] for r in runs)
        print(f"{label:>14} {seconds:>8.2f} {'' if cpu is None else f'{cpu:.1f}':>7} "
              f"{peak:>11,.0f} {', '.join(f'{r[key]:.2f}' for r in runs):<24}")  # fmt: skip
    print(f"export / limit: {result['ratio']:.1f}; export / narrow limit: "
          f"{result['narrow_ratio']:.1f} (no goal set)")  # fmt: skip
    read_s = statistics.median(e["read_seconds"] for e in exports)
    print("\nexport steps s (median of the runs) and share of the export:")
    print(f"  {'reading the warehouse':<50} {read_s:>7.2f} {read_s / export_s:>6.0%}")
    for step, seconds in result["steps"].items():
        inner = step in READ_ORDER or rank(step, []) < 0
        label = f"  {step}" if inner else step
        print(f"  {label:<50} {seconds:>7.2f} {seconds / export_s:>6.0%}")
    rows_export = exports[0]["rows"]
    rows_limit = limits[0]["rows"]
    print("rows (export after its caps / limit): " + ", ".join(
        f"{kind} {rows_export.get(kind, 0):,} / {rows_limit.get(kind, 0):,}"
        for kind in rows_export))  # fmt: skip
    print(f"data files: export {exports[0]['data_files']} ({exports[0]['data_mb']:,.1f} MiB), "
          f"limit {len(rows_limit)} ({limits[0]['out_mb']:,.1f} MiB); gate passed: "
          f"{all(e['gate_success'] for e in exports)}")  # fmt: skip
    lake, warehouse = result["lake"], result["transform"]
    print(f"lake: {lake['rows']:,} rows in {lake['files']} files ({lake['lake_mb']:,.0f} MiB, "
          f"scrubbed); warehouse {warehouse['warehouse_mb']:,.0f} MiB; interpreter and "
          f"libraries before the export: {exports[0]['rss_before_mb']:,.0f} MB")  # fmt: skip
    print(machine_line(duckdb, polars))
    print(f"code: {result['code']}")


def main() -> None:
    """Run the benchmark (or, with ``--child``, one of its steps)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--file-events", type=int, default=5000)
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--child", choices=["build", "transform", "export", "limit"],
                        help=argparse.SUPPRESS)  # fmt: skip
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    result = measure(args)
    report(result)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
