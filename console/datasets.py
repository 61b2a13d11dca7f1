"""Published datasets for the console: versions with their counts and gate results (from the
manifests, ``export.catalog``), and the difference between two versions.

The difference is counted by row id per config and split: ``added`` (in the newer version
only), ``removed`` (in the older only) and in both; on request (``changes``) the rows in both
are told apart by a hash of every column but the texts: ``changed`` (the same id with another
content) and ``kept``. Row ids are re-keyed per dataset under the current pseudonym key
(docs/export.md), so two versions written under different key versions share no id: the
difference is then every row, and the page says why. It reads the ``id`` column (and the
hashed columns) from the versions' Parquet files with an in-memory DuckDB; on a target on
object storage, or for a version whose files an erasure deleted, only the manifests' counts
are compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from export.catalog import Catalog
from export.manifest import Manifest
from flywheel.errors import ExportError


@dataclass
class VersionRow:
    """One version of a dataset, or why its manifest cannot be read."""

    version: str
    manifest: Manifest | None
    error: str | None = None


def versions(catalog: Catalog) -> dict[str, list[VersionRow]]:
    """Every dataset and its versions, newest first."""
    found: dict[str, list[VersionRow]] = {}
    for name in catalog.names():
        rows = []
        for version in reversed(catalog.versions(name)):
            try:
                rows.append(VersionRow(version, catalog.read_manifest(name, version)))
            except ExportError as exc:
                rows.append(VersionRow(version, None, str(exc)))
        found[name] = rows
    return found


@dataclass
class SplitDiff:
    """How one config's split differs between two versions."""

    config: str
    split: str
    rows_a: int
    rows_b: int
    added: int | None = None
    removed: int | None = None
    changed: int | None = None
    kept: int | None = None


@dataclass
class VersionDiff:
    """Two versions compared."""

    a: str
    b: str
    splits: list[SplitDiff]
    by_rows: bool
    """True when rows were compared by id; False when only the manifests' counts were."""
    notes: list[str] = field(default_factory=list)
    policy_changed: list[str] = field(default_factory=list)
    changes: bool = False
    """Whether rows kept with other content were told from rows kept as they were."""


def _counts(manifest: Manifest) -> dict[tuple[str, str], int]:
    return {
        (config, split): counts.rows
        for config, config_counts in manifest.counts.items()
        for split, counts in config_counts.splits.items()
    }


def diff(catalog: Catalog, name: str, a: str, b: str, *, changes: bool = False) -> VersionDiff:
    """Version ``a`` against version ``b`` of dataset ``name`` (``ExportError`` if either is
    not published or its manifest cannot be read); ``changes`` also counts the rows kept with
    other content (about three times the time: every column but the texts is read)."""
    manifest_a, manifest_b = catalog.read_manifest(name, a), catalog.read_manifest(name, b)
    counts_a, counts_b = _counts(manifest_a), _counts(manifest_b)
    keys = sorted(set(counts_a) | set(counts_b))
    splits = [SplitDiff(c, s, counts_a.get((c, s), 0), counts_b.get((c, s), 0)) for c, s in keys]
    result = VersionDiff(a=a, b=b, splits=splits, by_rows=False)
    result.policy_changed = sorted(
        k
        for k in set(manifest_a.policy) | set(manifest_b.policy)
        if manifest_a.policy.get(k) != manifest_b.policy.get(k)
    )
    if manifest_a.pseudonym_key_version != manifest_b.pseudonym_key_version:
        result.notes.append(
            f"{a} was written under pseudonym key version {manifest_a.pseudonym_key_version} and "
            f"{b} under {manifest_b.pseudonym_key_version}: row ids are re-keyed, so no row "
            "keeps its id and every row counts as removed and added"
        )
    if not catalog.is_local:
        result.notes.append(
            "the datasets are on object storage: only the manifests' counts are compared"
        )
        return result
    files_a, files_b = catalog.data_files(name, a), catalog.data_files(name, b)
    deleted = [v for v, m in ((a, manifest_a), (b, manifest_b)) if any(f.deleted for f in m.files)]
    if deleted:
        result.notes.append(
            f"the data files of {', '.join(deleted)} were deleted by an erasure: only the "
            "manifests' counts are compared"
        )
        return result
    import duckdb

    with duckdb.connect(":memory:") as db:
        for item in splits:
            paths_a = files_a.get(item.config, {}).get(item.split, [])
            paths_b = files_b.get(item.config, {}).get(item.split, [])
            _compare(db, item, paths_a, paths_b, changes=changes)
    result.by_rows = True
    result.changes = changes
    return result


TEXT_COLUMNS = frozenset({"prompt", "chosen", "rejected", "completion"})
"""Left out of a row's hash: a row's id names the events its texts are read from, which never
change (an erasure removes the row), and hashing every text took seconds at 0.5M events."""


def _side(db: Any, name: str, paths: list[str], changes: bool) -> tuple[str, dict[str, Any]]:
    """A ``SELECT id, h`` of a version's rows (``h``: a hash of the columns but the texts, with
    ``changes``; else 0)."""
    if not paths:
        return "SELECT NULL::VARCHAR AS id, NULL::UBIGINT AS h WHERE false", {}
    if not changes:
        return f"SELECT id, 0::UBIGINT AS h FROM read_parquet(${name})", {name: paths}
    columns = [
        column
        for (column, *_) in db.execute(
            "DESCRIBE SELECT * FROM read_parquet($files)", {"files": paths}
        ).fetchall()
        if column not in TEXT_COLUMNS
    ]
    kept = ", ".join('"' + column.replace('"', '""') + '"' for column in columns)
    return f"SELECT id, hash(t) AS h FROM (SELECT {kept} FROM read_parquet(${name})) AS t", {
        name: paths
    }


def _compare(
    db: Any, item: SplitDiff, paths_a: list[str], paths_b: list[str], *, changes: bool
) -> None:
    side_a, params_a = _side(db, "a", paths_a, changes)
    side_b, params_b = _side(db, "b", paths_b, changes)
    added, removed, changed, kept = db.execute(
        f"""
        WITH a AS ({side_a}), b AS ({side_b})
        SELECT count(*) FILTER (WHERE a.id IS NULL),
               count(*) FILTER (WHERE b.id IS NULL),
               count(*) FILTER (WHERE a.id IS NOT NULL AND b.id IS NOT NULL AND a.h <> b.h),
               count(*) FILTER (WHERE a.id IS NOT NULL AND b.id IS NOT NULL AND a.h = b.h)
        FROM a FULL JOIN b USING (id)
        """,
        params_a | params_b,
    ).fetchone()
    item.added, item.removed, item.kept = added, removed, kept
    item.changed = changed if changes else None
