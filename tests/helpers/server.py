"""``flywheel serve`` as users run it: a process of its own on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from flywheel.net import free_port


@contextmanager
def served(log: Path, env: Mapping[str, str], *args: str) -> Iterator[str]:
    """Runs ``flywheel serve ARGS`` with none of the caller's FLYWHEEL_* settings but ``env``,
    its output in ``log``; yields its base URL once ``/healthz`` answers, and stops it at the end.
    A server that exits first, or does not answer within 60 s, fails the test with its log."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    clean.pop("PROMETHEUS_MULTIPROC_DIR", None)
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flywheel", "serve", "--port", str(port), *args],
            env={**clean, **env}, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not _healthy(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"flywheel serve did not start:\n{log.read_text()}", pytrace=False)
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
