"""Retention of published versions: only the newest ``keep_versions`` keep their data files.

Every version is a full copy of its dataset, so an hourly export fills the target. With
``keep_versions = N`` in a dataset's policy, each publication is followed by pruning: every
version older than the newest N loses its data files (``data/``), and keeps its manifest, its
card and its quality report as the record of what was published. The manifest says so
(``pruned``: when, the setting, the versions that kept their data, a reason) and lists the data
files as ``deleted``; the card gets a notice atop its body. Readers asking for a pruned
version's data get a ``VersionPrunedError`` saying when and why (``export.catalog``).

What is never pruned:

- the newest version, whatever N;
- superseded versions: an erasure already decided what they keep
  (``FLYWHEEL_PRIVACY__DELETE_SUPERSEDED_FILES``), and they are not counted among the N, which
  are the newest versions still current. A version an erasure published in place of another is
  a current version like any.

Pruning runs under the dataset's lock, after the version is committed and its difference with
the one before counted (the console's comparison of the newest two reads it). It is idempotent:
a version already pruned is left alone, and a crash halfway (the data deleted, the manifest not
yet rewritten) is finished by the next publication. A failure is logged and changes nothing for
the version just published.

On S3 the same three steps write objects: the card rewritten, the data objects deleted, then the
manifest rewritten (the data go before the manifest says so, as when an erasure supersedes a
version).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from datetime import UTC, datetime

from export.catalog import Catalog
from export.commit import CARD_FILE, file_entry
from export.manifest import MANIFEST_FILE, FileEntry, Manifest, Pruning, write_manifest_file
from flywheel.errors import FlywheelError

log = logging.getLogger(__name__)

DATA_PREFIX = "data/"


def prunable(manifests: dict[str, Manifest], keep: int) -> tuple[list[str], list[str]]:
    """(the versions to prune, the versions that keep their data) of a dataset whose published
    versions' manifests are ``manifests`` (oldest first): the current (not superseded) versions
    but the newest ``keep``; never the newest version, never one pruned already."""
    if keep < 1:
        raise ValueError("keep_versions is at least 1: the newest version is never pruned")
    current = [v for v, manifest in manifests.items() if manifest.superseded_by is None]
    kept = [v for v in current[-keep:] if manifests[v].pruned is None]
    return [v for v in current[:-keep] if manifests[v].pruned is None], kept


def prune_versions(catalog: Catalog, name: str, keep: int) -> list[str]:
    """Delete the data files of dataset ``name``'s versions older than the newest ``keep``
    current ones (``prunable``); returns the versions pruned. Call it under the dataset's lock.
    A version whose manifest cannot be read is left as it is."""
    manifests: dict[str, Manifest] = {}
    for version in catalog.versions(name):
        try:
            manifests[version] = catalog.read_manifest(name, version)
        except FlywheelError as exc:
            log.warning(
                "dataset version not considered for pruning",
                extra={"fields": {"dataset": name, "version": version, "error": str(exc)}},
            )
    doomed, kept = prunable(manifests, keep)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    reason = (
        f"the dataset's policy keeps the data of its newest {keep} current version(s) "
        f"(keep_versions = {keep}); {', '.join(kept)} kept theirs, and newer versions may "
        "have come since: read one of those"
    )
    pruning = Pruning(at=when, keep_versions=keep, kept=kept, reason=reason)
    for version in doomed:
        _prune(catalog, manifests[version], pruning)
    return doomed


def _with_notice(text: str, pruning: Pruning) -> str:
    """The card with the pruned notice atop its body (once)."""
    notice = (
        f"> **Data files pruned** on {pruning.at}: {pruning.reason}. This card, the manifest "
        "and the quality report remain as the record of this version.\n\n"
    )
    if "**Data files pruned**" in text:
        return text
    head, marker, body = text.partition("\n---\n")
    return f"{head}{marker}\n{notice}{body.lstrip()}" if marker else notice + text


def _prune(catalog: Catalog, manifest: Manifest, pruning: Pruning) -> None:
    """Delete one version's data files and record it: the card's notice, the data, then the
    manifest."""
    name, version = manifest.dataset, manifest.version
    data = {f.path for f in manifest.files if f.path.startswith(DATA_PREFIX)}
    if not catalog.is_local:
        objects = catalog.objects
        card_key = catalog.key(name, version, CARD_FILE)
        marked = _with_notice((objects.read_bytes(card_key) or b"").decode(), pruning).encode()
        objects.write_once(card_key, marked)
        for path in sorted(data):
            objects.delete(catalog.key(name, version, path))
        card = FileEntry(path=CARD_FILE, sha256=hashlib.sha256(marked).hexdigest(),
                         bytes=len(marked))  # fmt: skip
        objects.write_once(
            catalog.key(name, version, MANIFEST_FILE),
            _recorded(manifest, data, card, pruning).to_json().encode(),
        )
        return
    folder = catalog.folder(name) / version
    card_path = folder / CARD_FILE
    text = card_path.read_text()
    marked_text = _with_notice(text, pruning)
    if marked_text != text:
        card_path.write_text(marked_text)
    shutil.rmtree(folder / "data", ignore_errors=True)
    write_manifest_file(folder, _recorded(manifest, data, file_entry(folder, CARD_FILE), pruning))


def _recorded(manifest: Manifest, data: set[str], card: FileEntry, pruning: Pruning) -> Manifest:
    """The manifest of a pruned version: its data files deleted, its card's new hash."""
    files = [
        card if entry.path == CARD_FILE
        else entry.model_copy(update={"deleted": True}) if entry.path in data
        else entry
        for entry in manifest.files
    ]  # fmt: skip
    return manifest.model_copy(update={"files": files, "pruned": pruning})
