"""``export.preview``: the rows a dataset's next version would gain and lose are those the next
export then gains and loses."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from export.catalog import Catalog
from export.policy import load_datasets
from export.preview import preview
from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from tests.helpers.datasets import KEYRING, land
from transforms.plan import planned
from transforms.policy import DEFAULT_POLICY
from transforms.runner import run_transforms
from warehouse.lake import Lake
from warehouse.table import LakeTable, default_catalog_uri

pytestmark = pytest.mark.slow


def ids(catalog: Catalog, version: str) -> dict[tuple[str, str], set[str]]:
    """Every row id of a published version, by config and split, read from its files."""
    found: dict[tuple[str, str], set[str]] = {}
    for config, splits in catalog.data_files("default", version).items():
        for split, paths in splits.items():
            rows = duckdb.execute("SELECT id FROM read_parquet($p)", {"p": paths}).fetchall()
            found[(config, split)] = {row[0] for row in rows}
    return found


def test_the_preview_is_what_the_next_export_publishes(data_dir: Path, tmp_path: Path) -> None:
    catalog = Catalog.in_data_dir(data_dir)
    policy = load_datasets().dataset("default")
    lake = Lake.in_data_dir(data_dir)
    table = LakeTable(lake, default_catalog_uri(data_dir))

    with planned(data_dir, lake=lake, table=table) as (_, copy):
        first = preview(copy, lake, catalog, "default", policy, KEYRING)
    assert first.latest is None
    assert all(s.gained == s.rows_next and s.lost == 0 for s in first.splits)
    v1 = export_dataset(data_dir, "default", KEYRING).version
    assert v1 == "v1"
    assert {(s.config, s.split): s.rows_next for s in first.splits} == {
        key: len(rows) for key, rows in ids(catalog, "v1").items()
    }

    land(data_dir, list(simulate(SimulationConfig(events=3000, seed=8))), partition=4)
    weights = tmp_path / "custom.toml"
    weights.write_text(DEFAULT_POLICY.read_text().replace("min_change = 0.02", "min_change = 0.3"))
    with planned(data_dir, lake=lake, table=table, policy_file=weights) as (_, copy):
        following = preview(copy, lake, catalog, "default", policy, KEYRING)
    run_transforms(data_dir, policy_file=weights)
    assert export_dataset(data_dir, "default", KEYRING).version == "v2"

    old, new = ids(catalog, "v1"), ids(catalog, "v2")
    assert following.latest == "v1" and not following.notes
    assert {s.split for s in following.splits} == {"train", "test"}
    for split in following.splits:
        key = (split.config, split.split)
        assert split.rows_latest == len(old.get(key, set()))
        assert split.rows_next == len(new.get(key, set()))
        assert split.gained == len(new.get(key, set()) - old.get(key, set())), split
        assert split.lost == len(old.get(key, set()) - new.get(key, set())), split
    assert any(split.gained for split in following.splits)
    assert any(split.lost for split in following.splits)  # edits under 30% no longer count
