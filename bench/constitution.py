"""Benchmark: the constitutional level's cost per 100,000 responses, beside compiling the same
code.

    .venv/bin/python -m bench.constitution [--responses 100000] [--repeats 3] [--json-out FILE]

Corpus (built before the clock, seeded): ``--responses`` responses, each with one Python block
made from the simulator's code templates (``flywheel.dev.simulator.texts.CODE_TOPICS``, slots
filled), every block distinct (a numbered constant and a numbered function are added: real
answers repeat less than the simulator's, and distinct blocks are the worst case, as the code
checks check each distinct block once). One block in ten has a planted breach of a principle
(a different one each time), one in twenty a syntax error.

Measured alternately, ``--repeats`` times each, every figure the median:

- ``parse``: ``ast.parse`` of every block (the process level before compile and lint);
- ``compile``: ``compile`` of every block (the reference: the cheapest check that reads the
  code as Python does);
- ``lint``: ``transforms.lint.lint`` of the blocks that compile: one ruff process over one folder
  of files, the rules of the principles file and the error rules (the constitutional level and
  the process level's lint check; written files and the process start included);
- ``checks``: ``transforms.checks.check_blocks`` (parse, compile, lint: the Python of the
  ``code_checks`` model, as a DuckDB build runs it, one batch);
- ``spark batches``: the same blocks in batches of 10,000 (Spark's Arrow batch size), one ruff
  process each, as the Spark engine's executors run them (one after the other here).

Figures are scaled to 100,000 responses. The constitutional level's own cost is ``lint``; its
ratio to ``compile`` is printed as the figure against its same-run reference. No goal is set.
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.transforms import code_version, machine_line

PER = 100_000
SPARK_BATCH = 10_000
"""``spark.sql.execution.arrow.maxRecordsPerBatch``'s default."""

BREACHES = (
    'password = "hunter2"\n',
    "result = eval(expression)\n",
    "import os\n\nos.system('ls ' + folder)\n",
    'query = f"SELECT * FROM users WHERE id = {user_id}"\ncursor.execute(query)\n',
    "try:\n    risky()\nexcept:\n    pass\n",
    "class config_loader:\n    pass\n",
    "limits = [" + ", ".join(str(i) for i in range(40)) + "]\n",
)


def corpus(responses: int, seed: int) -> list[str]:
    """One Python block per response, every one distinct."""
    from flywheel.dev.simulator.texts import CODE_TOPICS

    rng = random.Random(seed)
    topics = [t for t in CODE_TOPICS if t.lang == "python"]
    blocks = []
    for index in range(responses):
        topic = rng.choice(topics)
        code = topic.code
        for name, values in topic.slots:
            code = code.replace(f"@{name}@", rng.choice(values))
        code += f"\n\nLIMIT_{index} = {rng.randrange(10**6)}\n\n\ndef helper_{index}(x):\n"
        code += f"    return x * LIMIT_{index}\n"
        if index % 10 == 0:
            code += "\n" + BREACHES[(index // 10) % len(BREACHES)]
        if index % 20 == 7:
            code = code.replace("(", "", 1)
        blocks.append(code)
    return blocks


def _parse(blocks: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for body in blocks:
            try:
                ast.parse(body)
            except SyntaxError:
                pass


def _compile(blocks: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for body in blocks:
            try:
                compile(body, "<block>", "exec", dont_inherit=True)
            except SyntaxError:
                pass


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from transforms import checks, lint

    rules = checks.principles()
    blocks = corpus(args.responses, args.seed)
    compiled = [b for b in blocks if checks.python_compiles(b)]
    tagged = [("python", b) for b in blocks]
    processes = 0
    run = lint.subprocess.run

    def counted(*a: Any, **k: Any) -> Any:
        nonlocal processes
        processes += 1
        return run(*a, **k)

    lint.subprocess.run = counted

    def spark_batches() -> None:
        for start in range(0, len(tagged), SPARK_BATCH):
            checks.check_blocks(tagged[start : start + SPARK_BATCH], rules)

    steps: dict[str, Callable[[], Any]] = {
        "parse": lambda: _parse(blocks),
        "compile": lambda: _compile(blocks),
        "lint": lambda: lint.lint(compiled, rules),
        "checks": lambda: checks.check_blocks(tagged, rules),
        "spark batches": spark_batches,
    }
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    found: list[checks.BlockCheck] = []
    for _ in range(args.repeats):
        for name, step in steps.items():
            processes = 0
            started = time.perf_counter()
            result = step()
            seconds[name].append(time.perf_counter() - started)
            if name == "checks":
                found = result
                if processes != 1:
                    raise SystemExit(f"checks ran {processes} ruff processes, not 1")
    lint.subprocess.run = run
    scale = PER / args.responses
    median = {name: statistics.median(values) * scale for name, values in seconds.items()}
    return {
        "responses": args.responses,
        "compiled": len(compiled),
        "broken": sum(1 for f in found if f.broken),
        "clean": sum(1 for f in found if f.clean),
        "lines": sum(b.count("\n") + 1 for b in blocks),
        "seconds_per_100k": median,
        "runs": seconds,
        "ratio": median["lint"] / median["compile"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=PER)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    import duckdb

    from transforms import lint

    result = measure(args)
    per = result["seconds_per_100k"]
    print(machine_line(duckdb) + f", ruff {lint.ruff_version()}; code {code_version()}")
    print(
        f"{result['responses']:,} responses, one distinct Python block each "
        f"({result['lines']:,} lines; {result['compiled']:,} compile, {result['clean']:,} "
        f"lint-clean, {result['broken']:,} break a principle); medians of {args.repeats} runs, "
        "scaled to 100,000 responses"
    )
    print("| step | seconds per 100k responses |")
    print("|---|---:|")
    for name, value in per.items():
        print(f"| {name} | {value:.2f} |")
    print(
        f"constitutional level (lint): {per['lint']:.2f} s per 100k responses; compile of the "
        f"same blocks {per['compile']:.2f} s (same run): {result['ratio']:.1f}x"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
