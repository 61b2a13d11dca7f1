"""A real, tiny file system for tests of a full disk: a tmpfs the test mounts (root only)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_file_system(mount_point: Path, *, size_kib: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` KiB at ``mount_point`` for the block; skips the test when
    this process may not mount (not root, or no mount in this container)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount_point.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(folder: Path) -> Path:
    """Write a ballast file into ``folder`` until its file system is full; returns the file."""
    ballast = folder / "ballast"
    chunk = b"\0" * 4096
    with ballast.open("wb", buffering=0) as handle:
        try:
            while handle.write(chunk):
                pass
        except OSError:
            pass  # full: what was written stays
    return ballast


def remount(mount_point: Path, mode: str) -> None:
    """Remount a file system ``small_file_system`` mounted read-only (``ro``) or back (``rw``)."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], check=True)
