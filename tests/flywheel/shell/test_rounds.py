"""`flywheel demo --rounds 3`: each round served by the best of four answers by a reward model
trained on the previous round's published dataset. The users' hidden satisfaction rises from
round 0 on two seeds; a control whose reward models learn from shuffled labels does not."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tests.helpers.cli import flywheel


def _rounds(data: Path, *args: str) -> list[dict[str, object]]:
    run = flywheel("demo", "--rounds", "3", "--events", "2500", *args,
                   env={"FLYWHEEL_DATA_DIR": str(data)}, timeout=1100)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "satisfaction (95%)" in run.stdout and "reward model: round 3" in run.stdout
    rows: list[dict[str, object]] = json.loads((data / "rounds" / "rounds.json").read_text())
    return rows


def _satisfaction(rows: list[dict[str, object]], arm: str) -> list[tuple[float, float, float]]:
    mine = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["round"])  # type: ignore[arg-type, return-value]
    return [(r["wins"] / r["prompts"], r["low"], r["high"]) for r in mine]  # type: ignore[operator, misc]


@pytest.mark.slow
@pytest.mark.timeout(1200)  # eight rounds of the demo: about 4 minutes on a quiet machine
@pytest.mark.parametrize("seed", [1, 2])
def test_satisfaction_rises_over_the_rounds_and_the_control_does_not(
    tmp_path: Path, seed: int
) -> None:
    data = tmp_path / "data"
    control = seed == 1  # the control arm doubles the run: once is enough to show it flat
    rows = _rounds(data, "--seed", str(seed), *(() if control else ("--no-control",)))

    policy = _satisfaction(rows, "reward model")
    assert len(policy) == 4
    first, last = policy[0], policy[-1]
    assert first[1] < 0.5 < first[2]  # round 0 against itself
    assert last[1] > first[2] + 0.1  # round 3's interval well above round 0's
    assert all(later[0] > first[2] for later in policy[1:])
    versions = [r["version"] for r in rows if r["arm"] == "reward model"]
    assert versions == ["v1", "v2", "v3", "v4"]  # one published version per round
    assert all(r["train_pairs"] > 100 for r in rows)  # type: ignore[operator]

    if control:
        shuffled = _satisfaction(rows, "control, shuffled labels")
        assert shuffled[0] == first  # the same round 0: same traffic, no reward model yet
        assert all(abs(s[0] - first[0]) < 0.08 for s in shuffled)
        assert shuffled[-1][0] < last[1] - 0.1
    else:
        assert not (data / "rounds" / "control").exists()

    chart = (data / "rounds" / "rounds.png").read_bytes()
    assert chart[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", chart[16:24])
    assert (width, height) == (1200, 480) and len(chart) > 20_000


def test_rounds_refuse_a_lake_elsewhere(tmp_path: Path) -> None:
    run = flywheel("demo", "--rounds", "2", env={
        "FLYWHEEL_DATA_DIR": str(tmp_path / "data"),
        "FLYWHEEL_LAKE__URL": str(tmp_path / "lake"),
    })  # fmt: skip
    assert run.returncode == 3
    assert "FLYWHEEL_LAKE__URL" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "data" / "rounds").exists()


def test_rounds_refuse_kafka(tmp_path: Path) -> None:
    run = flywheel("demo", "--rounds", "2", "--kafka",
                   env={"FLYWHEEL_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    assert run.returncode == 2 and "--rounds" in run.stderr
