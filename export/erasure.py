"""Erasure in published datasets: versions holding erased users are replaced and superseded.

For each dataset, the versions not yet superseded are searched for the users: their ``user``
column holds pseudonyms re-keyed for the dataset under the key version its manifest records,
so the erased users' warehouse pseudonyms are re-keyed the same way and looked up there.

- If the latest version holds them, a new version is published from it without their rows
  (the same policy; the quality gate runs again on what is left; the manifest records the
  erasure and the rows removed). If the gate fails on what is left (too few rows, say), nothing
  replaces it and the dataset has no current version until the next export.
- Every version that holds them is then marked superseded, in its manifest and at the top of its
  card, by the new version (or by the latest one, when the latest was already clean); with
  ``delete_files`` (the default setting) its data files are deleted, so only the manifest, the
  card and the quality report stay, as a record.

Re-running finds nothing more to do once every version holding the users is superseded, and
after a crash between publishing the replacement and marking the old version it finishes the
marking, so the step is idempotent.

On S3 the same steps read and write objects: the replacement is uploaded manifest last
(``export.commit.commit_objects``); marking rewrites the card, deletes the data objects, then
rewrites the manifest. Before searching a dataset, the objects of this data dir's abandoned
export attempts (no manifest) are deleted, so no object under the target holds an erased user
(attempts of another owner are left to it: docs/export.md).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.build import Rekeyer
from export.catalog import Catalog
from export.commit import (
    CARD_FILE,
    clear_abandoned,
    file_entry,
    locked,
    owner_of,
    point_latest,
    publish_attempt,
)
from export.manifest import (
    MANIFEST_FILE,
    Erasure,
    FileEntry,
    Fingerprint,
    Manifest,
    Supersession,
    write_manifest_file,
)
from export.policy import DatasetPolicy, Kind
from export.publish import count_rows, staging_folder, write_files
from export.quality import run_gate
from privacy.keys import Keyring

if TYPE_CHECKING:
    import polars as pl

WITHDRAWN = "withdrawn"
ERASED = "users were erased"
"""Why an erasure supersedes a version, as its card's notice says."""
TEXT_COLUMNS = ("prompt", "chosen", "rejected", "completion")
"""The columns of a version's files that hold texts (the prompt as a string or as messages)."""


@dataclass
class DatasetErasure:
    """What erasure did to one dataset."""

    dataset: str
    superseded: list[str] = field(default_factory=list)
    published: str | None = None
    rows_removed: int = 0
    unchecked: list[str] = field(default_factory=list)
    """Versions published under a key version no longer held (they cannot be searched)."""


def _targets(
    manifest: Manifest, name: str, pseudonyms: list[str], keyring: Keyring
) -> set[str] | None:
    version = manifest.pseudonym_key_version
    if version not in keyring.keys:
        return None
    rekey = Rekeyer(keyring.keys[version], name)
    return {rekey(p) for p in pseudonyms}


def _data_files(catalog: Catalog, name: str, version: str) -> list[str]:
    """The Parquet files a version still has, relative to it, in path order."""
    if catalog.is_local:
        folder = catalog.folder(name) / version
        return [p.relative_to(folder).as_posix() for p in sorted(folder.glob("data/*/*.parquet"))]
    found = catalog.listing(name).get(name, {}).get(version)
    keys = found.keys if found is not None else {}
    return sorted(k for k in keys if k.startswith("data/") and k.endswith(".parquet"))


def _read_parquet(
    catalog: Catalog, name: str, version: str, relative: str, **options: Any
) -> pl.DataFrame:
    """A data file of a version, read whole (a local file or an object alike)."""
    import polars as pl

    data = catalog.storage.read_bytes(catalog.key(name, version, relative))
    if data is None:
        raise FileNotFoundError(catalog.url(name, version, relative))
    return pl.read_parquet(io.BytesIO(data), **options)


def _holds(catalog: Catalog, name: str, version: str, targets: set[str]) -> int:
    return sum(
        int(_read_parquet(catalog, name, version, f, columns=["user"])["user"].is_in(targets).sum())
        for f in _data_files(catalog, name, version)
    )


def erase_from_datasets(
    data_dir: Path,
    pseudonyms: list[str],
    keyring: Keyring,
    *,
    request_id: str,
    delete_files: bool = True,
    catalog: Catalog | None = None,
) -> list[DatasetErasure]:
    """Replace and supersede every dataset version that holds one of ``pseudonyms``, at
    ``catalog`` (the target, ``open_catalog``; unset the data dir's ``datasets`` folder)."""
    target = catalog or Catalog.in_data_dir(data_dir)
    names = target.names() if target.is_local else sorted(target.listing())
    results = []
    for name in names:
        folder = staging_folder(target, data_dir, name)
        with locked(folder):
            if not target.is_local:
                clear_abandoned(target, name, owner_of(folder))
            result = _erase_dataset(
                target, data_dir, name, pseudonyms, keyring, request_id, delete_files
            )
        if result.superseded or result.published or result.unchecked:
            results.append(result)
    return results


def _erase_dataset(
    catalog: Catalog,
    data_dir: Path,
    name: str,
    pseudonyms: list[str],
    keyring: Keyring,
    request_id: str,
    delete_files: bool,
) -> DatasetErasure:
    result = DatasetErasure(name)
    every = catalog.versions(name)
    holding: list[str] = []
    targets_of: dict[str, set[str]] = {}
    for version in every:
        manifest = catalog.read_manifest(name, version)
        if manifest.superseded_by:
            continue
        targets = _targets(manifest, name, pseudonyms, keyring)
        if targets is None:
            result.unchecked.append(version)
            continue
        targets_of[version] = targets
        if _holds(catalog, name, version, targets):
            holding.append(version)
    if not holding:
        return result
    latest = every[-1]
    replacement = latest
    if latest in holding:
        published = _republish_without(
            catalog, data_dir, name, latest, targets_of[latest], request_id
        )
        replacement = published[0] if published else WITHDRAWN
        result.published = published[0] if published else None
        result.rows_removed = published[1] if published else 0
    # Before any version is marked: ``LATEST`` never names a superseded version (a rerun after
    # a crash here sets it again, the replacement being the latest version then).
    current = replacement != WITHDRAWN
    current = current and not catalog.read_manifest(name, replacement).superseded_by
    point_latest(catalog, name, replacement if current else None)
    for version in holding:
        _mark_superseded(catalog, name, version, replacement, request_id, delete_files)
        result.superseded.append(version)
    return result


def supersede_versions_holding(
    data_dir: Path,
    holds: Callable[[str], bool],
    *,
    request_id: str,
    reason: str,
    delete_files: bool = True,
    catalog: Catalog | None = None,
) -> list[DatasetErasure]:
    """Supersede every version not yet superseded that has a text ``holds`` (a value the
    scrubber now finds, after a rescrub), the way an erasure supersedes a version: by the latest
    version when that one is clean, else ``withdrawn`` until the next export, which is built
    from the scrubbed lake. Nothing is republished: the texts to publish come from the
    warehouse's next transform run, not from the old version's files. Idempotent: a superseded
    version is not searched again."""
    target = catalog or Catalog.in_data_dir(data_dir)
    names = target.names() if target.is_local else sorted(target.listing())
    results = []
    for name in names:
        folder = staging_folder(target, data_dir, name)
        with locked(folder):
            if not target.is_local:
                clear_abandoned(target, name, owner_of(folder))
            every = target.versions(name)
            holding = [
                version for version in every
                if not target.read_manifest(name, version).superseded_by
                and _holds_text(target, name, version, holds)
            ]  # fmt: skip
            if not holding:
                continue
            by = WITHDRAWN if every[-1] in holding else every[-1]
            for version in holding:
                _mark_superseded(target, name, version, by, request_id, delete_files, reason)
        results.append(DatasetErasure(name, superseded=holding))
    return results


def _holds_text(catalog: Catalog, name: str, version: str, holds: Callable[[str], bool]) -> bool:
    """Whether a text of a version's files (any message of a conversational prompt) ``holds``."""
    for path in _data_files(catalog, name, version):
        frame = _read_parquet(catalog, name, version, path)
        for column in (c for c in TEXT_COLUMNS if c in frame.columns):
            if any(holds(text) for text in set(_texts(frame[column].to_list()))):
                return True
    return False


def _texts(values: list[Any]) -> Iterator[str]:
    """The strings in column values: plain, or inside lists of messages."""
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from _texts(value)
        elif isinstance(value, dict):
            yield from _texts(list(value.values()))


def _republish_without(
    catalog: Catalog, data_dir: Path, name: str, source: str, targets: set[str], request_id: str
) -> tuple[str, int] | None:
    """A new version: ``source``'s rows without the targets' rows; None if the gate fails."""
    import polars as pl

    manifest = catalog.read_manifest(name, source)
    policy = DatasetPolicy.from_record(manifest.policy)
    folder = staging_folder(catalog, data_dir, name)
    present = _data_files(catalog, name, source)
    frames: dict[Kind, pl.DataFrame] = {}
    removed = 0
    for kind in policy.kinds:
        parts = []
        for split in policy.splits:
            for path in (f for f in present if f.startswith(f"data/{kind}/{split}-")):
                rows = _read_parquet(catalog, name, source, path)
                kept = rows.filter(~pl.col("user").is_in(targets))
                removed += rows.height - kept.height
                parts.append(kept.with_columns(split=pl.lit(split)))
        frame = pl.concat(parts) if parts else pl.DataFrame()
        frames[kind] = frame.with_columns(chosen_shown_first=pl.lit(None, dtype=pl.Boolean))
    attempt = folder / f".attempt-erasure-{uuid.uuid4().hex[:8]}"
    attempt.mkdir()
    try:
        files = write_files(frames, policy, attempt)
        gate = run_gate(frames, policy, attempt / "quality")
        if not gate.success:
            return None
        # The source's record (policy, lineage, key version) with the rows that are left; its
        # evaluation measured rows that are gone, and is not made again here.
        replacement = manifest.model_copy(
            update={
                "evaluation": None,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "counts": count_rows(frames, list(policy.splits)),
                "quality": gate.summary(),
                "fingerprint": Fingerprint(policy_hash=manifest.policy_hash, files=files),
                "superseded_by": None,
                "superseded": None,
                "erasure": Erasure(request=request_id, replaces=source, rows_removed=removed),
            }
        )
        committed = publish_attempt(catalog, folder, attempt, replacement)
        return committed.version, removed
    finally:
        shutil.rmtree(attempt, ignore_errors=True)


def _with_notice(text: str, by: str, when: str, request_id: str, reason: str = ERASED) -> str:
    """The card with the superseded notice atop its body (once)."""
    notice = (
        f"> **Superseded by {by}** on {when}: {reason} (request {request_id}); "
        "do not train on this version.\n\n"
    )
    if "**Superseded by" in text:
        return text
    head, marker, body = text.partition("\n---\n")
    return f"{head}{marker}\n{notice}{body.lstrip()}" if marker else notice + text


def _mark_superseded(
    catalog: Catalog, name: str, version: str, by: str, request_id: str, delete_files: bool,
    reason: str = ERASED,
) -> None:  # fmt: skip
    """Mark ``version`` superseded by ``by``: a notice atop its card (saying ``reason``), its
    data files deleted (with ``delete_files``), its manifest rewritten saying so."""
    manifest = catalog.read_manifest(name, version)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    superseded = Supersession(at=when, request=request_id, files_deleted=delete_files)
    if not catalog.is_local:
        _mark_superseded_objects(catalog, manifest, by, when, request_id, delete_files, reason)
        return
    folder = catalog.folder(name) / version
    card = folder / CARD_FILE
    text = card.read_text()
    marked = _with_notice(text, by, when, request_id, reason)
    if marked != text:
        card.write_text(marked)
    if delete_files:
        shutil.rmtree(folder / "data", ignore_errors=True)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    files = [
        file_entry(folder, entry.path) if entry.path == CARD_FILE
        else entry.model_copy(update={"deleted": entry.path not in present})
        for entry in manifest.files
    ]  # fmt: skip
    write_manifest_file(
        folder,
        manifest.model_copy(update={"files": files, "superseded_by": by, "superseded": superseded}),
    )


def _mark_superseded_objects(
    catalog: Catalog, manifest: Manifest, by: str, when: str, request_id: str, delete_files: bool,
    reason: str,
) -> None:  # fmt: skip
    """``_mark_superseded`` on S3: the card rewritten, the data objects deleted, then the
    manifest rewritten (the data go before the manifest says so: a crash in between leaves a
    version erasure searches again, never one that claims a deletion not done)."""
    name, version = manifest.dataset, manifest.version
    objects = catalog.objects
    card_key = catalog.key(name, version, CARD_FILE)
    card = (objects.read_bytes(card_key) or b"").decode()
    marked = _with_notice(card, by, when, request_id, reason).encode()
    objects.write_once(card_key, marked)
    deleted = set()
    if delete_files:
        for entry in manifest.files:
            if entry.path.startswith("data/"):
                objects.delete(catalog.key(name, version, entry.path))
                deleted.add(entry.path)
    files = [
        FileEntry(path=CARD_FILE, sha256=hashlib.sha256(marked).hexdigest(), bytes=len(marked))
        if entry.path == CARD_FILE
        else entry.model_copy(update={"deleted": entry.deleted or entry.path in deleted})
        for entry in manifest.files
    ]
    superseded = Supersession(at=when, request=request_id, files_deleted=delete_files)
    update = {"files": files, "superseded_by": by, "superseded": superseded}
    objects.write_once(
        catalog.key(name, version, MANIFEST_FILE),
        manifest.model_copy(update=update).to_json().encode(),
    )
