"""labels (KTO): desirable or undesirable per response, from its own signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.factories import generation, make_event
from tests.helpers.lake import land, query
from transforms.runner import run_transforms
from warehouse.lake import Lake
from warehouse.lineage import LABEL_LINEAGE


def test_labels_follow_the_evidence(tmp_path: Path) -> None:
    events = [
        generation("copied"),
        make_event("copy", response_id="copied", text="x"),
        generation("downrated", "m2"),
        make_event("rating", response_id="downrated", value="down"),
        generation("regenerated", "m3"),
        make_event("regenerate", response_id="regenerated"),
        generation("bothbad-a", "m4"),
        generation("bothbad-b", "m4"),
        make_event(
            "ab_choice", response_a_id="bothbad-a", response_b_id="bothbad-b", choice="both_bad"
        ),  # fmt: skip
        generation("mixed", "m5"),
        make_event("copy", response_id="mixed", text="x"),
        make_event("rating", response_id="mixed", value="down"),
        generation("nothing", "m6"),
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    labels = dict(query(tmp_path, "SELECT response_id, label FROM labels"))
    assert labels == {
        "copied": True,
        "downrated": False,
        "regenerated": False,
        "bothbad-a": False,
        "bothbad-b": False,
        "mixed": False,  # rating 0.8 against copy 0.5
    }
    confidence = dict(query(tmp_path, "SELECT response_id, confidence FROM labels"))
    assert confidence["copied"] == pytest.approx(0.5)
    assert confidence["mixed"] == pytest.approx(0.8 * 0.3 / 1.3, abs=1e-6)


def lineage(tmp_path: Path, events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each label's lineage, as the export publishes it and trace reports it."""
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    return dict(query(tmp_path, LABEL_LINEAGE))


def ids(*events: dict[str, Any]) -> list[str]:
    return sorted(e["event_id"] for e in events)


def test_lineage_names_every_event_weighed(tmp_path: Path) -> None:
    kept, other = generation("kept"), generation("other")
    copy = make_event("copy", response_id="kept", text="x")
    up = make_event("rating", response_id="kept", value="up")
    down = make_event("rating", response_id="kept", value="down")
    edit = make_event("edit", response_id="kept", edited_text="better")
    won = make_event("ab_choice", response_a_id="kept", response_b_id="other", choice="a")
    tie = make_event("ab_choice", response_a_id="kept", response_b_id="other", choice="tie")
    # Regenerated, but kept all the same: the regeneration weighs nothing against it.
    regenerate = make_event("regenerate", response_id="kept", new_response_id="other")
    later = make_event("generation", response_id="next", parent_id="m2",
                       prompt=[{"role": "user", "content": "hi"},
                               {"role": "assistant", "content": "answer kept",
                                "response_id": "kept"},
                               {"role": "user", "content": "more"}])  # fmt: skip
    away = generation("away", "m9")
    regenerated_away = make_event("regenerate", response_id="away", new_response_id="x")

    found = lineage(tmp_path, [kept, other, copy, up, down, edit, won, tie, regenerate, later,
                               away, regenerated_away])  # fmt: skip

    assert found["kept"] == ids(kept, copy, up, down, edit, won, later)
    assert found["other"] == ids(other, won)  # lost the A/B choice; the tie weighs nothing
    assert found["away"] == ids(away, regenerated_away)


def test_an_edit_weighs_against_its_response_as_much_as_it_changed_it(tmp_path: Path) -> None:
    """The edit rule of pairs: whitespace, punctuation or case alone (of any script) and total
    rewrites are no evidence; a real edit weighs more the more it changed."""
    original = "Use reversed(xs) to get the items backwards."
    edits = {
        "spaces": "Use\u00a0reversed(xs)\u2009to get the items backwards.\n",
        "case": "USE REVERSED(XS) TO GET THE ITEMS BACKWARDS",
        "dashes": "Use reversed(xs) \u2014 to get the items backwards \u2014",
        "rewrite": "Completely different words everywhere now, nothing of the first remains",
        "small": "Use reversed(xs) to get the items backwards, lazily.",
        "large": "Use xs[::-1]: it copies the list, reversed. Or reversed(xs) for an iterator.",
    }
    events = []
    for name, edited in edits.items():
        events += [generation(name, f"m-{name}", original),
                   make_event("edit", response_id=name, edited_text=edited)]  # fmt: skip
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    labels = {r: (label, c) for r, label, c in
              query(tmp_path, "SELECT response_id, label, confidence FROM labels")}  # fmt: skip
    assert set(labels) == {"small", "large"}
    assert labels["small"][0] is False and labels["large"][0] is False
    assert 0 < labels["small"][1] < labels["large"][1] <= 0.6
    rewards = dict(query(tmp_path, "SELECT response_id, implicit_score FROM rewards"))
    assert {name for name, score in rewards.items() if score < 0} == {"small", "large"}
