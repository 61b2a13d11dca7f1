"""Linting the Python blocks of responses with ruff: a batch of blocks, one ruff process.

Each block is written as a file of its own into one temporary folder, and ruff checks the
folder once (``ruff check --output-format json``): starting a process per block would cost more
than linting it. ruff runs with ``--isolated`` (no configuration file of the host counts),
``--no-cache`` (nothing written beside the blocks), ``--ignore-noqa`` (a ``# noqa`` in a
response does not excuse it) and the target version of the running Python (whose ``compile``
decided the block is Python). Code is read, never executed.

Two sets of rules are checked in the same run: ``ERROR_RULES``, the errors a block must be free
of to pass the process level (syntax errors, invalid comparisons and statements, undefined
names: the set flake8's users run as "errors only"), and the rules of the principles file
(transforms/principles.toml), each of which names a principle.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flywheel.errors import ConfigError
from transforms.principles import Principles

ERROR_RULES = ("E9", "F63", "F7", "F82")
"""ruff's error rules (prefixes): E9 syntax and I/O errors, F63 invalid comparisons, F7 invalid
statements (``return`` outside a function...), F82 undefined names (F821, F822, F823)."""
TARGET_VERSION = f"py3{sys.version_info.minor}"
_NAME = "block{:07d}.py"


@dataclass(frozen=True)
class Linted:
    """What ruff found in one block."""

    errors: bool
    """Whether an ``ERROR_RULES`` rule (or a syntax error) fired."""
    broken: tuple[str, ...]
    """The principles broken, by name, sorted."""


def ruff_binary() -> str:
    """The ruff executable of the installed ``ruff`` package."""
    try:
        from ruff.__main__ import find_ruff_bin
    except ImportError:
        raise ConfigError(
            "ruff is not installed; the code checks need it (pip install feedback-flywheel)"
        ) from None
    return str(find_ruff_bin())


def ruff_version() -> str:
    """The installed ruff's version (a code check's result depends on it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ruff")
    except PackageNotFoundError:
        return ""


def command(principles: Principles, folder: Path) -> list[str]:
    """The one ruff command that lints every file in ``folder``."""
    codes = sorted({*ERROR_RULES, *principles.rules})
    return [
        ruff_binary(),
        "check",
        "--isolated",
        "--no-cache",
        "--ignore-noqa",
        "--exit-zero",
        "--quiet",
        "--output-format",
        "json",
        "--target-version",
        TARGET_VERSION,
        "--line-length",
        str(principles.linter.line_length),
        "--config",
        f"lint.mccabe.max-complexity = {principles.linter.max_complexity}",
        "--select",
        ",".join(codes),
        str(folder),
    ]


def lint(bodies: Sequence[str], principles: Principles) -> list[Linted]:
    """Lint ``bodies`` (Python sources that compile) with one ruff process; one result each,
    in order."""
    if not bodies:
        return []
    rules = principles.rules
    errors = [False] * len(bodies)
    broken: list[set[str]] = [set() for _ in bodies]
    with tempfile.TemporaryDirectory(prefix="flywheel-lint-") as name:
        folder = Path(name)
        for index, body in enumerate(bodies):
            (folder / _NAME.format(index)).write_text(body, encoding="utf-8")
        done = subprocess.run(  # noqa: S603 - a fixed command line; the files are data
            command(principles, folder), capture_output=True, check=False
        )
        if done.returncode != 0:
            first = done.stderr.decode(errors="replace").strip().splitlines()[:1]
            raise ConfigError(
                f"ruff could not lint the code blocks (exit code {done.returncode}: "
                f"{first[0][:300] if first else 'no message'})"
            )
        for diagnostic in json.loads(done.stdout or b"[]"):
            index = int(Path(diagnostic["filename"]).stem.removeprefix("block"))
            code = diagnostic.get("code")
            if code in rules:
                broken[index].add(rules[code])
            else:  # an error rule, or a syntax error (no code)
                errors[index] = True
    return [Linted(e, tuple(sorted(b))) for e, b in zip(errors, broken, strict=True)]
