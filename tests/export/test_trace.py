"""Tracing rows of a published dataset back to the warehouse (``export.trace``)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from export.build import Rekeyer
from export.publish import export_dataset
from export.trace import trace_rows
from flywheel.errors import ExportError
from privacy.keys import Keyring
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import KEYRING
from warehouse.lineage import LABEL_LINEAGE


def published(data_dir: Path, kind: str) -> pl.DataFrame:
    result = export_dataset(data_dir, "default", KEYRING)
    assert result.path is not None
    files = sorted((result.path / "data" / kind).glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]).select("id", "event_ids")


def warehouse(data_dir: Path, query: str) -> dict[str, list[str]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        return {row_id: list(events) for row_id, events in db.execute(query).fetchall()}


@pytest.mark.parametrize(
    ("kind", "table", "query"),
    [
        ("dpo", "preference_pairs", "SELECT pair_id, event_ids FROM preference_pairs"),
        ("kto", "labels", LABEL_LINEAGE),
    ],
)  # fmt: skip
def test_every_row_traces_back_to_its_warehouse_row_and_events(
    data_dir: Path, kind: str, table: str, query: str
) -> None:
    rows = published(data_dir, kind)
    version, traced = trace_rows(data_dir, "default", rows["id"].to_list(), KEYRING)

    assert version == "v1" and len(traced) == rows.height > 100
    source = warehouse(data_dir, query)
    rekey = Rekeyer(KEYRING.keys[1], "default")
    for row, found in zip(rows.iter_rows(named=True), traced, strict=True):
        assert found.id == row["id"] and found.table == table
        assert found.warehouse_id in source
        assert found.event_ids == source[found.warehouse_id]
        # The dataset's event ids are these, re-keyed, in the same order.
        assert [rekey.lineage(e) for e in found.event_ids] == row["event_ids"]


def test_rows_the_warehouse_no_longer_holds_are_not_found(data_dir: Path) -> None:
    rows = published(data_dir, "dpo")["id"].to_list()[:3]
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as db:
        [(gone,)] = db.execute(
            "DELETE FROM preference_pairs WHERE pair_id = (SELECT pair_id FROM preference_pairs "
            "ORDER BY pair_id LIMIT 1) RETURNING pair_id"
        ).fetchall()
    missing = Rekeyer(KEYRING.keys[1], "default").lineage(gone)

    _, traced = trace_rows(data_dir, "default", [*rows, missing, "not-an-id"], KEYRING)

    assert [t.found for t in traced] == [True, True, True, False, False]
    assert traced[3].id == missing and traced[3].warehouse_id is None


def test_a_version_under_a_key_no_longer_held_or_missing_is_a_clear_error(
    data_dir: Path,
) -> None:
    published(data_dir, "dpo")
    with pytest.raises(ExportError, match="key version 1, which the key file no longer holds"):
        trace_rows(data_dir, "default", ["x"], Keyring(2, {2: b"n" * 32}))
    with pytest.raises(ExportError, match="has no version 'v7'"):
        trace_rows(data_dir, "default", ["x"], KEYRING, version="v7")
    with pytest.raises(ExportError, match="no published version"):
        trace_rows(data_dir, "other", ["x"], KEYRING)


def test_cli_traces_rows_as_json_and_refuses_an_unknown_version(data_dir: Path) -> None:
    row = published(data_dir, "dpo").row(0, named=True)

    result = flywheel("export", "trace", "--json", row["id"], "not-an-id", env=env(data_dir))

    assert result.returncode == 0, result.stderr
    traced, absent = [json.loads(line) for line in result.stdout.splitlines()]
    assert traced["version"] == "v1" and traced["table"] == "preference_pairs"
    pairs = warehouse(data_dir, "SELECT pair_id, event_ids FROM preference_pairs")
    assert traced["event_ids"] == pairs[traced["warehouse_id"]]
    assert absent == {"dataset": "default", "version": "v1", "id": "not-an-id", "table": None,
                      "warehouse_id": None, "event_ids": []}  # fmt: skip
    assert_one_line_error(
        flywheel("export", "trace", "--version", "v7", row["id"], env=env(data_dir)),
        "has no version 'v7'",
        code=6,  # not found
    )


def test_a_version_from_before_ids_were_rekeyed_is_matched_on_the_warehouse_ids(
    data_dir: Path,
) -> None:
    published(data_dir, "dpo")
    manifest_path = data_dir / "datasets" / "default" / "v1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest.pop("lineage_ids") == "rekeyed"
    manifest_path.write_text(json.dumps(manifest))
    pairs = warehouse(data_dir, "SELECT pair_id, event_ids FROM preference_pairs")
    raw = sorted(pairs)[0]

    # No key is needed: the ids are the warehouse's own.
    _, [traced] = trace_rows(data_dir, "default", [raw], Keyring(2, {2: b"n" * 32}))

    assert traced.table == "preference_pairs" and traced.warehouse_id == raw
    assert traced.event_ids == pairs[raw]


def test_without_a_warehouse_trace_says_what_to_run_and_creates_nothing(
    data_dir: Path, tmp_path: Path
) -> None:
    published(data_dir, "dpo")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "datasets").mkdir(parents=True)
    (data_dir / "datasets" / "default").rename(elsewhere / "datasets" / "default")

    with pytest.raises(ExportError, match="run `flywheel transform run` first"):
        trace_rows(elsewhere, "default", ["x"], KEYRING)
    assert not (elsewhere / "warehouse.duckdb").exists()
