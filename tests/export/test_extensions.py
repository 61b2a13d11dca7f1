"""Metadata, content parts and tool calls on their way to a dataset: simulated traffic dressed
with them (``tests.helpers.scenarios.with_extensions``), landed through the scrubbing pipeline,
transformed and exported; and datasets of events without them, which publish what they
published before these fields existed."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from export.build import Rekeyer, metadata_conditions
from export.policy import DatasetPolicy, DatasetsFile
from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from privacy.keys import write_keyring
from tests.helpers.datasets import KEYRING, land
from tests.helpers.scenarios import IMAGE_ASK, experiment_of, with_extensions
from transforms.runner import run_transforms

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures"

# No caps: a filtered dataset's rows are then exactly the unfiltered one's that pass the filter.
OPEN = {"max_rows_per_user": 1_000_000, "max_rows_per_prompt": 0, "min_rows": 1}


@pytest.fixture(scope="module")
def dressed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """(data dir, events sent): 6,000 simulated events with metadata, content parts and tool
    calls, landed, transformed, with the key file beside the data dir."""
    root = tmp_path_factory.mktemp("dressed")
    events = with_extensions(list(simulate(SimulationConfig(events=6_000, seed=5, ab_rate=0.3))))
    land(root / "data", events)
    run_transforms(root / "data")
    write_keyring(KEYRING, root / "keys.json")
    return root / "data", events


def export(data_dir: Path, name: str, **policy: Any) -> Path:
    datasets = DatasetsFile(datasets={name: DatasetPolicy(**policy)})
    result = export_dataset(data_dir, name, KEYRING, datasets=datasets)
    assert result.path is not None
    return result.path


def rows(version: Path, kind: str) -> list[dict[str, Any]]:
    frames = [pl.read_parquet(f) for f in sorted((version / "data" / kind).glob("*.parquet"))]
    return pl.concat(frames).to_dicts()


def texts(row: dict[str, Any]) -> str:
    """A row's TRL columns as one comparable text (its ids are re-keyed per dataset)."""
    keys = ("prompt", "chosen", "rejected", "completion", "label")
    return json.dumps({k: row[k] for k in keys if k in row}, sort_keys=True)


def test_the_warehouse_keeps_each_events_metadata_scrubbed(
    dressed: tuple[Path, list[dict[str, Any]]],
) -> None:
    data_dir, events = dressed
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        stored = dict(db.execute("SELECT event_id, metadata FROM events").fetchall())
    for event in events:
        if event["event_id"] not in stored:
            continue  # a duplicate, or without consent
        found = stored[event["event_id"]]
        if "metadata" not in event:
            assert found is None
            continue
        expected = {**event["metadata"]}
        if "owner" in expected:
            expected["owner"] = "<EMAIL>"
        assert json.loads(found) == expected
        assert "@" not in found


def test_a_metadata_filter_keeps_the_rows_whose_responses_were_generated_with_it(
    dressed: tuple[Path, list[dict[str, Any]]],
) -> None:
    data_dir, events = dressed
    everything = export(data_dir, "everything", **OPEN)
    exp7 = export(data_dir, "exp7", metadata_filter={"experiment": "exp-7"}, **OPEN)
    # Each row's conversation, as the unfiltered dataset re-keys it.
    rekey = Rekeyer(KEYRING.keys[KEYRING.current], "everything")
    experiment = {rekey(e["conversation_id"]): experiment_of(e["conversation_id"]) for e in events}
    for kind in ("dpo", "kto", "reward"):
        kept = {texts(row) for row in rows(exp7, kind)}
        all_rows = rows(everything, kind)
        expected = {texts(r) for r in all_rows if experiment[r["conversation"]] == "exp-7"}
        assert kept == expected, kind
        assert 0 < len(kept) < len(all_rows), kind
    # Several keys must all match; a number matches as a number.
    both = export(
        data_dir, "both", metadata_filter={"experiment": "exp-7", "prompt_version": 3.0}, **OPEN
    )
    assert {texts(r) for r in rows(both, "kto")} == {texts(r) for r in rows(exp7, "kto")}


def test_prompts_that_showed_an_image_are_left_out(
    dressed: tuple[Path, list[dict[str, Any]]],
) -> None:
    data_dir, events = dressed
    shown = [
        e["event_id"] for e in events if e["type"] == "generation" and IMAGE_ASK in json.dumps(e)
    ]
    # They made pairs and labels the export would take but for the image.
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        [(pairs,)] = db.execute(
            "SELECT count(*) FROM preference_pairs WHERE list_contains($ids, prompt_event_id) "
            "AND confidence >= 0.2",
            {"ids": shown},
        ).fetchall()
    assert pairs > 5
    version = export(data_dir, "images", **OPEN)
    for kind in ("dpo", "kto", "reward"):
        assert not [r for r in rows(version, kind) if IMAGE_ASK in json.dumps(r)], kind


def test_tool_calls_in_the_standard_and_the_conversational_format(
    dressed: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    data_dir, _ = dressed
    standard = rows(export(data_dir, "standard", **OPEN), "dpo")
    called = [r for r in standard if "Tool call: search_docs(" in r["prompt"]]
    assert called
    assert all("\n\nTool: 3 results\n\n" in r["prompt"] for r in called)
    assert all("Assistant: Tool call: search_docs({" in r["prompt"] for r in called)

    version = export(data_dir, "talk", message_format="conversational", **OPEN)
    for kind in ("dpo", "kto", "reward"):
        found = rows(version, kind)
        column = "prompt" if kind != "reward" else "chosen"
        messages = [m for r in found for m in r[column]]
        assert all(set(m) == {"role", "content", "tool_calls", "tool_call_id"} for m in messages)
        calls = [m for m in messages if m["tool_calls"]]
        assert calls and all(m["role"] == "assistant" and m["content"] == "" for m in calls)
        [call] = calls[0]["tool_calls"]
        assert call["type"] == "function" and call["function"]["name"] == "search_docs"
        assert json.loads(call["function"]["arguments"])["query"]
        answers = [m for m in messages if m["tool_call_id"]]
        assert {m["tool_call_id"] for m in answers} <= {
            c["id"] for m in calls for c in m["tool_calls"]
        }
    # Hugging Face datasets reads the tool fields as they are.
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset(str(version), "dpo", split="train",
                                   cache_dir=str(tmp_path / "hf"))  # fmt: skip
    called = next(r["prompt"] for r in loaded if any(m["tool_calls"] for m in r["prompt"]))
    assert all(set(m) == {"role", "content", "tool_calls", "tool_call_id"} for m in called)
    assert [c["function"]["name"] for m in called for c in m["tool_calls"] or []] == ["search_docs"]


@pytest.mark.parametrize(
    ("selection", "matching"),
    [
        ({"experiment": ["exp-7"]}, {"a", "c"}),
        ({"experiment": ["exp-7", "control"]}, {"a", "b", "c"}),
        ({"prompt_version": [3]}, {"a", "b"}),  # 3 and 3.0
        ({"prompt_version": ["3"]}, {"d"}),  # the string only
        ({"sampled": [True]}, {"a"}),
        ({"sampled": [1]}, {"d"}),  # the number, not true
        ({"experiment": ["exp-7"], "prompt_version": [3]}, {"a"}),
        ({"missing": ["x"]}, set()),
    ],
)
def test_metadata_conditions_compare_by_json_type(
    selection: dict[str, list[Any]], matching: set[str]
) -> None:
    conditions, parameters = metadata_conditions(selection)
    with duckdb.connect() as db:
        db.execute("CREATE TABLE events (event_id VARCHAR, metadata VARCHAR)")
        db.execute(
            "INSERT INTO events VALUES "
            """('a', '{"experiment":"exp-7","prompt_version":3,"sampled":true}'), """
            """('b', '{"experiment":"control","prompt_version":3.0}'), """
            """('c', '{"experiment":"exp-7","prompt_version":4}'), """
            """('d', '{"prompt_version":"3","sampled":1}'), ('e', NULL)"""
        )
        found = db.execute(f"SELECT event_id FROM events AS e WHERE {conditions}", parameters)
        assert {row[0] for row in found.fetchall()} == matching


# Datasets of events without the new fields: what the commit before them published.


def _rows_digest(path: Path) -> str:
    """The schema and rows of a Parquet file, whatever library version wrote its bytes."""
    table = pq.read_table(path)
    lines = [table.schema.to_string(show_schema_metadata=False)]
    lines += [json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def test_datasets_without_the_new_fields_publish_what_they_published_before(
    data_dir: Path,
) -> None:
    """The simulated traffic's default dataset and a conversational one, against what the
    release before metadata, content parts and tool calls published from the same traffic
    (``fixtures/published-before-extensions.json``: every data file's rows and schema, and its
    sha256 under the library versions it lists, compared when they are the ones installed)."""
    recorded = json.loads((FIXTURES / "published-before-extensions.json").read_text())
    same_libraries = all(
        metadata.version(name) == version for name, version in recorded["libraries"].items()
    )
    datasets = DatasetsFile(datasets={
        "default": DatasetPolicy(),
        "talk": DatasetPolicy(message_format="conversational", formats=["parquet", "jsonl"]),
    })  # fmt: skip
    for name in ("default", "talk"):
        result = export_dataset(data_dir, name, KEYRING, datasets=datasets)
        assert result.path is not None
        files = sorted(p for p in (result.path / "data").rglob("*.parquet"))
        assert [f"{name}/{p.relative_to(result.path)}" for p in files] == sorted(
            key for key in recorded["rows"] if key.startswith(f"{name}/")
        )
        for path in files:
            key = f"{name}/{path.relative_to(result.path)}"
            assert _rows_digest(path) == recorded["rows"][key], key
            if same_libraries:
                assert hashlib.sha256(path.read_bytes()).hexdigest() == recorded["bytes"][key]
