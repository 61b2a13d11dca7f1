"""The browser tracker's npm package (``clients/js``) from the tests: installing it as its lock
file says, running its npm scripts and Node.js programs, failing with their output."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "js"
"""The package's folder."""

BUNDLE = PACKAGE / "dist" / "tracker.min.js"
"""The browser bundle ``npm run build`` writes: one ES module for ``<script type="module">``."""

_STAMP = PACKAGE / "node_modules" / ".installed-lock.sha256"


def run(*command: str, timeout: float = 300) -> str:
    """Runs ``command`` in the package folder; its output, or the test fails with it."""
    program = shutil.which(command[0])
    if program is None:
        pytest.fail(f"{command[0]} is missing: clients/js needs Node.js 20 and npm", pytrace=False)
    done = subprocess.run(
        [program, *command[1:]], cwd=PACKAGE, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )
    return done.stdout


def install() -> Path:
    """``npm ci`` when node_modules is missing or was installed from another package-lock.json
    (npm keeps the downloads in ``~/.npm``, so a second install is quick); the package folder."""
    lock = hashlib.sha256((PACKAGE / "package-lock.json").read_bytes()).hexdigest()
    if not _STAMP.is_file() or _STAMP.read_text() != lock:
        run("npm", "ci", "--no-audit", "--no-fund")
        _STAMP.write_text(lock)
    return PACKAGE


def build() -> Path:
    """Installs and builds the package (``dist/``); the browser bundle's path."""
    install()
    run("npm", "run", "build")
    return BUNDLE
