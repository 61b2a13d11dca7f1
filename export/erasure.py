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
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from export.build import Rekeyer
from export.catalog import dataset_dir, dataset_names, read_manifest, versions
from export.commit import CARD_FILE, commit_version, file_entry, locked
from export.manifest import Erasure, Fingerprint, Manifest, Supersession, write_manifest_file
from export.policy import DatasetPolicy, Kind
from export.publish import count_rows, write_files
from export.quality import run_gate
from privacy.keys import Keyring

WITHDRAWN = "withdrawn"


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


def _data_files(folder: Path) -> list[Path]:
    return sorted((folder / "data").glob("*/*.parquet"))


def _holds(folder: Path, targets: set[str]) -> int:
    import polars as pl

    return sum(
        int(pl.read_parquet(path, columns=["user"])["user"].is_in(targets).sum())
        for path in _data_files(folder)
    )


def erase_from_datasets(
    data_dir: Path,
    pseudonyms: list[str],
    keyring: Keyring,
    *,
    request_id: str,
    delete_files: bool = True,
) -> list[DatasetErasure]:
    """Replace and supersede every dataset version that holds one of ``pseudonyms``."""
    results = []
    for name in dataset_names(data_dir):
        with locked(dataset_dir(data_dir, name)):
            result = _erase_dataset(data_dir, name, pseudonyms, keyring, request_id, delete_files)
        if result.superseded or result.published or result.unchecked:
            results.append(result)
    return results


def _erase_dataset(
    data_dir: Path,
    name: str,
    pseudonyms: list[str],
    keyring: Keyring,
    request_id: str,
    delete_files: bool,
) -> DatasetErasure:
    result = DatasetErasure(name)
    folder = dataset_dir(data_dir, name)
    every = versions(data_dir, name)
    holding: list[str] = []
    targets_of: dict[str, set[str]] = {}
    for version in every:
        manifest = read_manifest(data_dir, name, version)
        if manifest.superseded_by:
            continue
        targets = _targets(manifest, name, pseudonyms, keyring)
        if targets is None:
            result.unchecked.append(version)
            continue
        targets_of[version] = targets
        if _data_files(folder / version) and _holds(folder / version, targets):
            holding.append(version)
    if not holding:
        return result
    latest = every[-1]
    replacement = latest
    if latest in holding:
        published = _republish_without(data_dir, name, latest, targets_of[latest], request_id)
        replacement = published[0] if published else WITHDRAWN
        result.published = published[0] if published else None
        result.rows_removed = published[1] if published else 0
    for version in holding:
        _mark_superseded(data_dir, name, version, replacement, request_id, delete_files)
        result.superseded.append(version)
    return result


def _republish_without(
    data_dir: Path, name: str, source: str, targets: set[str], request_id: str
) -> tuple[str, int] | None:
    """A new version: ``source``'s rows without the targets' rows; None if the gate fails."""
    import polars as pl

    manifest = read_manifest(data_dir, name, source)
    policy = DatasetPolicy.from_record(manifest.policy)
    folder = dataset_dir(data_dir, name)
    frames: dict[Kind, pl.DataFrame] = {}
    removed = 0
    for kind in policy.kinds:
        parts = []
        for split in policy.splits:
            for path in sorted((folder / source / "data" / kind).glob(f"{split}-*.parquet")):
                rows = pl.read_parquet(path)
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
        # The source's record (policy, lineage, key version) with the rows that are left.
        replacement = manifest.model_copy(
            update={
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "counts": count_rows(frames, list(policy.splits)),
                "quality": gate.summary(),
                "fingerprint": Fingerprint(policy_hash=manifest.policy_hash, files=files),
                "superseded_by": None,
                "superseded": None,
                "erasure": Erasure(request=request_id, replaces=source, rows_removed=removed),
            }
        )
        committed = commit_version(folder, attempt, replacement)
        return committed.version, removed
    finally:
        shutil.rmtree(attempt, ignore_errors=True)


def _mark_superseded(
    data_dir: Path, name: str, version: str, by: str, request_id: str, delete_files: bool
) -> None:
    """Mark ``version`` superseded by ``by``: a notice atop its card, its data files deleted
    (with ``delete_files``), its manifest rewritten saying so."""
    manifest = read_manifest(data_dir, name, version)
    folder = dataset_dir(data_dir, name) / version
    when = datetime.now(UTC).isoformat(timespec="seconds")
    card = folder / CARD_FILE
    text = card.read_text()
    notice = (
        f"> **Superseded by {by}** on {when}: users were erased (request {request_id}); "
        "do not train on this version.\n\n"
    )
    if "**Superseded by" not in text:
        head, marker, body = text.partition("\n---\n")
        card.write_text(f"{head}{marker}\n{notice}{body.lstrip()}" if marker else notice + text)
    if delete_files:
        shutil.rmtree(folder / "data", ignore_errors=True)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    files = [
        file_entry(folder, entry.path) if entry.path == CARD_FILE
        else entry.model_copy(update={"deleted": entry.path not in present})
        for entry in manifest.files
    ]  # fmt: skip
    superseded = Supersession(at=when, request=request_id, files_deleted=delete_files)
    write_manifest_file(
        folder,
        manifest.model_copy(update={"files": files, "superseded_by": by, "superseded": superseded}),
    )
