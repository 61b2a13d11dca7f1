"""Every model on Spark equals the same model on DuckDB, row for row and type for type, on the
same lake: simulated traffic, and rounds of late, duplicated and cross-conversation events
(DuckDB building incrementally round after round, Spark from the lake's table at the end)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flywheel.settings import SparkSettings
from tests.factories import generation, make_event
from tests.helpers.lake import land
from transforms.models import discover
from transforms.runner import run_transforms
from transforms.spark import CATALOG, MODELS_NAMESPACE, run_transforms_on_spark
from warehouse.db import open_warehouse, raw
from warehouse.lake import Lake
from warehouse.table import LakeTable, default_catalog_uri

pytestmark = pytest.mark.slow

MODELS = sorted(discover())
CODE = 'Here:\n```python\ndef f(xs):\n    return xs[::-1]\n```\n```json\n{"a": }\n```\n'


def _rows(table: Any) -> list[str]:
    """An Arrow table's rows as sorted JSON (timestamps in UTC ISO form)."""
    return sorted(json.dumps(row, default=str, sort_keys=True) for row in table.to_pylist())


def _types(table: Any) -> list[tuple[str, str]]:
    """Column names and Arrow types. Spelling alone may differ: a time zone written ``UTC`` or
    ``Etc/UTC`` or ``+00:00``, the name of a list's item field (DuckDB's ``l``, Iceberg's
    ``element``), and pyiceberg's large types for the columns of an empty table."""
    return [
        (
            field.name,
            str(field.type)
            .replace("+00:00", "UTC")
            .replace("Etc/UTC", "UTC")
            .replace("large_", "")
            .replace("list<element:", "list<")
            .replace("list<l:", "list<"),
        )
        for field in table.schema
    ]


def duckdb_tables(data_dir: Path) -> dict[str, Any]:
    engine = open_warehouse(data_dir)
    try:
        with engine.connect() as connection:
            db = raw(connection)
            return {name: db.sql(f"SELECT * FROM {name}").to_arrow_table() for name in MODELS}
    finally:
        engine.dispose()


def spark_tables(table: LakeTable) -> dict[str, Any]:
    """The model tables Spark wrote, read as an export host reads them: pyiceberg and Arrow."""
    catalog = table.catalog()
    return {name: catalog.load_table((MODELS_NAMESPACE, name)).scan().to_arrow() for name in MODELS}


def assert_same(data_dir: Path, table: LakeTable) -> dict[str, int]:
    duck, spark = duckdb_tables(data_dir), spark_tables(table)
    for name in MODELS:
        assert _types(spark[name]) == _types(duck[name]), name
        assert _rows(spark[name]) == _rows(duck[name]), name
    return {name: duck[name].num_rows for name in MODELS}


def lake_table(data_dir: Path) -> LakeTable:
    return LakeTable(Lake.in_data_dir(data_dir), default_catalog_uri(data_dir))


def test_every_model_matches_duckdb_on_simulated_traffic(
    data_dir: Path, spark_settings: SparkSettings
) -> None:
    table = lake_table(data_dir)
    run = run_transforms_on_spark(spark_settings, table)
    assert [step.name for step in run.steps] == [
        step.name for step in run_transforms(data_dir).steps[1:]
    ]
    counts = assert_same(data_dir, table)
    # The traffic exercises every rule: no model is compared empty.
    assert all(counts[name] > 0 for name in MODELS if name != "unpaired_ab_choices"), counts
    assert CATALOG == "flywheel"


def test_models_match_after_rounds_of_late_and_duplicated_events(
    tmp_path: Path, spark_settings: SparkSettings
) -> None:
    data_dir = tmp_path / "data"
    lake, table = Lake.in_data_dir(data_dir), lake_table(data_dir)
    duplicated = make_event("rating", response_id="r1", value="up", conversation_id="c1")
    rounds = [
        [
            # Signals before their generations: a copy, an A/B whose sides come later.
            make_event("copy", response_id="r1", text="def", code_block=True, conversation_id="c1"),
            make_event("ab_choice", response_a_id="r2", response_b_id="r3", choice="b",
                       conversation_id="c2"),
            generation("r2", "m1", conversation_id="c2"),
            duplicated,
            generation("r9", "m1", conversation_id="c9"),
            make_event("ab_choice", response_a_id="r9", response_b_id="r1", choice="a",
                       conversation_id="c9"),
        ],
        [
            generation("r1", "m1", text=CODE, conversation_id="c1"),
            generation("r3", "m1", conversation_id="c2"),  # the A/B now has both sides
            {**duplicated, "value": "down"},  # the same event again: its first landing counts
            make_event("edit", response_id="r2", edited_text="answer r2, with a fix",
                       conversation_id="c2"),
            make_event("edit", response_id="r2", edited_text="answer r2 , with a fix",
                       conversation_id="c2"),
            make_event("regenerate", response_id="r2", new_response_id="r3", conversation_id="c2"),
            make_event("rating", response_id="r3", value="up", conversation_id="c2"),
            # A generation continuing from r3, in another conversation.
            {**generation("r4", "m1", conversation_id="c4"),
             "prompt": [{"role": "user", "content": "q"},
                        {"role": "assistant", "content": "a", "response_id": "r3"}]},
        ],
    ]  # fmt: skip
    offset = 0
    for events in rounds:
        land(lake, events, first=offset)
        offset += len(events)
        run_transforms(data_dir)  # DuckDB: in full, then incrementally
    run_transforms_on_spark(spark_settings, table)
    counts = assert_same(data_dir, table)
    assert counts["preference_pairs"] and counts["edit_changes"] and counts["unpaired_ab_choices"]
