"""Benchmark: ``flywheel transform plan`` beside a full transform run, on the same warehouse.

    .venv/bin/python -m bench.plan [--events 500000] [--repeats 2] [--data-dir DIR]

Builds a lake of ``--events`` simulated events as ``bench.transforms`` does (setup, not
measured; ``--data-dir`` reuses one built before, e.g. by a former run of this benchmark with
``--keep``), then alternates, ``--repeats`` times, each in a fresh child process:

- ``full run``: ``run_transforms(full_refresh=True)`` on a new, empty warehouse (the limit);
- ``plan``: ``transforms.plan.planned`` with another policy than the warehouse's (edits counted
  from 30% of the text changed, copies weighing 0.1), so that every model is rebuilt on the
  copy: the plan's worst case; then the ``default`` dataset's next version
  (``export.preview``), as ``flywheel transform plan`` shows it.

The goal: the plan (models and dataset) within twice the full run's time, medians of the same
run. The plan's own parts (copying the warehouse, the run on the copy, comparing the tables, the
dataset's preview) are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.transforms import build, code_version, machine_line, note, run_child

GOAL_RATIO = 2.0
MODULE = "bench.plan"


def plan(data_dir: Path) -> dict[str, Any]:
    """One plan with another policy, and the default dataset's preview."""
    from export.catalog import Catalog
    from export.policy import load_datasets
    from export.preview import preview
    from privacy.keys import Keyring
    from transforms.plan import planned
    from transforms.policy import DEFAULT_POLICY
    from warehouse.lake import Lake
    from warehouse.table import LakeTable, default_catalog_uri

    policy = data_dir.parent / "bench-plan-policy.toml"
    policy.write_text(
        DEFAULT_POLICY.read_text()
        .replace("min_change = 0.02", "min_change = 0.3")
        .replace("copy = 0.5", "copy = 0.1")
    )
    lake = Lake.in_data_dir(data_dir)
    table = LakeTable(lake, default_catalog_uri(data_dir))
    keyring = Keyring(1, {1: b"b" * 32})
    started = time.perf_counter()
    with planned(data_dir, lake=lake, table=table, policy_file=policy) as (found, copy):
        previewing = time.perf_counter()
        dataset = preview(copy, lake, Catalog.in_data_dir(data_dir), "default",
                          load_datasets().dataset("default"), keyring)  # fmt: skip
        previewed = time.perf_counter()
    return {
        "seconds": time.perf_counter() - started,
        "parts": {**found.seconds, "dataset": previewed - previewing},
        "models": {m.name: [m.mode, m.added, m.removed, m.changed] for m in found.models},
        "rows_next": sum(s.rows_next for s in dataset.splits),
    }


def main() -> None:
    """Run the benchmark (or, with ``--child``, one of its steps)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, help="A data dir with a lake built before.")
    parser.add_argument("--keep", action="store_true", help="Keep the data dir built.")
    parser.add_argument("--child", choices=["plan"])
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(plan(args.data_dir)))
        return

    folder = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    data_dir = args.data_dir or folder / "data"
    try:
        if args.data_dir is None:
            note(f"building a lake of {args.events:,} events", module=MODULE)
            build(data_dir, events=args.events, seed=11, partitions=4, file_events=5000,
                  later_days=0)  # fmt: skip
        full: list[dict[str, Any]] = []
        plans: list[dict[str, Any]] = []
        for repeat in range(args.repeats):
            note(f"full run {repeat + 1}/{args.repeats}", module=MODULE)
            full.append(run_child("full", data_dir))
            note(f"plan {repeat + 1}/{args.repeats}", module=MODULE)
            plans.append(run_child("plan", data_dir, module=MODULE))
        full_s = statistics.median(r["seconds"] for r in full)
        plan_s = statistics.median(r["seconds"] for r in plans)
        import duckdb

        print(machine_line(duckdb))
        print(f"code: {code_version()}; {args.events:,} events; medians of {args.repeats}")
        for label, median, runs in (("full run", full_s, full), ("plan", plan_s, plans)):
            each = ", ".join(f"{run['seconds']:.1f}" for run in runs)
            print(f"{label:<12} {median:8.1f} s   (each: {each})")
        parts = plans[-1]["parts"]
        print("  last plan's parts: " + ", ".join(f"{k} {v:.1f} s" for k, v in parts.items()))
        ratio = plan_s / full_s
        verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
        print(f"plan / full run = {ratio:.2f} (goal: at most {GOAL_RATIO}): {verdict}")
        if args.json_out:
            args.json_out.write_text(json.dumps({"full": full, "plan": plans, "ratio": ratio}))
    finally:
        if args.keep or args.data_dir is not None:
            print(f"data dir kept: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
