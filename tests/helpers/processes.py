"""Processes that stand in for others in tests: a session leader waiting for its stdin."""

from __future__ import annotations

import subprocess
import sys


def process(*args: str) -> subprocess.Popen[bytes]:
    """A process in a session of its own (as ``start`` runs the broker) that waits for stdin.

    Returned once it runs: just after the exec its command line can still read as empty.
    """
    started = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert started.stdout is not None and started.stdout.readline() == b"up\n"
    return started
