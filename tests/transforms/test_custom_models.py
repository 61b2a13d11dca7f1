"""A team's own models (``models_dir``): found beside the shipped ones, run in dependency order
under the same incremental and fingerprint rules, and refused with the file named when they
cannot be run as they are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from tests.factories import generation, make_event
from tests.helpers.lake import land, query
from transforms.models import discover, fingerprints, ordered
from transforms.policy import load_policy
from transforms.runner import RunSummary, run_transforms
from warehouse.lake import Lake

TEAM_MODELS = {
    # Reads a shipped model, keyed by response: rebuilt for the touched responses only.
    "copied_responses.sql": (
        "-- depends_on: responses\n-- refresh_by: response_id\n"
        "SELECT response_id, copies > 0 AS copied FROM responses\n"
    ),
    # Reads the events, keyed by conversation.
    "conversation_turns.sql": (
        "-- depends_on: events\n-- refresh_by: conversation_id\n"
        "SELECT conversation_id, count(*) AS generations FROM events "
        "WHERE type = 'generation' GROUP BY conversation_id\n"
    ),
    # Reads another team model and a shipped one; no keys: rebuilt in full on every run.
    "copied_by_conversation.sql": (
        "-- depends_on: copied_responses, responses, conversation_turns\n"
        "SELECT r.conversation_id, count(*) FILTER (WHERE c.copied) AS copied,\n"
        "    any_value(t.generations) AS generations\n"
        "FROM responses AS r JOIN copied_responses AS c USING (response_id)\n"
        "JOIN conversation_turns AS t USING (conversation_id)\n"
        "GROUP BY r.conversation_id\n"
    ),
}
TEAM_TABLES = sorted(Path(name).stem for name in TEAM_MODELS)


def write_models(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql)
    return folder


@pytest.fixture
def team(tmp_path: Path) -> Path:
    return write_models(tmp_path / "team-models", TEAM_MODELS)


def rows(data_dir: Path, table: str) -> list[str]:
    """A table's rows, sorted (model tables are sets)."""
    return sorted(json.dumps(row, default=str) for row in query(data_dir, f"SELECT * FROM {table}"))


def modes(summary: RunSummary) -> dict[str, str]:
    return {step.name: step.mode for step in summary.steps if step.mode}


def first_round() -> list[dict[str, object]]:
    return [
        generation("r1", conversation_id="c1"),
        generation("r2", conversation_id="c1"),
        make_event("copy", response_id="r1", conversation_id="c1"),
        generation("r3", conversation_id="c2"),
    ]


def second_round() -> list[dict[str, object]]:
    # A copy of an answer of c2, and a new conversation: both touched, c1 not.
    return [
        make_event("copy", response_id="r3", conversation_id="c2"),
        generation("r4", conversation_id="c3"),
        generation("r5", "m2", conversation_id="c3"),
    ]


def test_discovery_finds_the_folder_beside_the_shipped_models(team: Path) -> None:
    shipped = discover()
    every = discover(custom=team)

    assert set(every) == set(shipped) | set(TEAM_TABLES)
    assert every["copied_responses"].path == team / "copied_responses.sql"
    assert every["copied_responses"].refresh_by == ("response_id",)
    assert all(every[name] == model for name, model in shipped.items())
    # Unset, nothing changes: the same models, and the shipped fingerprints do not depend on
    # the team's models.
    assert discover(custom=None) == shipped
    policy = load_policy()
    with_team = fingerprints(every, policy)
    assert {name: with_team[name] for name in shipped} == fingerprints(shipped, policy)


def test_team_models_run_after_what_they_read(team: Path) -> None:
    order = [model.name for model in ordered(discover(custom=team))]

    for model in discover(custom=team).values():
        for upstream in model.depends_on:
            if upstream in order:
                assert order.index(upstream) < order.index(model.name), (upstream, model.name)
    assert order.index("responses") < order.index("copied_responses")
    assert order.index("copied_responses") < order.index("copied_by_conversation")
    assert order.index("conversation_turns") < order.index("copied_by_conversation")
    # --select takes a team model and what it needs, shipped or not.
    selected = [m.name for m in ordered(discover(custom=team), ["copied_by_conversation"])]
    assert selected == [n for n in order if n in {"responses", *TEAM_TABLES}]


def test_a_model_keyed_by_response_reads_responses_said_or_not(tmp_path: Path) -> None:
    folder = write_models(tmp_path / "m", {
        "first_events.sql": "-- depends_on: events\n-- refresh_by: response_id\n"
                            "SELECT response_id, min(occurred_at) AS first FROM events GROUP BY 1",
    })  # fmt: skip
    model = discover(custom=folder)["first_events"]

    assert model.depends_on == ("events", "responses")


def test_a_run_builds_them_and_later_runs_only_what_new_events_touch(
    team: Path, tmp_path: Path
) -> None:
    data_dir, full_dir = tmp_path / "incremental", tmp_path / "full"
    land(Lake.in_data_dir(data_dir), first_round())
    first = run_transforms(data_dir, models_dir=team)

    assert {modes(first)[name] for name in TEAM_TABLES} == {"full"}
    assert rows(data_dir, "copied_responses") == sorted(
        json.dumps([r, r == "r1"]) for r in ("r1", "r2", "r3")
    )
    assert query(data_dir, "SELECT * FROM conversation_turns ORDER BY 1") == [("c1", 2), ("c2", 1)]

    land(Lake.in_data_dir(data_dir), second_round(), first=len(first_round()))
    second = run_transforms(data_dir, models_dir=team)

    assert modes(second)["copied_responses"] == "incremental"
    assert modes(second)["conversation_turns"] == "incremental"
    assert modes(second)["copied_by_conversation"] == "full"  # no keys
    assert query(data_dir, "SELECT * FROM copied_by_conversation ORDER BY 1") == [
        ("c1", 1, 2), ("c2", 1, 1), ("c3", 0, 2),
    ]  # fmt: skip
    # The same tables as a full build of the same lake.
    shutil.copytree(data_dir / "lake", full_dir / "lake")
    run_transforms(full_dir, models_dir=team, full_refresh=True)
    for table in TEAM_TABLES:
        assert rows(data_dir, table) == rows(full_dir, table), table


def test_changed_sql_rebuilds_the_model_and_what_reads_it_in_full(
    team: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    land(Lake.in_data_dir(data_dir), first_round())
    run_transforms(data_dir, models_dir=team)
    before = fingerprints(discover(custom=team), load_policy())
    (team / "copied_responses.sql").write_text(
        TEAM_MODELS["copied_responses.sql"].replace("AS copied", "AS copied, copies")
    )
    after = fingerprints(discover(custom=team), load_policy())

    assert before["copied_responses"] != after["copied_responses"]
    assert before["copied_by_conversation"] != after["copied_by_conversation"]
    assert before["conversation_turns"] == after["conversation_turns"]

    land(Lake.in_data_dir(data_dir), second_round(), first=len(first_round()))
    run = modes(run_transforms(data_dir, models_dir=team))

    assert run["copied_responses"] == "full"
    assert run["conversation_turns"] == "incremental"
    assert run["responses"] == "incremental"
    assert query(data_dir, "SELECT response_id, copies FROM copied_responses ORDER BY 1") == [
        ("r1", 1), ("r2", 0), ("r3", 1), ("r4", 0), ("r5", 0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ({"responses.sql": "SELECT 1 AS x"}, "has the name of a shipped model"),
        ({"code_checks.sql": "SELECT 1 AS x"}, "has the name of a shipped model"),
        ({"events.sql": "SELECT 1 AS x"}, "has the name of a warehouse table"),
        ({"transform_runs.sql": "SELECT 1 AS x"}, "has the name of a warehouse table"),
        ({"Quick Copies.sql": "SELECT 1 AS x"}, "is named after its table, in lower-case"),
        ({"drop.sql": "DROP TABLE events"}, "is not one SELECT statement"),
        ({"two.sql": "SELECT 1 AS x; DELETE FROM events"}, "is not one SELECT statement"),
        ({"garbled.sql": "SELEC 1 FROM"}, "is not valid SQL"),
        ({"lost.sql": "-- depends_on: responses, nowhere\nSELECT 1 AS x"},
         "depends on unknown nowhere"),
        ({"a.sql": "-- depends_on: b\nSELECT 1 AS x", "b.sql": "-- depends_on: a\nSELECT 1 AS x"},
         "in a cycle"),
    ],
)  # fmt: skip
def test_bad_models_are_refused_naming_the_file(
    tmp_path: Path, files: dict[str, str], fragment: str
) -> None:
    folder = write_models(tmp_path / "team", files)

    with pytest.raises(ConfigError, match=fragment) as raised:
        ordered(discover(custom=folder))

    assert str(folder / sorted(files)[0]) in str(raised.value)


def test_a_folder_that_is_not_there_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        discover(custom=tmp_path / "nowhere")


def test_a_model_duckdb_refuses_fails_the_run_and_leaves_the_tables(
    team: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    land(Lake.in_data_dir(data_dir), first_round())
    run_transforms(data_dir, models_dir=team)
    kept = {table: rows(data_dir, table) for table in ("responses", *TEAM_TABLES)}
    broken = team / "zz_broken.sql"
    broken.write_text(
        "-- depends_on: copied_responses\nSELECT no_such_column FROM copied_responses"
    )
    land(Lake.in_data_dir(data_dir), second_round(), first=len(first_round()))

    with pytest.raises(ConfigError, match="failed in DuckDB") as raised:
        run_transforms(data_dir, models_dir=team)

    assert f"model zz_broken ({broken})" in str(raised.value)
    statuses = query(data_dir, "SELECT status FROM transform_runs ORDER BY started_at")
    assert statuses == [("succeeded",), ("failed",)]
    assert {table: rows(data_dir, table) for table in kept} == kept
    assert not query(data_dir, "SELECT 1 FROM model_state WHERE model = 'zz_broken'")

    broken.unlink()  # fixed: the next run builds what the failed one did not
    run_transforms(data_dir, models_dir=team)
    assert query(data_dir, "SELECT count(*) FROM copied_responses") == [(5,)]


def test_spark_refuses_a_teams_model_it_cannot_write_before_it_starts(team: Path) -> None:
    from flywheel.settings import SparkSettings
    from transforms.spark import run_transforms_on_spark

    odd = team / "odd.sql"
    odd.write_text(
        "-- depends_on: responses\nSELECT response_id, getvariable('nope') AS x FROM responses"
    )

    # No lake table and no session are touched: the check comes first.
    with pytest.raises(ConfigError, match=r"odd \(.*odd.sql\) reads an unknown variable 'nope'"):
        run_transforms_on_spark(SparkSettings(), None, models_dir=team)  # type: ignore[arg-type]
