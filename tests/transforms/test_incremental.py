"""Incremental builds give the same tables as a full refresh, whatever order the events land in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flywheel.dev.simulator import SimulationConfig, simulate
from tests.factories import generation, make_event
from tests.helpers.lake import land, query
from tests.helpers.scenarios import late_and_duplicated_rounds
from transforms.models import discover
from transforms.runner import RunSummary, run_transforms
from warehouse.lake import Lake

MODEL_TABLES = sorted(discover())
CODE = "Here:\n```python\ndef f(xs):\n    return xs[::-1]\n```\n"


def tables(data_dir: Path) -> dict[str, list[str]]:
    """Every model table, every column, as sorted rows (order-insensitive)."""
    return {
        name: sorted(
            json.dumps(row, default=str) for row in query(data_dir, f"SELECT * FROM {name}")
        )
        for name in MODEL_TABLES
    }


class Rounds:
    """Lands rounds of events in one lake; after each, an incremental run in ``incremental/``
    and a full refresh of a copy of the lake in ``full/``, whose tables must be equal."""

    def __init__(self, root: Path) -> None:
        self.incremental, self.full = root / "incremental", root / "full"
        self.offset = 0

    def land(self, events: list[dict[str, Any]]) -> RunSummary:
        land(Lake.in_data_dir(self.incremental), events, first=self.offset)
        self.offset += len(events)
        summary = run_transforms(self.incremental)
        shutil.copytree(self.incremental / "lake", self.full / "lake", dirs_exist_ok=True)
        run_transforms(self.full, full_refresh=True)
        assert tables(self.incremental) == tables(self.full)
        return summary


def modes(summary: RunSummary) -> dict[str, str]:
    return {step.name: step.mode for step in summary.steps[1:]}


@pytest.mark.slow
def test_late_duplicated_and_cross_conversation_events_over_rounds(tmp_path: Path) -> None:
    rounds = Rounds(tmp_path)
    scenario = late_and_duplicated_rounds()
    first = rounds.land(scenario[0])
    assert set(modes(first).values()) == {"full"}
    second = rounds.land(scenario[1])
    assert modes(second)["responses"] == "incremental"
    assert modes(second)["signal_calibration"] == "full"
    rounds.land(scenario[2])
    [(conversation,)] = query(rounds.full, "SELECT conversation_id FROM responses "
                              "WHERE response_id = 'r2'")  # fmt: skip
    assert conversation == "c4"  # an earlier duplicate of r2's generation moved it
    rounds.land(scenario[3])
    assert query(rounds.incremental, "SELECT reason FROM unpaired_ab_choices "
                 "WHERE response_b_id = 'r9'") == [("not_siblings",)]  # fmt: skip
    again = run_transforms(rounds.incremental)
    assert set(modes(again).values()) == {"unchanged", "full"}  # calibration is always rebuilt
    assert tables(rounds.incremental) == tables(rounds.full)


def test_a_changed_policy_rebuilds_in_full(tmp_path: Path) -> None:
    from transforms.policy import DEFAULT_POLICY

    land(Lake.in_data_dir(tmp_path), [generation("ra"), generation("rb")])
    run_transforms(tmp_path)
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY.read_text().replace("copy = 0.5", "copy = 0.55"))
    land(Lake.in_data_dir(tmp_path), [make_event("copy", response_id="ra")], first=2)
    summary = run_transforms(tmp_path, policy_file=policy)
    assert set(modes(summary).values()) == {"full"}
    assert set(modes(run_transforms(tmp_path, policy_file=policy)).values()) == {
        "unchanged",
        "full",
    }


def test_a_selected_run_leaves_the_other_models_to_catch_up(tmp_path: Path) -> None:
    rounds = Rounds(tmp_path)
    rounds.land([generation("ra"), generation("rb")])
    land(Lake.in_data_dir(rounds.incremental), [make_event("copy", response_id="ra")], first=2)
    rounds.offset = 3
    selected = run_transforms(rounds.incremental, select=["labels"])
    assert [s.name for s in selected.steps[1:]] == ["responses", "edit_changes", "labels"]
    summary = rounds.land([make_event("rating", response_id="rb", value="up")])
    assert modes(summary)["preference_pairs"] == "incremental"


@pytest.mark.slow
def test_simulated_traffic_landed_in_rounds(tmp_path: Path) -> None:
    events = list(simulate(SimulationConfig(events=4000, seed=3, ab_rate=0.3)))
    rounds = Rounds(tmp_path)
    # Most of it first, then small slices: conversations continue across rounds.
    for start, end in [(0, 3400), (3400, 3600), (3600, 3610), (3610, 4000)]:
        rounds.land(events[start:end])
    [(pairs,)] = query(rounds.full, "SELECT count(*) FROM preference_pairs")
    assert pairs > 50


# A small world, so that ids collide and events name each other across conversations.
_CONVERSATIONS = st.sampled_from(["c1", "c2", "c3"])
_RESPONSES = st.sampled_from(["r1", "r2", "r3", "r4", "r5"])
_DAYS = st.sampled_from(["2026-01-03", "2026-01-04", "2026-01-05"])


@st.composite
def _event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["generation", "generation", "copy", "edit", "regenerate",
                                 "ab_choice", "rating"]))  # fmt: skip
    common = {"conversation_id": draw(_CONVERSATIONS),
              "occurred_at": f"{draw(_DAYS)}T09:00:00Z"}  # fmt: skip
    response = draw(_RESPONSES)
    if kind == "generation":
        named = draw(st.lists(_RESPONSES, max_size=2))
        prompt = [{"role": "user", "content": "q"}] + [
            {"role": "assistant", "content": "a", "response_id": r} for r in named
        ]
        text = draw(st.sampled_from([None, CODE, "key <SECRET:aws_access_key>"]))
        parent = draw(st.sampled_from(["m1", "m2"]))
        return generation(response, parent, text=text, prompt=prompt, **common)
    if kind == "ab_choice":
        other = draw(_RESPONSES.filter(lambda r: r != response))
        choice = draw(st.sampled_from(["a", "b", "tie", "both_bad"]))
        return make_event(kind, response_a_id=response, response_b_id=other, choice=choice,
                          **common)  # fmt: skip
    if kind == "edit":
        edited = draw(st.sampled_from([f"answer {response} but better", "something else"]))
        return make_event(kind, response_id=response, edited_text=edited, **common)
    if kind == "rating":
        return make_event(kind, response_id=response, value=draw(st.sampled_from(["up", "down"])),
                          **common)  # fmt: skip
    return make_event(kind, response_id=response, **common)


@pytest.mark.slow
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rounds=st.lists(st.lists(_event(), min_size=1, max_size=6), min_size=2, max_size=4),
       resend=st.booleans())  # fmt: skip
def test_any_events_in_any_rounds_give_the_full_refresh_tables(
    tmp_path_factory: Any, rounds: list[list[dict[str, Any]]], resend: bool
) -> None:
    landed = Rounds(tmp_path_factory.mktemp("rounds"))
    for i, events in enumerate(rounds):
        if resend and i:
            events = [*events, {**rounds[i - 1][0], "conversation_id": "c1"}]  # a duplicate id
        landed.land(events)
