"""The manifest of a published dataset version (``manifest.json``): a typed, versioned record.

Every reader and writer of a manifest goes through ``Manifest``. Its ``manifest_version`` names
the layout of the file; ``MANIFEST_VERSION`` is the one this code writes.

- A manifest without ``manifest_version`` was written before the field existed: version 1.
- An older version is upgraded in memory, one step at a time (``_UPGRADES``). The file stays as
  it is until something rewrites it (an erasure marking the version superseded), which writes
  the current version.
- A newer version than this code knows is a ``ManifestVersionError``: an older release must not
  guess at fields it does not know, nor drop them when it rewrites the file.

Any change to the fields (one added, removed, renamed or retyped) bumps ``MANIFEST_VERSION`` and
adds an upgrade from the version before; a field the models do not name is refused on read.
The field names are those of version 1, which external readers (the API's clients, ``jq``
scripts) already use.

Versions:

1. No ``manifest_version``. Written by releases over time, so some fields are optional:
   ``lineage_ids`` is absent before row and event ids were re-keyed, ``source.lake_files`` (every
   lake file) comes before ``source.lake`` (their summary), ``quality.excluded`` is absent before
   unreadable event times were counted (and in versions an erasure published), the ``policy``
   record holds a ``schedule`` before schedules were left out of it.
2. ``manifest_version`` added; nothing else changed.
3. ``source.transforms_principles_hash``: the hash of the principles file the transform run
   scored the code in responses against (transforms/principles.toml); null in versions before
   it, and when the run recorded none.
4. ``evaluation``: what a light reward model trained on the version's train split learned
   (``evaluate``, docs/evaluate.md); absent in versions before it, and when the policy turned
   it off or the version had too few pairs.
5. ``pruned``: when and why retention deleted the version's data files (``keep_versions`` in
   the dataset's policy, ``export.retention``); absent in versions before it, and in every
   version whose data are kept.

Pydantic only (no polars, DuckDB or Great Expectations): the API reads manifests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from flywheel.errors import ManifestVersionError
from flywheel.files import replace_text

MANIFEST_VERSION = 5
"""The layout this code writes (see the module's docstring for each version)."""
MANIFEST_FILE = "manifest.json"
LINEAGE_IDS = "rekeyed"
"""``lineage_ids``: the version's ``id`` and ``event_ids`` are re-keyed for the dataset.
Versions published before ids were re-keyed have no such field and show the warehouse's ids."""


def _absent(value: object) -> bool:
    return value is None


def _optional() -> Any:
    """A field that is left out of the file when it is None (as the writers of version 1 did),
    rather than written as null."""
    return Field(default=None, exclude_if=_absent)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Record):
    """A file of the version (any but ``manifest.json``)."""

    path: str
    """Relative to the version's folder, with ``/``."""
    sha256: str
    bytes: int
    deleted: bool | None = _optional()
    """On a superseded or pruned version only: whether its file was deleted (a superseded
    version's data files are, by default; a pruned version's always are)."""


class Fingerprint(_Record):
    """What "nothing new" compares: the policy's hash and each data file's sha256."""

    policy_hash: str
    files: dict[str, str]


class SplitCounts(_Record):
    """A split's rows, and the rows carrying each signal (a row can carry several)."""

    rows: int
    signals: dict[str, int]


class ConfigCounts(_Record):
    """A config's rows, all splits together and per split."""

    rows: int
    splits: dict[str, SplitCounts]


class Check(_Record):
    """One expectation's outcome in the quality gate."""

    config: str
    expectation: str
    column: str | None
    severity: str
    """``critical`` or ``warning``."""
    success: bool
    observed: JsonValue
    unexpected: int | None


class UnreadableTime(_Record):
    """Responses whose time no reader can take, and the rows per config left out for them."""

    responses: int
    rows: dict[str, int]


class Excluded(_Record):
    unreadable_time: UnreadableTime


class Quality(_Record):
    """The quality gate's result."""

    success: bool
    expectations: int
    critical_failed: list[str]
    warnings: list[str]
    checks: list[Check]
    excluded: Excluded | None = _optional()


class LakePartition(_Record):
    """The lake files of one topic partition that the warehouse loaded."""

    topic: str
    partition: int
    files: int
    first_offset: int
    last_offset: int
    rows: int


class LakeSummary(_Record):
    """Every lake file the warehouse loaded, in a size that does not grow with them."""

    files: int
    rows: int
    files_sha256: str
    """sha256 of one line per file (its path, topic, partition, offsets and rows as JSON, keys
    sorted), in path order: names the exact set."""
    partitions: list[LakePartition]


class LakeFile(_Record):
    """One lake file, as versions before ``LakeSummary`` listed them (``source.lake_files``)."""

    path: str
    topic: str
    partition: int
    first_offset: int
    last_offset: int
    rows: int


class Source(_Record):
    """What the version was made from."""

    lake: LakeSummary | None = _optional()
    lake_files: list[LakeFile] | None = _optional()
    """Versions published before ``lake`` summarised the files listed each one."""
    transform_run: str | None
    transforms_policy_hash: str | None
    transforms_principles_hash: str | None
    """The principles file's hash (``transform_runs.principles_hash``); since version 3."""


class TimeWindow(_Record):
    """The earliest and latest ``occurred_at`` of the responses in the dataset (ISO 8601)."""

    first_event: str | None
    last_event: str | None


class Calibration(_Record):
    """One row of the warehouse's ``signal_calibration`` table at export time."""

    signal: str
    explicit: str
    agree: int
    disagree: int
    n: int
    agreement: float | None
    wilson_low: float | None
    wilson_high: float | None


class Accuracy(_Record):
    """A reward model's accuracy on one set of held-out pairs."""

    name: str
    """``test`` (every held-out pair), ``ab_choice`` (those an explicit A/B choice decided) or,
    from ``flywheel evaluate`` on simulated traffic, ``ground_truth``."""
    pairs: int
    accuracy: float | None
    """Share of pairs whose chosen side scores higher (ties count half); None without pairs."""
    wilson_low: float | None
    wilson_high: float | None


def _accuracy_on(accuracies: list[Accuracy], name: str) -> float | None:
    return next((a.accuracy for a in accuracies if a.name == name), None)


class Ablation(_Record):
    """The model trained again without the pairs one signal voted for."""

    signal: str
    train_pairs: int
    """Train pairs left without the signal."""
    accuracies: list[Accuracy]

    def accuracy(self, name: str) -> float | None:
        """Its accuracy on the held-out set ``name``; None when there was none to measure."""
        return _accuracy_on(self.accuracies, name)


class Evaluation(_Record):
    """What a light reward model trained on the version's train split learned, measured on the
    pairs it never saw (``evaluate.utility``, docs/evaluate.md)."""

    model: str
    """The reward model: ``bradley-terry (hashed words)``."""
    train_pairs: int
    accuracies: list[Accuracy]
    ablations: list[Ablation]
    """One per signal of the train split; empty when the policy asked for the accuracy only."""

    def accuracy(self, name: str) -> float | None:
        """The accuracy on the held-out set ``name``; None when there was none to measure."""
        return _accuracy_on(self.accuracies, name)

    def change(self, ablation: Ablation, name: str = "test") -> float | None:
        """What the ablation's signal adds to the accuracy on ``name``: the accuracy without it
        less the accuracy with every pair (negative: the model does worse without it)."""
        full, without = self.accuracy(name), ablation.accuracy(name)
        return None if full is None or without is None else round(without - full, 6)


class Supersession(_Record):
    """When and why a version was superseded."""

    at: str
    request: str
    """The erasure request."""
    files_deleted: bool


class Pruning(_Record):
    """When and why retention deleted a version's data files (``export.retention``)."""

    at: str
    """UTC, ISO 8601 to the second."""
    keep_versions: int
    """The dataset policy's ``keep_versions`` then."""
    kept: list[str]
    """The versions that kept their data then (the newest ``keep_versions``)."""
    reason: str
    """One sentence saying why, for readers asking for the data."""


class Erasure(_Record):
    """On a version an erasure published: the request and the version it replaces."""

    request: str
    replaces: str
    rows_removed: int


def _from_version_1(data: dict[str, Any]) -> dict[str, Any]:
    # Version 2 only names its version: every field of version 1 reads as it is.
    return {**data, "manifest_version": 2}


def _from_version_2(data: dict[str, Any]) -> dict[str, Any]:
    # Version 3 names the principles' hash; the transforms of earlier versions had none.
    source = data.get("source")
    if isinstance(source, dict):
        source = {**source, "transforms_principles_hash": source.get("transforms_principles_hash")}
        data = {**data, "source": source}
    return {**data, "manifest_version": 3}


def _from_version_3(data: dict[str, Any]) -> dict[str, Any]:
    # Version 4 may hold an evaluation; earlier versions had none, and stay without.
    return {**data, "manifest_version": 4}


def _from_version_4(data: dict[str, Any]) -> dict[str, Any]:
    # Version 5 may say its data were pruned; earlier releases never pruned any.
    return {**data, "manifest_version": 5}


_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _from_version_1,
    2: _from_version_2,
    3: _from_version_3,
    4: _from_version_4,
}
"""The upgrade from each version to the next."""


class Manifest(_Record):
    """A published version's ``manifest.json``."""

    manifest_version: int = MANIFEST_VERSION
    """The layout of the file; absent (version 1) in manifests of earlier releases."""
    dataset: str
    version: str = ""
    """``v1``, ``v2``...: set by ``export.commit.commit_version`` when it numbers the version."""
    previous_version: str | None = None
    """The latest version when this one was made (set by ``commit_version`` too)."""
    created_at: str
    """When the manifest was written: UTC, ISO 8601 to the second."""
    code_version: str
    policy: dict[str, JsonValue]
    """The dataset's policy as applied, with its ``name`` (``DatasetPolicy.record``). A record,
    not a ``DatasetPolicy``: it is what ``policy_hash`` hashed, kept as it was written whatever
    later releases change in the policy file."""
    policy_hash: str
    pseudonym_key_version: int
    lineage_ids: Literal["rekeyed"] | None = _optional()
    counts: dict[str, ConfigCounts]
    """Per config (``dpo``, ``kto``, ``reward``)."""
    quality: Quality
    fingerprint: Fingerprint
    source: Source
    time_window: TimeWindow
    calibration: list[Calibration]
    evaluation: Evaluation | None = _optional()
    """The light reward model's accuracies (since version 4), when the policy asked for them and
    the version had the pairs."""
    files: list[FileEntry] = []
    """Every file of the version but ``manifest.json`` (set by ``commit_version``)."""
    superseded_by: str | None = None
    """The version that replaced this one after an erasure, or ``withdrawn``."""
    superseded: Supersession | None = _optional()
    erasure: Erasure | None = _optional()
    pruned: Pruning | None = _optional()
    """Set when retention deleted the version's data files (since version 5); its manifest,
    card and quality report stay as the record."""

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Bring the manifest of an older version to the current one (in memory)."""
        if not isinstance(data, dict):
            return data  # pydantic says what it is
        found = data.get("manifest_version", 1)
        if not isinstance(found, int) or isinstance(found, bool) or found < 1:
            raise ValueError(f"manifest_version {found!r} is not a version (1, 2, ...)")
        if found > MANIFEST_VERSION:
            raise ManifestVersionError(
                f"manifest_version {found}, newer than this release reads ({MANIFEST_VERSION})"
            )
        while found < MANIFEST_VERSION:
            data = _UPGRADES[found](data)
            found = data["manifest_version"]
        return data

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """A manifest from its file's text, upgraded to the current version. Raises
        ``ValueError`` if it is not JSON or not a manifest, ``ManifestVersionError`` if it was
        written by a newer release."""
        try:
            data = json.loads(text)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ValueError(f"not a manifest ({_first_error(exc)})") from None

    def to_json(self) -> str:
        """The file's text: keys sorted, two-space indent, always the current version."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"

    def listed(self) -> set[str]:
        """The paths of the version's files that exist (not deleted), ``manifest.json`` too."""
        return {f.path for f in self.files if not f.deleted} | {MANIFEST_FILE}


def _first_error(exc: ValidationError) -> str:
    """One line for a manifest that does not validate: the first error's field path and
    message (never the value, which could be long)."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "the manifest"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def read_manifest_file(path: Path) -> Manifest:
    """``Manifest.from_json`` of a file."""
    return Manifest.from_json(path.read_bytes())


def write_manifest_file(folder: Path, manifest: Manifest) -> Path:
    """Write ``folder/manifest.json`` whole (a temporary file renamed over it); returns its
    path."""
    path = folder / MANIFEST_FILE
    replace_text(path, manifest.to_json())
    return path
