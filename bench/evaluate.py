"""Benchmark: ``flywheel evaluate`` on the 0.5M-event dataset, against a minute.

    .venv/bin/python -m bench.evaluate [--events 500000] [--data-dir DIR] [--json-out FILE]

Setup (not measured) is ``bench.console``'s: a lake of ``--events`` simulated events landed
through the scrubbing anonymiser, a full transform run, ``default`` published as v1, 1% more
events, an incremental run and v2; kept and reused in ``--data-dir`` (the console benchmark's
data dir serves as it is). Then, in this process, on the latest version: the whole evaluation
with its ablations (``evaluate.utility.evaluate_version``), timed, beside its parts measured in
the same run: reading the pairs from Parquet, encoding every distinct text, and one fit. The
goal is the whole within 60 s; the parts say where the time goes on a slower or busier machine.
The accuracies of each ablation are printed too: a faster fit must leave them as they were.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bench import console as console_bench
from bench.transforms import code_version, machine_line

GOAL_S = 60.0
DATASET = "default"


def measure(data_dir: Path) -> dict[str, object]:
    """The evaluation's time and its parts' (seconds), and what it found."""
    from evaluate.bradley_terry import Encoded, fit
    from evaluate.utility import evaluate_version, read_pairs
    from export.catalog import Catalog

    catalog = Catalog.in_data_dir(data_dir)
    version = catalog.versions(DATASET)[-1]
    files = catalog.data_files(DATASET, version)["dpo"]
    started = time.perf_counter()
    splits = {name: read_pairs(paths) for name, paths in files.items()}
    read_s = time.perf_counter() - started
    train = splits.get("train", [])
    started = time.perf_counter()
    encoded = Encoded(text for pair in train for text in (pair.chosen, pair.rejected))
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    fit([(p.chosen, p.rejected) for p in train], encoded=encoded)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    found = evaluate_version(catalog, DATASET, version)
    whole_s = time.perf_counter() - started
    return {
        "version": version, "train_pairs": found.train_pairs, "fits": 1 + len(found.ablations),
        "texts": len(encoded.rows), "read_s": read_s, "encode_s": encode_s, "fit_s": fit_s,
        "whole_s": whole_s, "goal_s": GOAL_S,
        "accuracies": {a.name: a.accuracy for a in found.accuracies},
        "ablations": {a.signal: {m.name: m.accuracy for m in a.accuracies}
                      for a in found.ablations},
    }  # fmt: skip


def report(result: dict[str, object], events: int) -> None:
    import duckdb

    whole = float(result["whole_s"])  # type: ignore[arg-type]
    print(f"\nflywheel evaluate on {DATASET} {result['version']} of {events:,} simulated events: "
          f"{result['train_pairs']:,} train pairs, {result['texts']:,} distinct train texts, "
          f"{result['fits']} fits (one per signal left out, and all)")  # fmt: skip
    print(f"{'part (same run)':<40} {'seconds':>8}")
    parts = (("read the pairs (Parquet)", "read_s"), ("encode the train texts", "encode_s"),
             ("one fit (all train pairs)", "fit_s"))  # fmt: skip
    for name, key in parts:
        print(f"{name:<40} {float(result[key]):>8.1f}")  # type: ignore[arg-type]
    verdict = "met" if whole <= GOAL_S else "NOT met"
    print(f"{'the whole evaluation, with ablations':<40} {whole:>8.1f}  goal <= {GOAL_S:.0f} s: "
          f"{verdict}")  # fmt: skip
    print(f"accuracies: {result['accuracies']}")
    for signal, accuracies in result["ablations"].items():  # type: ignore[attr-defined]
        print(f"  without {signal}: {accuracies}")
    print(f"load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(machine_line(duckdb))
    print(f"code: {code_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--data-dir", type=Path, help="set up here and keep (reused when ready)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    if not console_bench.ready(data_dir):
        console_bench.set_up(data_dir, args.events, args.seed)
    result = measure(data_dir)
    report(result, args.events)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))
    if args.data_dir is None:
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
