"""How fast the CLI answers ``--help``: ``flywheel --help`` and every sub-command's.

    .venv/bin/python -m bench.cli_startup [--repeats 7] [--json-out FILE]

A scheduler, a shell completion or a person typing waits for this before anything happens, so
the goal is under 0.3 s for each. Every command line runs as a fresh process (the installed
``flywheel`` console script beside this interpreter), ``--repeats`` times, alternating commands so
that noise on this shared machine spreads over all of them; its median is compared with the
limit. The interpreter's own start (``python -c pass``) and the start of Typer alone (``import
typer``, which every command pays) are measured in the same run, so a slow machine shows as a
slow floor rather than a slow CLI. The sub-commands are read from the CLI's command tree, so a
new one is measured without editing this file. For the slowest command, ``-X importtime`` names
the imports that cost the most, to say where to look when the goal is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

LIMIT_SECONDS = 0.3


def flywheel_script() -> str:
    """The ``flywheel`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("flywheel")
    if not script.exists():
        raise SystemExit(f"no flywheel script beside {sys.executable}: install the project first")
    return str(script)


def command_paths() -> list[list[str]]:
    """Every command line to measure, from the CLI's Typer app: [] (the top level) and each
    group's and command's path, e.g. ["kafka", "local", "up"]."""
    import typer.main

    [script] = entry_points(group="console_scripts", name="flywheel")
    module = __import__(script.module, fromlist=["app"])
    root = typer.main.get_command(module.app)
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, [*path, name])

    walk(root, [])
    return paths


def timed(argv: list[str]) -> float:
    """Wall-clock seconds of one run of ``argv``, which must succeed."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or ("--help" in argv and not done.stdout.strip()):
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def costly_imports(argv: list[str], top: int = 5) -> list[tuple[str, float]]:
    """The ``top`` imports with the highest cumulative time when running ``argv`` (Python's
    ``-X importtime``), as (module, seconds), those the command itself imports (not nested)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, check=False
    )
    costs: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, nested = line.split(":", 1)[1].split("|")
        name = nested.removeprefix(" ").rstrip()  # two spaces of indent per level of nesting
        if cumulative.strip().isdigit() and not name.startswith(" "):
            costs[name] = max(costs.get(name, 0.0), int(cumulative) / 1e6)
    return sorted(costs.items(), key=lambda item: -item[1])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each command line")
    parser.add_argument("--json-out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    script = flywheel_script()
    paths = command_paths()
    floors = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
    }
    times: dict[str, list[float]] = {name: [] for name in floors}
    lines = {" ".join(["flywheel", *path, "--help"]): [script, *path, "--help"] for path in paths}
    times.update({name: [] for name in lines})
    for repeat in range(args.repeats):
        for name, command in {**floors, **lines}.items():
            times[name].append(timed(command))
        print(f"  round {repeat + 1}/{args.repeats} done", flush=True)

    medians = {name: statistics.median(runs) for name, runs in times.items()}
    commands = {name: medians[name] for name in lines}
    slowest = max(commands, key=lambda name: commands[name])
    over = [name for name, seconds in commands.items() if seconds >= LIMIT_SECONDS]

    width = max(map(len, medians))
    print(f"\nmedian of {args.repeats} fresh processes each; limit {LIMIT_SECONDS:.2f} s\n")
    for name in floors:
        print(f"  {name:<{width}}  {medians[name]:.3f} s   (floor, same run)")
    for name, seconds in sorted(commands.items(), key=lambda item: -item[1]):
        mark = "over" if seconds >= LIMIT_SECONDS else "ok"
        print(f"  {name:<{width}}  {seconds:.3f} s   {mark}")
    imports = costly_imports([script, *lines[slowest][1:]])
    print(f"\nslowest: {slowest} {commands[slowest]:.3f} s; costliest imports there:")
    for module, seconds in imports:
        print(f"  {module:<24} {seconds:.3f} s")
    print(
        f"\n{len(commands)} command lines, slowest {commands[slowest]:.3f} s against the limit "
        f"{LIMIT_SECONDS:.2f} s: goal {'met' if not over else 'NOT met'}"
        + (f" ({len(over)} over: {', '.join(over)})" if over else "")
    )

    if args.json_out:
        doc = {
            "limit_seconds": LIMIT_SECONDS,
            "repeats": args.repeats,
            "floors": {name: medians[name] for name in floors},
            "commands": commands,
            "runs": times,
            "slowest": {"command": slowest, "seconds": commands[slowest]},
            "costliest_imports": dict(imports),
            "goal_met": not over,
        }
        args.json_out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if not over else 1


if __name__ == "__main__":
    sys.exit(main())
