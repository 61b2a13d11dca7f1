"""Events landed before the contract refused times outside years 1 to 9999 in UTC (or with no
time at all) neither stop transform runs nor exports: they are left out, counted and reported,
and the rest publishes. Over the simulated warehouse's real DuckDB file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from export.catalog import read_manifest
from export.publish import export_dataset
from tests.factories import make_event
from tests.helpers.datasets import KEYRING, land
from transforms.runner import run_transforms
from warehouse.lake import Lake

# "9999-12-31T23:59:59-23:59" in UTC, and "0001-01-01T00:00:00+00:01": as the ingest pipeline
# stored them (microseconds since 1970) before the contract refused them.
YEAR_10000 = 253_402_387_139_000_000
YEAR_0 = -62_135_596_860_000_000


def sql(data_dir: Path, statement: str, *parameters: Any) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as connection:
        return connection.execute(statement, list(parameters)).fetchall()


def ab_turn(conversation: str) -> list[dict[str, Any]]:
    """Two answers to one message and an A/B choice between them: a pair and two labels."""
    common = {"conversation_id": conversation, "parent_id": f"{conversation}-m"}
    return [
        make_event("generation", response_id=f"{conversation}-a", response="A long answer.",
                   **common),
        make_event("generation", response_id=f"{conversation}-b", response="Short.", **common),
        make_event("ab_choice", conversation_id=conversation, response_a_id=f"{conversation}-a",
                   response_b_id=f"{conversation}-b", choice="a"),
    ]  # fmt: skip


def set_time(path: Path, event_id: str, micros: int | None) -> None:
    """Write ``occurred_at`` of one event into its lake file, bypassing the contract."""
    frame = pl.read_parquet(path)
    value = pl.lit(micros, pl.Int64).cast(pl.Datetime("us", "UTC"))
    frame.with_columns(
        occurred_at=pl.when(pl.col("event_id") == event_id)
        .then(value)
        .otherwise(pl.col("occurred_at"))
    ).write_parquet(path, compression="zstd")


@pytest.mark.parametrize("micros", [YEAR_10000, YEAR_0, None], ids=["year-10000", "year-0", "null"])
def test_a_landed_event_with_an_unreadable_time_is_left_out_and_the_rest_publishes(
    data_dir: Path, micros: int | None
) -> None:
    events = ab_turn("c-bad-time")
    land(data_dir, events, partition=7)
    [landed] = [f for f in Lake.in_data_dir(data_dir).files() if f.partition == 7]
    bad = events[0]["event_id"]  # the winner's generation
    set_time(landed.path, bad, micros)

    summary = run_transforms(data_dir)
    result = export_dataset(data_dir, "default", KEYRING)

    assert result.version == "v1"
    assert summary.excluded_events == [bad]
    assert summary.events_loaded == 2
    assert sql(data_dir, "SELECT count(*) FROM events WHERE event_id = ?", bad) == [(0,)]
    assert sql(data_dir, "SELECT response_id FROM responses WHERE conversation_id = 'c-bad-time'"
               ) == [("c-bad-time-b",)]  # fmt: skip
    assert (result.manifest.time_window.last_event or "") < "9999"
    # Only the transform run met the event: nothing was left for the export to exclude.
    assert result.manifest.quality.excluded is not None
    assert result.manifest.quality.excluded.unreadable_time.responses == 0


@pytest.mark.slow
def test_an_event_loaded_before_the_rule_is_removed_and_the_models_rebuilt(
    data_dir: Path,
) -> None:
    """A warehouse whose loader took the time (as the loader did before the rule): an export
    leaves out the rows naming the response and reports them; the next transform run removes
    the event and builds every model in full without it."""
    [(chosen, event_id)] = sql(
        data_dir,
        "SELECT p.chosen_response_id, r.event_id FROM preference_pairs AS p "
        "JOIN responses AS r ON r.response_id = p.chosen_response_id "
        "WHERE p.consent_training AND list_contains(p.signals, 'ab_choice') "
        "ORDER BY p.pair_id LIMIT 1",
    )
    late = "SELECT to_timestamp(?::BIGINT // 1000000)"
    sql(data_dir, f"UPDATE events SET occurred_at = ({late}) WHERE event_id = ?",
        YEAR_10000, event_id)  # fmt: skip
    sql(data_dir, f"UPDATE responses SET occurred_at = ({late}) WHERE response_id = ?",
        YEAR_10000, chosen)  # fmt: skip
    labels = sql(data_dir, "SELECT count(*) FROM labels WHERE response_id = ?", chosen)[0][0]

    result = export_dataset(data_dir, "default", KEYRING)

    left_out = read_manifest(data_dir, "default", "v1").quality.excluded
    assert left_out is not None
    excluded = left_out.unreadable_time
    assert excluded.responses == 1
    assert excluded.rows["dpo"] >= 1 and excluded.rows["reward"] == excluded.rows["dpo"]
    assert excluded.rows["kto"] == labels
    assert (result.manifest.time_window.last_event or "") < "9999"

    summary = run_transforms(data_dir)

    assert summary.excluded_events == [event_id]
    assert {s.mode for s in summary.steps if s.mode} == {"full"}
    assert sql(data_dir, "SELECT count(*) FROM responses WHERE response_id = ?", chosen) == [(0,)]
    # The export had left out exactly what the rebuilt models no longer hold: nothing new.
    assert export_dataset(data_dir, "default", KEYRING).version is None
