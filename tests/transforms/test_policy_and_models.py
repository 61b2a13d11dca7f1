"""The policy file, the model runner, and the responses model on hand-written event sequences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flywheel.errors import ConfigError
from tests.factories import make_event
from tests.helpers.lake import ALL_TEXTS, land, query
from transforms.models import Model, ordered, policy_variables, quote
from transforms.policy import DEFAULT_POLICY, load_policy
from transforms.principles import load_principles
from transforms.runner import run_transforms
from warehouse.lake import Lake


def test_the_shipped_policy_loads_and_hashes_stably() -> None:
    policy = load_policy()
    assert policy.weights.ab_choice > policy.weights.copy_
    assert policy.digest == load_policy(DEFAULT_POLICY).digest
    assert policy_variables(policy)["edit_min_change"] == policy.edit.min_change


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[weights\n", "not valid TOML"),
        ('[weights]\nab_choice = "lots"', "weights"),
        (DEFAULT_POLICY.read_text().replace("max_change = 0.85", "max_change = 0.01"), "below"),
        (DEFAULT_POLICY.read_text() + "\n[extra]\nx = 1\n", "extra"),
    ],
)
def test_a_bad_policy_is_one_clear_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_policy(path)


def test_a_changed_weight_changes_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULT_POLICY.read_text().replace("copy = 0.5", "copy = 0.55"))
    assert load_policy(path).digest != load_policy().digest


def test_models_run_in_dependency_order_and_select_takes_what_they_need() -> None:
    models = {
        "pairs": Model("pairs", "SELECT 1", ("responses",)),
        "responses": Model("responses", "SELECT 1", ("events",)),
        "labels": Model("labels", "SELECT 1", ("responses",)),
    }
    names = [m.name for m in ordered(models)]
    assert names.index("responses") < names.index("pairs")
    assert names.index("responses") < names.index("labels")
    assert [m.name for m in ordered(models, ["pairs"])] == ["responses", "pairs"]
    with pytest.raises(ConfigError, match="no model named nope"):
        ordered(models, ["nope"])
    with pytest.raises(ConfigError, match="unknown missing"):
        ordered({"a": Model("a", "SELECT 1", ("missing",))})
    with pytest.raises(ConfigError, match="cycle"):
        ordered({"a": Model("a", "", ("b",)), "b": Model("b", "", ("a",))})


def test_identifiers_are_quoted() -> None:
    assert quote('we"ird') == '"we""ird"'


def conversation() -> list[dict[str, Any]]:
    """One conversation: an answer copied and rated up, a regenerated one, an A/B, a follow-up."""

    def generation(response: str, parent: str, prompt: list[dict[str, Any]] | None = None) -> Any:
        return make_event(
            "generation", response_id=response, parent_id=parent, response=f"answer {response}",
            prompt=prompt or [{"role": "user", "content": "question"}],
        )  # fmt: skip

    return [
        # A copy that arrives before its generation (out of order) still counts.
        make_event("copy", response_id="r1", text="answer", code_block=True),
        generation("r1", "m1"),
        make_event("rating", response_id="r1", value="up"),
        generation("r2", "m2"),
        make_event("regenerate", response_id="r2", new_response_id="r3"),
        generation("r3", "m2"),
        make_event("ab_choice", response_a_id="r2", response_b_id="r3", choice="b"),
        make_event("edit", response_id="r3", edited_text="answer r3, fixed"),
        generation(
            "r4",
            "m3",
            [
                {"role": "user", "content": "question"},
                {"role": "assistant", "content": "answer r3", "response_id": "r3"},
                {"role": "user", "content": "and then?"},
            ],
        ),  # fmt: skip
    ]


def test_responses_gather_every_signal_including_late_ones(tmp_path: Path) -> None:
    events = conversation()
    land(Lake.in_data_dir(tmp_path), events)
    summary = run_transforms(tmp_path)
    assert [(s.name, s.rows) for s in summary.steps][:2] == [("events (load)", 9), ("responses", 4)]
    rows = query(
        tmp_path,
        "SELECT response_id, siblings, copies, code_copies, edits, regenerations, ratings_up, "
        "ratings_down, ab_wins, ab_losses, continued FROM responses ORDER BY response_id",
    )
    assert rows == [
        ("r1", 1, 1, 1, 0, 0, 1, 0, 0, 0, False),
        ("r2", 2, 0, 0, 0, 1, 0, 0, 0, 1, False),
        ("r3", 2, 0, 0, 1, 0, 0, 0, 1, 0, True),
        ("r4", 1, 0, 0, 0, 0, 0, 0, 0, 0, False),
    ]
    [(prompt,)] = query(
        tmp_path,
        "SELECT t.prompt FROM responses JOIN lake_texts AS t USING (event_id) "
        "WHERE response_id = 'r4'",
        texts=ALL_TEXTS,
    )
    assert [m["role"] for m in json.loads(prompt)] == ["user", "assistant", "user"]
    [(policy_hash, principles_hash)] = query(
        tmp_path, "SELECT policy_hash, principles_hash FROM transform_runs"
    )
    assert policy_hash == load_policy().digest
    assert principles_hash == load_principles().digest


def test_running_twice_changes_nothing_and_full_refresh_gives_the_same_tables(
    tmp_path: Path,
) -> None:
    lake = Lake.in_data_dir(tmp_path)
    events = conversation()
    land(lake, events[:4])
    run_transforms(tmp_path)
    land(lake, events[4:], first=4)
    run_transforms(tmp_path)
    first = query(tmp_path, "SELECT * FROM responses ORDER BY response_id")
    run_transforms(tmp_path)
    assert query(tmp_path, "SELECT * FROM responses ORDER BY response_id") == first
    run_transforms(tmp_path, full_refresh=True)
    assert query(tmp_path, "SELECT * FROM responses ORDER BY response_id") == first
