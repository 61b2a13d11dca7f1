"""``flywheel export trace``: from rows of a published dataset back to the warehouse's evidence.

A dataset shows its row ids (``id``: a pair id for dpo and reward, a response id for kto) and
event ids re-keyed for itself (``Rekeyer.lineage`` in export/build.py), so that whoever holds it
cannot join it to another dataset or to the client's logs. The warehouse's owner, who holds the
pseudonym key, maps them back: every pair and labelled response id in the warehouse is re-keyed
as the version's manifest says (the dataset's name and the key version) and matched. The row's
warehouse event ids come with it, in the order of the dataset's ``event_ids``.

A row whose evidence is gone (erased users, a rebuilt warehouse that no longer makes the pair)
is reported as not found. A version published before ids were re-keyed (its manifest has no
``lineage_ids``) shows the warehouse's ids as they are, and is matched on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from export.build import Rekeyer
from export.catalog import Catalog
from export.manifest import LINEAGE_IDS
from export.publish import models_connection
from flywheel.errors import ExportError
from privacy.keys import Keyring
from warehouse.lineage import LABEL_LINEAGE

_ROWS = {
    "preference_pairs": "SELECT pair_id, event_ids FROM preference_pairs",
    "labels": LABEL_LINEAGE,
}
"""Every warehouse row a dataset row can come from, with the event ids the export gives it."""


@dataclass
class TracedRow:
    """One row id of the dataset and where it came from in the warehouse."""

    id: str
    """As the dataset shows it."""
    table: str | None = None
    """``preference_pairs`` or ``labels``; None when the warehouse holds no such row."""
    warehouse_id: str | None = None
    """The pair id or response id in the warehouse."""
    event_ids: list[str] = field(default_factory=list)
    """The warehouse's (the clients') event ids behind the row."""

    @property
    def found(self) -> bool:
        return self.table is not None


def trace_rows(
    data_dir: Path,
    name: str,
    ids: list[str],
    keyring: Keyring,
    *,
    version: str | None = None,
    catalog: Catalog | None = None,
) -> tuple[str, list[TracedRow]]:
    """The warehouse rows behind ``ids`` of dataset ``name``'s ``version`` (``latest``: the
    current one; the newest by default) at ``catalog`` (unset: the data dir's ``datasets``
    folder); returns the version traced and one ``TracedRow`` per id, in the order given."""
    target = catalog or Catalog.in_data_dir(data_dir)
    published = target.versions(name)
    if not published:
        raise ExportError(f"dataset {name!r} has no published version")
    version = target.resolve(name, version) if version else published[-1]
    manifest = target.read_manifest(name, version)
    show: Callable[[str], str] = str  # a version from before ids were re-keyed shows them as is
    if manifest.lineage_ids == LINEAGE_IDS:
        key_version = manifest.pseudonym_key_version
        if key_version not in keyring.keys:
            raise ExportError(
                f"{name} {version} was published under pseudonym key version {key_version}, "
                "which the key file no longer holds "
                f"(it has {', '.join(map(str, sorted(keyring.keys)))})"
            )
        show = Rekeyer(keyring.keys[key_version], name).lineage
    wanted = set(ids)
    found: dict[str, TracedRow] = {}
    with models_connection(data_dir, action="trace rows in") as db:
        for table, query in _ROWS.items():
            for warehouse_id, event_ids in db.execute(query).fetchall():
                shown = show(warehouse_id)
                if shown in wanted and shown not in found:
                    found[shown] = TracedRow(shown, table, warehouse_id, list(event_ids))
    return version, [found.get(i, TracedRow(i)) for i in ids]
