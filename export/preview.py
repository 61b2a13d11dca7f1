"""The rows a dataset's next version would gain and lose against its latest published one, read
from a warehouse (``flywheel transform plan`` gives it the planned copy): the export's own row
selection and re-keying (``export.publish.row_ids``, without the texts), so a row has the id it
would be published under, compared by id with the latest version's Parquet files, per config
and split.

Nothing is written and the quality gate is not run. Where the latest version's files cannot be
read by id (the target is on object storage, an erasure deleted them, or they were written under
another pseudonym key version, which re-keys every id) only the row counts are compared, and a
note says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from export.catalog import Catalog
from export.differences import split_rows, version_rows
from export.manifest import Manifest
from export.policy import DatasetPolicy
from export.publish import row_ids

if TYPE_CHECKING:
    from privacy.keys import Keyring
    from warehouse.lake import Lake


@dataclass
class SplitPreview:
    """One config's split: its rows now and next, and (compared by id) what comes and goes."""

    config: str
    split: str
    rows_latest: int
    rows_next: int
    gained: int | None = None
    lost: int | None = None


@dataclass
class DatasetPreview:
    """A dataset's next version against its latest."""

    name: str
    latest: str | None
    """The latest published version (None: nothing published yet)."""
    splits: list[SplitPreview] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def preview(
    data_dir: Path,
    lake: Lake,
    catalog: Catalog,
    name: str,
    policy: DatasetPolicy,
    keyring: Keyring,
) -> DatasetPreview:
    """The next version of dataset ``name`` from the warehouse of ``data_dir`` against the
    latest one ``catalog`` holds."""
    import duckdb

    following = row_ids(data_dir, lake, name, policy, keyring)
    versions = catalog.versions(name)
    latest = catalog.read_manifest(name, versions[-1]) if versions else None
    result = DatasetPreview(name, latest.version if latest else None)
    now = split_rows(latest) if latest is not None else {}
    counted = following.group_by("config", "split").len()
    following_counts = {(c, s): n for c, s, n in counted.iter_rows()}
    keys = sorted({*now, *following_counts})
    result.splits = [SplitPreview(c, s, now.get((c, s), 0), following_counts.get((c, s), 0))
                     for c, s in keys]  # fmt: skip
    if latest is None:
        for item in result.splits:
            item.gained, item.lost = item.rows_next, 0
        return result
    why = _not_by_id(catalog, latest, keyring)
    if why:
        result.notes.append(why)
        return result
    files = catalog.data_files(name, latest.version)
    with duckdb.connect(":memory:") as db:
        db.register("following", following.to_arrow())
        latest_rows, params = version_rows(db, "latest", files, keys, False)
        found = db.execute(
            f"""
            WITH latest AS ({latest_rows})
            SELECT config, split, count(*) FILTER (WHERE latest.id IS NULL),
                   count(*) FILTER (WHERE following.id IS NULL)
            FROM latest FULL JOIN following USING (config, split, id)
            GROUP BY config, split
            """,  # noqa: S608 - parameters only
            params,
        ).fetchall()
    by_split = {(config, split): (gained, lost) for config, split, gained, lost in found}
    for item in result.splits:
        item.gained, item.lost = by_split.get((item.config, item.split), (0, 0))
    return result


def _not_by_id(catalog: Catalog, latest: Manifest, keyring: Keyring) -> str | None:
    """Why the latest version's rows cannot be compared by id (None: they can)."""
    version, key_version = latest.version, latest.pseudonym_key_version
    if not catalog.is_local:
        return "the datasets are on object storage: only the row counts are compared"
    if any(entry.deleted for entry in latest.files):
        return f"an erasure deleted files of {version}: only the row counts are compared"
    if key_version != keyring.current:
        return (
            f"{version} was written under pseudonym key version {key_version} and the next "
            f"version would be under {keyring.current}: every row id is re-keyed, so only the "
            "row counts are compared"
        )
    return None
