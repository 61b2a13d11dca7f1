"""The published datasets: which exist, their versions, their manifests, their files.

No polars, DuckDB or Great Expectations (the manifest's model needs pydantic only), so the API
can serve the catalogue without loading the exporter. Layout: ``<target>/<name>/v<N>/`` holds a
version (``manifest.json``, ``README.md``, ``data/``, ``quality/``), where the target is
``FLYWHEEL_EXPORT__TARGET``: ``<data dir>/datasets`` unset, another folder, or a prefix on S3.
On disk, ``failed-<attempt>/`` folders keep the attempts the gate stopped.

``<target>/<name>/LATEST`` names the dataset's current version in one line (``v3``): the newest
version no erasure superseded. It is a plain file, not a symlink, so that it reads the same on
S3; it is replaced whole (a rename on disk, one put on S3) after a version is committed, and
before an erasure marks the version it replaces (``export.commit.point_latest``), so it never
names a half-written or a superseded version. Everywhere a version is named, ``latest`` resolves
through it (``Catalog.resolve``).

A version exists when its manifest does, wherever it is: on disk the manifest arrives with the
rename of the whole folder, on S3 it is the last object written (``export.commit``). Objects
under a version's prefix with no manifest are an attempt in progress or abandoned, and no reader
here sees them.

The module-level functions read the data dir's own folder; ``Catalog`` reads a target, and
``open_catalog`` builds the one the settings name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from export.manifest import MANIFEST_FILE, Manifest
from flywheel.errors import (
    ExportError,
    ManifestVersionError,
    VersionNotFoundError,
    VersionPrunedError,
)
from flywheel.storage import (
    LakeLocation,
    LocalStorage,
    ObjectStorage,
    fsspec_options,
    open_storage,
)

if TYPE_CHECKING:
    from flywheel.settings import Settings

DATASETS_DIR = "datasets"
TARGET_SETTING = "FLYWHEEL_EXPORT__TARGET"
CLAIM_FILE = ".claim"
"""On S3, the object that reserves a version's number for one attempt (``export.commit``)."""
LATEST = "latest"
"""The name that stands for a dataset's current version wherever a version is named."""
LATEST_FILE = "LATEST"
"""Beside the versions: the current version's name, one line."""


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
    return _parse_manifest(path.read_bytes(), name, version)


def _parse_manifest(text: bytes, name: str, version: str) -> Manifest:
    # Errors are named by dataset and version: the message reaches API clients, never a path.
    try:
        return Manifest.from_json(text)
    except ManifestVersionError as exc:
        raise ManifestVersionError(
            f"version {version} of dataset {name!r} has {exc}: upgrade feedback-flywheel to read it"
        ) from None
    except ValueError as exc:  # not JSON, not an object, not a manifest: damaged on disk
        raise ExportError(
            f"the manifest of version {version} of dataset {name!r} is {exc}: the version is "
            "damaged"
        ) from None


def pruned_error(manifest: Manifest) -> VersionPrunedError:
    """What a reader asking for a pruned version's data is told: when, and why."""
    pruning = manifest.pruned
    assert pruning is not None
    return VersionPrunedError(
        f"the data files of version {manifest.version} of dataset {manifest.dataset!r} were "
        f"pruned on {pruning.at}: {pruning.reason}"
    )


def check_not_pruned(manifest: Manifest, relative: str | None = None) -> None:
    """Raise ``pruned_error`` when ``relative`` (any data file, when None) is a file retention
    deleted from this version."""
    if manifest.pruned is None:
        return
    if relative is None or any(f.path == relative and f.deleted for f in manifest.files):
        raise pruned_error(manifest)


def version_file(data_dir: Path, name: str, version: str, relative: str) -> Path:
    """A file of a published version, if its manifest lists it (nothing else is served)."""
    manifest = read_manifest(data_dir, name, version)
    check_not_pruned(manifest, relative)
    path = dataset_dir(data_dir, name) / version / relative
    if relative not in manifest.listed() or not path.is_file():
        raise ExportError(f"version {version} of dataset {name!r} has no file {relative!r}")
    return path


@dataclass
class VersionObjects:
    """What a listing of a target found under one version's prefix."""

    keys: dict[str, int] = field(default_factory=dict)
    """Every object, relative to the version's prefix, with its size."""

    @property
    def published(self) -> bool:
        return MANIFEST_FILE in self.keys


class Catalog:
    """The published datasets at a target: a local folder (the data dir's ``datasets``, as
    before, or another) or a bucket and prefix on S3."""

    def __init__(self, storage: LocalStorage | ObjectStorage) -> None:
        self.storage = storage
        self.location: LakeLocation = storage.location

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Catalog:
        """The data dir's own folder (``FLYWHEEL_EXPORT__TARGET`` unset)."""
        return cls(LocalStorage(LakeLocation(str(data_dir / DATASETS_DIR))))

    @property
    def is_local(self) -> bool:
        return self.location.is_local

    @property
    def objects(self) -> ObjectStorage:
        """The object storage of a target on S3."""
        if not isinstance(self.storage, ObjectStorage):
            raise ValueError(f"{self.location} is not on object storage")
        return self.storage

    def folder(self, name: str) -> Path:
        """A dataset's folder, on a local target."""
        return self.location.local_path() / name

    def listing(self, name: str | None = None) -> dict[str, dict[str, VersionObjects]]:
        """On S3: every object under the target (or one dataset), by dataset and version,
        published or not; one paginated listing."""
        found: dict[str, dict[str, VersionObjects]] = {}
        for stored in self.objects.list_files(name or ""):
            dataset, _, rest = stored.key.partition("/")
            version, _, relative = rest.partition("/")
            if is_version(version) and relative:
                entry = found.setdefault(dataset, {}).setdefault(version, VersionObjects())
                entry.keys[relative] = stored.size
        return found

    def names(self) -> list[str]:
        """Datasets with at least one published version, by name."""
        if self.is_local:
            root = self.location.local_path()
            if not root.is_dir():
                return []
            return sorted(p.name for p in root.iterdir() if p.is_dir() and self.versions(p.name))
        return sorted(
            dataset
            for dataset, found in self.listing().items()
            if any(v.published for v in found.values())
        )

    def versions(self, name: str) -> list[str]:
        """A dataset's published versions (those with a manifest), oldest first."""
        if self.is_local:
            return published_versions(self.folder(name))
        found = self.listing(name).get(name, {})
        return sorted((v for v, o in found.items() if o.published), key=lambda v: int(v[1:]))

    def key(self, name: str, version: str, relative: str) -> str:
        """A file's key under the target."""
        return f"{name}/{version}/{relative}"

    def latest(self, name: str) -> str:
        """The dataset's current version: the one ``LATEST`` names, if it is published and not
        superseded; without a usable pointer (versions published before it existed), the newest
        version unless an erasure superseded it. ``VersionNotFoundError`` when there is none
        (no version, or the newest withdrawn by an erasure whose replacement failed its gate)."""
        pointed = self.storage.read_bytes(f"{name}/{LATEST_FILE}")
        candidates = [pointed.decode(errors="replace").strip()] if pointed is not None else []
        published = self.versions(name)
        if published:
            candidates.append(published[-1])
        for version in candidates:
            try:
                manifest = self.read_manifest(name, version)
            except VersionNotFoundError:
                continue
            if manifest.superseded_by is None:
                return version
            break  # the newest was superseded: no current version, not an older one
        if not published:
            raise VersionNotFoundError(f"dataset {name!r} has no published version")
        raise VersionNotFoundError(
            f"dataset {name!r} has no current version: {published[-1]} was superseded by an "
            "erasure and nothing replaced it yet"
        )

    def resolve(self, name: str, version: str) -> str:
        """``version`` itself, or for ``latest`` the current version's name (``latest``)."""
        return self.latest(name) if version == LATEST else version

    def read_manifest(self, name: str, version: str) -> Manifest:
        """``read_manifest`` of a version at this target (``latest``: the current one)."""
        version = self.resolve(name, version)
        data = (
            self.storage.read_bytes(self.key(name, version, MANIFEST_FILE))
            if is_version(version)
            else None
        )
        if data is None:
            raise VersionNotFoundError(f"dataset {name!r} has no version {version!r}")
        return _parse_manifest(data, name, version)

    def read_file(self, name: str, version: str, relative: str) -> bytes:
        """A file of a published version that its manifest lists (nothing else is served);
        a data file retention deleted is a ``VersionPrunedError``."""
        version = self.resolve(name, version)
        manifest = self.read_manifest(name, version)
        check_not_pruned(manifest, relative)
        data = (
            self.storage.read_bytes(self.key(name, version, relative))
            if relative in manifest.listed()
            else None
        )
        if data is None:
            raise ExportError(f"version {version} of dataset {name!r} has no file {relative!r}")
        return data

    def version_file(self, name: str, version: str, relative: str) -> Path:
        """A listed file of a published version on a local target (``version_file``)."""
        version = self.resolve(name, version)
        manifest = self.read_manifest(name, version)
        check_not_pruned(manifest, relative)
        path = self.folder(name) / version / relative
        if relative not in manifest.listed() or not path.is_file():
            raise ExportError(f"version {version} of dataset {name!r} has no file {relative!r}")
        return path

    def url(self, name: str, version: str, relative: str = "") -> str:
        """Where a reader finds a version (or one of its files): a local path or an
        ``s3://`` URL."""
        return str(self.location.child(self.key(name, version, relative).rstrip("/")))

    def data_files(self, name: str, version: str) -> dict[str, dict[str, list[str]]]:
        """The Parquet files of a published version, by config and split, as URLs: what
        ``datasets.load_dataset("parquet", data_files=...)`` takes (with ``storage_options``).
        ``latest`` gives the current version's files, named by that version. A version whose
        data retention pruned is a ``VersionPrunedError``."""
        version = self.resolve(name, version)
        manifest = self.read_manifest(name, version)
        check_not_pruned(manifest)
        found: dict[str, dict[str, list[str]]] = {}
        for entry in manifest.files:
            parts = entry.path.split("/")
            if entry.deleted or len(parts) != 3 or parts[0] != "data":
                continue
            if not parts[2].endswith(".parquet"):
                continue
            split = parts[2].split("-", 1)[0]
            found.setdefault(parts[1], {}).setdefault(split, []).append(
                self.url(name, version, entry.path)
            )
        return {c: {s: sorted(f) for s, f in splits.items()} for c, splits in found.items()}

    def storage_options(self) -> dict[str, object]:
        """``storage_options`` for fsspec readers of this target (empty on a local one)."""
        return {} if self.is_local else dict(fsspec_options())


def open_catalog(settings: Settings, *, check: bool = True) -> Catalog:
    """The target the settings name (``FLYWHEEL_EXPORT__TARGET``, else ``<data dir>/datasets``);
    on S3 the bucket is checked at once (``check``): a missing bucket is a ``ConfigError``, an
    endpoint nobody answers on a ``TransientError``, one line naming the setting."""
    location = settings.datasets_location
    return Catalog(open_storage(location, check=check, setting=TARGET_SETTING))


def claim_record(owner: str, attempt: str, started_at: str) -> bytes:
    """The body of a version's claim on S3: who reserved the number, for which attempt, when."""
    return json.dumps({"owner": owner, "attempt": attempt, "started_at": started_at}).encode()


def claim_owner(data: bytes | None) -> str | None:
    """The owner a claim names (None when it is missing or unreadable)."""
    if data is None:
        return None
    try:
        found = json.loads(data)
    except ValueError:
        return None
    owner = found.get("owner") if isinstance(found, dict) else None
    return owner if isinstance(owner, str) else None
