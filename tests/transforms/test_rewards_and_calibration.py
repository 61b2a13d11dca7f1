"""Code checks, multi-level rewards, and signal calibration on hand-written sequences."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.factories import generation, make_event
from tests.helpers.lake import land, query
from transforms import checks
from transforms.runner import run_transforms
from warehouse.lake import Lake

GOOD_PY = "Try this:\n```python\ndef f(xs):\n    return xs[::-1]\n```\n"
BAD_PY = "```python\ndef f(xs:\n    return xs[::-1]\n```"


CHECKS_SQL = (
    "SELECT response_id, code_blocks, python_blocks, python_parsed, json_blocks, json_parsed, "
    "leaked_secret FROM code_checks ORDER BY response_id"
)
COUNTS_SQL = f"SELECT response_id, {', '.join(checks.COUNTS)} FROM code_checks"


def test_code_checks_parse_python_and_json_and_spot_leaked_secrets(tmp_path: Path) -> None:
    text = GOOD_PY + BAD_PY + '\n```json\n{"a": 1}\n```\n```json\n{"a": }\n```\n```go\nx := 1\n```'
    events = [
        generation("mixed", text=text),
        generation("same", "m2", text=text),  # the same text: checked once, counted for both
        generation("leak", "m3", text='key = "<SECRET:aws_access_key>"'),
        generation("prose", "m4", text="no code at all"),
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    assert query(tmp_path, CHECKS_SQL) == [
        ("leak", 0, 0, 0, 0, 0, True),
        ("mixed", 5, 2, 1, 2, 1, False),
        ("same", 5, 2, 1, 2, 1, False),
    ]


TRICKY = [
    "```PY\nx = 1\n```",  # tags are case-insensitive
    "```python title=x.py\nprint(1)\n```",  # the rest of the tag line is not code
    "```python\nunclosed = (",  # no closing fence: no block
    "``` \n{}\n```\n```json\n[1,\n2]\n```",  # an untagged block, then a multi-line one
    "a```json\n1```b```python\n)```",  # fences inside a line
    "```python3\r\nx = 1\r\n```",  # Windows line ends
    "```json\n```",  # an empty body
    "```c++\nint x;\n```\n```python\nif True:\n  pass\n```",
]


@pytest.mark.parametrize("text", TRICKY)
def test_duckdb_finds_the_same_blocks_as_python(tmp_path: Path, text: str) -> None:
    """The blocks DuckDB's RE2 finds are the ones Python's ``re`` finds with the same pattern,
    and each counts as its own parser says."""
    fence = re.compile(r"```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
    blocks = [(tag.lower(), body) for tag, body in fence.findall(text)]
    assert checks.text_blocks(text) == blocks
    checkable = sorted({b for b in blocks if b[0] in checks.KINDS})
    found = dict(zip(checkable, checks.check_blocks(checkable, checks.principles()), strict=True))
    expected = checks.text_checks(blocks, found, checks.principles()).counts
    assert expected["code_blocks"] == len(blocks)
    land(Lake.in_data_dir(tmp_path), [generation("r", text=text)])
    run_transforms(tmp_path)
    [row] = query(tmp_path, COUNTS_SQL)
    assert dict(zip(checks.COUNTS, row[1:], strict=True)) == expected


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
            "SELECT response_id, explicit_score, implicit_score, process_score, "
            "constitutional_score, penalty, reward FROM rewards",
        )
    }
    # The policy's [rewards]: explicit 1, implicit 0.5, process 0.25, constitutional 0.15.
    assert rows["good"] == (1.0, 1.0, 1.0, 1.0, 0, pytest.approx(1.9))
    # Code that does not parse is no evidence for the principles either way.
    assert rows["bad"] == (0.0, -1.0, -1.0, 0.0, -1, pytest.approx(-0.5 - 0.25 - 1.0))
    assert rows["plain"] == (0.0, 0.0, 0.0, 0.0, 0, 0.0)


def at(minute: int) -> str:
    return f"2026-01-05T09:{minute:02d}:00Z"


def test_calibration_counts_agreement_with_a_wilson_interval(tmp_path: Path) -> None:
    events = [
        generation("ra"),
        generation("rb"),
        make_event("copy", response_id="ra", text="x", occurred_at=at(1)),
        make_event(
            "ab_choice", response_a_id="ra", response_b_id="rb", choice="a", occurred_at=at(2)
        ),
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


def test_calibration_compares_an_ab_choice_only_with_signals_given_before_it(
    tmp_path: Path,
) -> None:
    """A signal after the choice may be caused by it (users copy, edit and continue from the
    answer they picked): it is not compared with the choice, nor one at the same instant."""
    events = [
        generation("ra"),
        generation("rb"),
        make_event("copy", response_id="ra", text="x", occurred_at=at(1)),  # before: counts
        make_event("regenerate", response_id="rb", occurred_at=at(1)),  # before: counts
        make_event("copy", response_id="rb", text="x", occurred_at=at(3)),  # kept after: still away
        make_event("edit", response_id="rb", edited_text="better", occurred_at=at(2)),  # same time
        make_event(
            "ab_choice", response_a_id="ra", response_b_id="rb", choice="a", occurred_at=at(2)
        ),
        make_event("edit", response_id="ra", edited_text="fixed", occurred_at=at(3)),  # after
        # Everything after the choice: nothing to compare.
        generation("rc", "m2"),
        generation("rd", "m2"),
        make_event(
            "ab_choice", response_a_id="rc", response_b_id="rd", choice="b", occurred_at=at(1)
        ),
        make_event("copy", response_id="rd", text="x", occurred_at=at(2)),
        make_event("edit", response_id="rd", edited_text="fixed", occurred_at=at(2)),
        make_event("regenerate", response_id="rc", occurred_at=at(2)),
        generation(
            "re",
            "m3",
            prompt=[
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "answer rd", "response_id": "rd"},
                {"role": "user", "content": "more"},
            ],
            occurred_at=at(3),
        ),
        # Kept (rated up) before the choice: not regenerated away by then.
        generation("rf", "m4"),
        generation("rg", "m4"),
        make_event("regenerate", response_id="rf", occurred_at=at(1)),
        make_event("rating", response_id="rf", value="up", occurred_at=at(1)),
        make_event("rating", response_id="rf", value="down", occurred_at=at(1)),
        make_event(
            "ab_choice", response_a_id="rf", response_b_id="rg", choice="a", occurred_at=at(2)
        ),
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    assert query(
        tmp_path,
        "SELECT response_id, other_response_id, signal, agrees FROM calibration_votes "
        "WHERE explicit = 'ab_choice' ORDER BY ALL",
    ) == [("ra", "rb", "copy", True), ("ra", "rb", "regenerate", True)]
    rows = query(tmp_path, "SELECT signal, n FROM signal_calibration WHERE explicit = 'ab_choice'")
    assert sorted(rows) == [("copy", 1), ("regenerate", 1)]


def test_calibration_counts_an_edit_only_where_it_is_evidence(tmp_path: Path) -> None:
    """An edit of whitespace or case alone is no signal in pairs, labels or rewards
    (edit_changes), and none in the calibration either; a real edit is."""
    events = [
        generation("ra"),
        generation("rb"),
        make_event("edit", response_id="rb", edited_text="answer rb, fixed", occurred_at=at(1)),
        make_event(
            "ab_choice", response_a_id="ra", response_b_id="rb", choice="a", occurred_at=at(2)
        ),  # fmt: skip
        generation("rc", "m2"),
        generation("rd", "m2"),
        make_event("edit", response_id="rd", edited_text="ANSWER  rd ", occurred_at=at(1)),
        make_event(
            "ab_choice", response_a_id="rc", response_b_id="rd", choice="a", occurred_at=at(2)
        ),  # fmt: skip
        generation("re", "m3"),
        make_event("edit", response_id="re", edited_text="Answer re.", occurred_at=at(1)),
        make_event("rating", response_id="re", value="down", occurred_at=at(2)),
    ]
    land(Lake.in_data_dir(tmp_path), events)
    run_transforms(tmp_path)
    assert query(
        tmp_path, "SELECT response_id, other_response_id, signal, explicit, agrees "
        "FROM calibration_votes WHERE signal = 'edit' ORDER BY ALL",
    ) == [("ra", "rb", "edit", "ab_choice", True)]  # fmt: skip
