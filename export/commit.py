"""Making a finished attempt folder the next version of a dataset: the commit of a publication.

``flywheel export run`` (export/publish.py) and erasure (export/erasure.py) both build a version
in a hidden attempt folder beside the versions, holding the dataset's lock (``locked``), and
hand it to ``commit_version``, which:

1. numbers it: one more than the highest version folder;
2. writes the card (``README.md``) and the manifest, listing every file with its sha256 and size;
3. fsyncs every file and folder of the attempt;
4. renames the attempt to ``v<N>`` and fsyncs the dataset's folder (``Lake.publish``, the lake's
   own commit). The rename is atomic on one file system: readers see the whole version or none.

A failure before the rename leaves no version: the attempt is the caller's to remove, and the
next commit takes the same number. Versions are never written again after the rename, except
by erasure marking one superseded (``write_manifest_file``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from export.card import render_card
from export.catalog import is_version, published_versions
from export.manifest import MANIFEST_FILE, FileEntry, Manifest, write_manifest_file
from flywheel.errors import ExportBusyError, ExportError
from warehouse.lake import Lake

CARD_FILE = "README.md"
LOCK_FILE = ".lock"


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the dataset's lock (``flock`` on ``<folder>/.lock``): one export or erasure of a
    dataset at a time; a second one fails at once with ``ExportBusyError``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_FILE).open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExportBusyError(
                f"another export of the dataset {folder.name!r} is running; wait for it to finish"
            ) from None
        yield


def next_version(folder: Path) -> str:
    """The number the next commit takes: one more than the highest version folder (with or
    without a manifest, so a rename never lands on a folder that is there)."""
    numbers = [int(p.name[1:]) for p in folder.iterdir() if is_version(p.name)]
    return f"v{max(numbers, default=0) + 1}"


def commit_version(folder: Path, attempt: Path, manifest: Manifest) -> Manifest:
    """Make ``attempt`` (a folder in ``folder`` holding the data files and the quality report)
    the next version of the dataset; returns the manifest written, with its ``version``,
    ``previous_version`` and ``files`` set. The caller holds the dataset's lock (``locked``)."""
    published = published_versions(folder)
    version = next_version(folder)
    manifest = manifest.model_copy(
        update={"version": version, "previous_version": published[-1] if published else None}
    )
    (attempt / CARD_FILE).write_text(render_card(manifest))
    manifest = manifest.model_copy(update={"files": hash_files(attempt)})
    write_manifest_file(attempt, manifest)
    sync_tree(attempt)
    final = folder / version
    if final.exists():  # next_version counted it: only a writer ignoring the lock gets here
        raise ExportError(f"{version} of dataset {folder.name!r} appeared while it was committed")
    Lake.publish(attempt, final)
    return manifest


def sync_tree(root: Path) -> None:
    """fsync every file under ``root``, then every folder, deepest first, ``root`` last: its
    contents are on disk before a rename makes it visible."""
    folders = [root]
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            folders.append(path)
        else:
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
    for path in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        Lake.sync_folder(path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(folder: Path, relative: str) -> FileEntry:
    """A manifest's entry for one file of a version's folder."""
    path = folder / relative
    return FileEntry(path=relative, sha256=sha256_file(path), bytes=path.stat().st_size)


def hash_files(folder: Path) -> list[FileEntry]:
    """Every file of a version's folder but its manifest, in path order."""
    return [
        file_entry(folder, p.relative_to(folder).as_posix())
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    ]
