"""The published datasets on disk: which exist, their versions, their manifests.

Standard library only, so the API can serve the catalogue without loading the exporter.
Layout: ``<data dir>/datasets/<name>/v<N>/`` holds a version (``manifest.json``, ``README.md``,
``data/``, ``quality/``); ``failed-<attempt>/`` folders keep the attempts the gate stopped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flywheel.errors import ExportError, VersionNotFoundError

DATASETS_DIR = "datasets"


def dataset_dir(data_dir: Path, name: str) -> Path:
    """Where a dataset's versions live."""
    return data_dir / DATASETS_DIR / name


def dataset_names(data_dir: Path) -> list[str]:
    """Datasets with at least one published version, by name."""
    root = data_dir / DATASETS_DIR
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and versions(data_dir, p.name))


def versions(data_dir: Path, name: str) -> list[str]:
    """The published versions of a dataset, oldest first."""
    folder = dataset_dir(data_dir, name)
    if not folder.is_dir():
        return []
    found = [
        p.name
        for p in folder.iterdir()
        if p.name.startswith("v") and p.name[1:].isdigit() and (p / "manifest.json").is_file()
    ]
    return sorted(found, key=lambda v: int(v[1:]))


def read_manifest(data_dir: Path, name: str, version: str) -> dict[str, Any]:
    """A published version's manifest; an unknown dataset or version, or a manifest that is not
    JSON, is an ``ExportError``."""
    path = dataset_dir(data_dir, name) / version / "manifest.json"
    if not (version.startswith("v") and version[1:].isdigit() and path.is_file()):
        raise VersionNotFoundError(f"dataset {name!r} has no version {version!r}")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: damaged on disk
        # Named by dataset and version: the message reaches API clients, never a server path.
        raise ExportError(
            f"the manifest of version {version} of dataset {name!r} is not valid JSON ({exc}):"
            " the version is damaged"
        ) from None
    if not isinstance(manifest, dict):
        raise ExportError(
            f"the manifest of version {version} of dataset {name!r} is not a JSON object:"
            " the version is damaged"
        )
    return manifest


def version_file(data_dir: Path, name: str, version: str, relative: str) -> Path:
    """A file of a published version, if its manifest lists it (nothing else is served)."""
    manifest = read_manifest(data_dir, name, version)
    listed = {e["path"] for e in manifest["files"] if not e.get("deleted")} | {"manifest.json"}
    path = dataset_dir(data_dir, name) / version / relative
    if relative not in listed or not path.is_file():
        raise ExportError(f"version {version} of dataset {name!r} has no file {relative!r}")
    return path
