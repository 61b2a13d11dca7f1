"""The published datasets on disk: which exist, their versions, their manifests.

No polars, DuckDB or Great Expectations (the manifest's model needs pydantic only), so the API
can serve the catalogue without loading the exporter. Layout: ``<data dir>/datasets/<name>/v<N>/``
holds a version (``manifest.json``, ``README.md``, ``data/``, ``quality/``); ``failed-<attempt>/``
folders keep the attempts the gate stopped.
"""

from __future__ import annotations

from pathlib import Path

from export.manifest import MANIFEST_FILE, Manifest, read_manifest_file
from flywheel.errors import ExportError, ManifestVersionError, VersionNotFoundError

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


def is_version(name: str) -> bool:
    """Whether a folder name is a version's (``v1``, ``v2``...)."""
    return name.startswith("v") and name[1:].isdigit()


def published_versions(folder: Path) -> list[str]:
    """The published versions in a dataset's folder (those holding a manifest), oldest first."""
    if not folder.is_dir():
        return []
    found = [
        p.name for p in folder.iterdir() if is_version(p.name) and (p / MANIFEST_FILE).is_file()
    ]
    return sorted(found, key=lambda v: int(v[1:]))


def versions(data_dir: Path, name: str) -> list[str]:
    """The published versions of a dataset, oldest first."""
    return published_versions(dataset_dir(data_dir, name))


def read_manifest(data_dir: Path, name: str, version: str) -> Manifest:
    """A published version's manifest, upgraded to the current ``manifest_version``. An unknown
    dataset or version is a ``VersionNotFoundError``, a manifest written by a newer release a
    ``ManifestVersionError``, and one that is not a manifest an ``ExportError``."""
    path = dataset_dir(data_dir, name) / version / MANIFEST_FILE
    if not (is_version(version) and path.is_file()):
        raise VersionNotFoundError(f"dataset {name!r} has no version {version!r}")
    # Errors are named by dataset and version: the message reaches API clients, never a path.
    try:
        return read_manifest_file(path)
    except ManifestVersionError as exc:
        raise ManifestVersionError(
            f"version {version} of dataset {name!r} has {exc}: upgrade feedback-flywheel to read it"
        ) from None
    except ValueError as exc:  # not JSON, not an object, not a manifest: damaged on disk
        raise ExportError(
            f"the manifest of version {version} of dataset {name!r} is {exc}: the version is "
            "damaged"
        ) from None


def version_file(data_dir: Path, name: str, version: str, relative: str) -> Path:
    """A file of a published version, if its manifest lists it (nothing else is served)."""
    manifest = read_manifest(data_dir, name, version)
    path = dataset_dir(data_dir, name) / version / relative
    if relative not in manifest.listed() or not path.is_file():
        raise ExportError(f"version {version} of dataset {name!r} has no file {relative!r}")
    return path
