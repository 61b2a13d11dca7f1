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

On object storage (``FLYWHEEL_EXPORT__TARGET=s3://...``) there is no rename and no lock, so
``commit_objects`` publishes the attempt (built on the exporting host's disk as above) this way:

1. numbers it: one more than the highest version with any object under its prefix;
2. claims the number: a conditional put (``If-None-Match: *``) of ``v<N>/.claim``, naming the
   owner (the host and the staging folder) and the attempt. Two exporters that pick the same
   number cannot both claim it: the second fails with ``ExportBusyError`` before uploading
   anything, and its next run numbers past the first's version;
3. uploads the card, the data files and the quality report under ``v<N>/``;
4. writes ``v<N>/manifest.json`` last, with a conditional put too: the manifest is the commit,
   and a version without one does not exist for any reader (``export.catalog``);
5. deletes the claim.

A failure in steps 3 or 4 deletes what the attempt uploaded, claim last. A process killed
there leaves objects without a manifest, which no reader sees; the owner's next export or
erasure (holding its local lock, so none of its own attempts is running) deletes them and takes
the number again. Claims of another owner are left alone and numbered past.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from export.card import render_card
from export.catalog import (
    CLAIM_FILE,
    LATEST_FILE,
    Catalog,
    VersionObjects,
    claim_owner,
    claim_record,
    is_version,
    published_versions,
)
from export.manifest import MANIFEST_FILE, FileEntry, Manifest, write_manifest_file
from flywheel.errors import ExportBusyError, ExportError, FlywheelError
from warehouse.lake import Lake

log = logging.getLogger(__name__)

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


def publish_attempt(catalog: Catalog, folder: Path, attempt: Path, manifest: Manifest) -> Manifest:
    """Commit a finished attempt to the target: ``commit_version`` on disk, ``commit_objects``
    on S3. ``folder`` is the dataset's local folder holding the attempt and the lock."""
    if catalog.is_local:
        committed = commit_version(folder, attempt, manifest)
    else:
        committed = commit_objects(catalog, attempt, manifest, owner=owner_of(folder))
    # After the commit, so the pointer never names a version that is not whole; a crash in
    # between leaves it on the previous version, which is whole and current until then.
    point_latest(catalog, manifest.dataset, committed.version)
    return committed


def ensure_latest(catalog: Catalog, name: str, manifest: Manifest) -> None:
    """Point ``LATEST`` at the latest version ``manifest`` unless it does already, or that
    version was superseded: what an export with nothing new does, so that a pointer a crash
    left behind (or none, from a release before it) is set by the next export."""
    pointed = catalog.storage.read_bytes(f"{name}/{LATEST_FILE}")
    if manifest.superseded_by is None and pointed != f"{manifest.version}\n".encode():
        point_latest(catalog, name, manifest.version)


def point_latest(catalog: Catalog, name: str, version: str | None) -> None:
    """Make ``LATEST`` name ``version`` (None: remove it, the dataset has no current version).
    Replaced whole: a renamed temporary file, fsynced with its folder, on disk; one put on S3,
    where an object is replaced atomically. The caller holds the dataset's lock."""
    key = f"{name}/{LATEST_FILE}"
    if not catalog.is_local:
        if version is None:
            catalog.objects.delete(key)
        else:
            catalog.objects.write_once(key, f"{version}\n".encode())
        return
    folder = catalog.folder(name)
    if version is None:
        (folder / LATEST_FILE).unlink(missing_ok=True)
    else:
        catalog.storage.write_once(key, f"{version}\n".encode())
    Lake.sync_folder(folder)


def owner_of(folder: Path) -> str:
    """Who claims versions on S3 for the attempts built in ``folder``: this host and folder.
    One owner's attempts never overlap (they hold the folder's lock)."""
    return f"{socket.gethostname()}:{folder.resolve()}"


def commit_objects(catalog: Catalog, attempt: Path, manifest: Manifest, *, owner: str) -> Manifest:
    """Publish ``attempt`` as the next version of ``manifest.dataset`` on S3 (see the module's
    docstring); returns the manifest written. The caller holds the owner's lock."""
    name = manifest.dataset
    found = clear_abandoned(catalog, name, owner)
    published = sorted((v for v, o in found.items() if o.published), key=lambda v: int(v[1:]))
    version = f"v{max((int(v[1:]) for v in found), default=0) + 1}"
    claim = catalog.key(name, version, CLAIM_FILE)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    if not catalog.objects.write_if_absent(claim, claim_record(owner, attempt.name, started)):
        raise ExportBusyError(
            f"{version} of dataset {name!r} was claimed by another exporter at "
            f"{catalog.location} meanwhile; nothing was uploaded, try again (one exporting data "
            "dir per dataset)"
        )
    uploaded: list[str] = []
    try:
        manifest = manifest.model_copy(
            update={"version": version, "previous_version": published[-1] if published else None}
        )
        (attempt / CARD_FILE).write_text(render_card(manifest))
        manifest = manifest.model_copy(update={"files": hash_files(attempt)})
        for entry in manifest.files:
            key = catalog.key(name, version, entry.path)
            uploaded.append(key)
            catalog.objects.write_once(key, (attempt / entry.path).read_bytes())
        # The commit: readers see the version from here on, whole.
        written = catalog.objects.write_if_absent(
            catalog.key(name, version, MANIFEST_FILE), manifest.to_json().encode()
        )
    except BaseException:
        remove_objects(catalog, [*uploaded, claim])
        raise
    if not written:  # only a writer that ignored the claim gets here: its files are ours now
        raise ExportError(
            f"{version} of dataset {name!r} got a manifest from another writer while it was "
            "committed; check that version"
        )
    remove_objects(catalog, [claim])
    return manifest


def clear_abandoned(catalog: Catalog, name: str, owner: str) -> dict[str, VersionObjects]:
    """Delete what ``owner``'s killed attempts left under ``name`` on S3 (a claim, some files, no
    manifest), and a claim its commit did not get to delete; returns the listing left."""
    found = catalog.listing(name).get(name, {})
    left: dict[str, VersionObjects] = {}
    for version, objects in sorted(found.items()):
        claim = catalog.key(name, version, CLAIM_FILE)
        if CLAIM_FILE in objects.keys and claim_owner(catalog.objects.read_bytes(claim)) == owner:
            if objects.published:
                remove_objects(catalog, [claim])
            else:
                log.warning(
                    "removing an abandoned export attempt",
                    extra={"fields": {"dataset": name, "version": version}},
                )
                keys = [catalog.key(name, version, k) for k in objects.keys if k != CLAIM_FILE]
                remove_objects(catalog, [*sorted(keys), claim], strict=True)
                continue
        left[version] = objects
    return left


def remove_objects(catalog: Catalog, keys: list[str], *, strict: bool = False) -> None:
    """Delete objects in order. Not ``strict`` (cleaning up after a failure): an error is logged
    and the rest left for ``clear_abandoned``, so the failure that matters is the one raised."""
    for key in keys:
        try:
            catalog.objects.delete(key)
        except FlywheelError:
            if strict:
                raise
            log.warning("could not remove an attempt's object", extra={"fields": {"key": key}})
            return


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
