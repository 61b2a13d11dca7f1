"""The CLI as a user runs it: a real subprocess, and the one red line a mistake ends in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def flywheel(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m flywheel ARGS`` with none of the caller's FLYWHEEL_* settings but ``env``;
    ``timeout`` catches a hang, not a slow command (an export evaluating its version took 100 s
    on a loaded 2-core machine)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    return subprocess.run(
        [sys.executable, "-m", "flywheel", *args],
        capture_output=True,
        text=True,
        env={**clean, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], fragment: str, *, code: int = 1
) -> None:
    """One red line holding ``fragment``, no traceback, and the exit code of its kind (3 a
    configuration error, 4 busy, 5 the quality gate, 6 not found, 7 a newer manifest, 1 anything
    else)."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert fragment in errors[0]


def env(data_dir: Path, **more: str) -> dict[str, str]:
    """Settings of a command on ``data_dir`` with the key file beside it, and ``more``."""
    return {
        "FLYWHEEL_DATA_DIR": str(data_dir),
        "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(data_dir.parent / "keys.json"),
        **more,
    }
