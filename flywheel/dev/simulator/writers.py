"""Writing simulated events and their truth as JSONL files, whole or not at all."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from flywheel.errors import FlywheelError

if TYPE_CHECKING:
    from flywheel.dev.simulator.traffic import Simulation


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SimulatorWriteError(FlywheelError):
    """An output file could not be written; names the file and the reason."""


def _write_error(path: Path, exc: OSError) -> SimulatorWriteError:
    return SimulatorWriteError(f"cannot write {path}: {exc.strerror or type(exc).__name__}")


def _in_place(path: Path) -> bool:
    """True for an existing path that is no regular file (/dev/stdout, a pipe): it is written
    as it is, since a renamed file would replace the device instead of writing to it."""
    return path.exists() and not path.is_file()


def _temporary(path: Path) -> Path:
    # Beside the file (resolved, so a symlink stays one) for an atomic rename.
    target = path.resolve()
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")


def check_writable(path: Path) -> None:
    """Fail now if ``path`` cannot be written, before minutes of generating are lost."""
    if path.is_dir():
        raise SimulatorWriteError(f"cannot write {path}: Is a directory")  # as strerror says it
    if _in_place(path):
        return
    probe = _temporary(path)
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        raise _write_error(path, exc) from None


@contextmanager
def _replacing(path: Path) -> Iterator[TextIO]:
    """A text handle whose content replaces ``path`` once complete: it goes to a temporary file
    beside ``path``, renamed over it at the end, so a failed or interrupted write leaves no
    partial file (and an older file whole)."""
    if _in_place(path):
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            yield handle
        return
    temporary = _temporary(path)
    try:
        with temporary.open("x", encoding="utf-8", newline="\n") as handle:
            yield handle
        temporary.replace(path.resolve())
    except BaseException:  # KeyboardInterrupt too: the point is to leave nothing half-written
        temporary.unlink(missing_ok=True)
        raise


def write_jsonl(events: Iterable[dict[str, Any]], path: Path) -> int:
    """Write events as compact JSON, one per line, replacing ``path`` only once all are written;
    returns how many were written. A failed write is a ``SimulatorWriteError``."""
    check_writable(path)  # a directory, say, would fail only at the rename, after all the work
    count = 0
    try:
        with _replacing(path) as handle:
            for event in events:
                handle.write(_dumps(event) + "\n")
                count += 1
    except OSError as exc:
        raise _write_error(path, exc) from None
    return count


def write_truth(simulation: Simulation, path: Path) -> int:
    """Write the ground truth as JSONL (running the simulation first if it has not finished)."""
    if not simulation.finished:
        for _ in simulation:
            pass
    return write_jsonl(simulation.truth, path)
