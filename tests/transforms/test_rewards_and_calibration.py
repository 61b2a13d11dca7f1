"""Code checks, multi-level rewards, and signal calibration on hand-written sequences."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import make_event
from tests.transforms.test_preference_pairs import generation
from tests.warehouse.test_load import land, query
from transforms.checks import check_response
from transforms.runner import run_transforms
from warehouse.lake import Lake

GOOD_PY = "Try this:\n```python\ndef f(xs):\n    return xs[::-1]\n```\n"
BAD_PY = "```python\ndef f(xs:\n    return xs[::-1]\n```"


def test_code_checks_parse_python_and_json_and_spot_leaked_secrets() -> None:
    text = GOOD_PY + BAD_PY + '\n```json\n{"a": 1}\n```\n```json\n{"a": }\n```\n```go\nx := 1\n```'
    assert check_response(text) == {
        "code_blocks": 5, "python_blocks": 2, "python_parsed": 1, "json_blocks": 2,
        "json_parsed": 1, "leaked_secret": False,
    }  # fmt: skip
    assert check_response('key = "<SECRET:aws_access_key>"')["leaked_secret"] is True
    assert check_response("no code at all")["code_blocks"] == 0


def test_rewards_keep_each_level_beside_the_total(tmp_path: Path) -> None:
    events = [
        generation("good", text=GOOD_PY),
        make_event("copy", response_id="good", text="xs[::-1]", code_block=True),
        make_event("rating", response_id="good", value="up"),
        generation("bad", "m2", text=BAD_PY + "\nAWS key: <SECRET:aws_access_key>"),
        make_event("regenerate", response_id="bad"),
        generation("plain", "m3", text="Just prose."),
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    rows = {
        r[0]: r[1:]
        for r in query(
            tmp_path,
            "SELECT response_id, explicit_score, implicit_score, process_score, penalty, reward "
            "FROM rewards",
        )
    }
    assert rows["good"] == (1.0, 1.0, 1.0, 0, pytest.approx(1.75))
    assert rows["bad"] == (0.0, -1.0, -1.0, -1, pytest.approx(-0.5 - 0.25 - 1.0))
    assert rows["plain"] == (0.0, 0.0, 0.0, 0, 0.0)


def test_calibration_counts_agreement_with_a_wilson_interval(tmp_path: Path) -> None:
    events = [
        generation("ra"),
        generation("rb"),
        make_event("ab_choice", response_a_id="ra", response_b_id="rb", choice="a"),
        make_event("copy", response_id="ra", text="x"),
        generation("rc", "m2"),
        make_event("copy", response_id="rc", text="x"),
        make_event("rating", response_id="rc", value="down"),
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    rows = {
        (r[0], r[1]): r[2:]
        for r in query(
            tmp_path,
            "SELECT signal, explicit, agree, disagree, n, agreement, wilson_low, wilson_high "
            "FROM signal_calibration",
        )
    }
    assert rows[("copy", "ab_choice")][:4] == (1, 0, 1, 1.0)
    assert rows[("copy", "ab_choice")][4] == pytest.approx(0.2065, abs=1e-3)
    assert rows[("copy", "ab_choice")][5] == pytest.approx(1.0)
    assert rows[("copy", "rating")][:4] == (0, 1, 1, 0.0)
