"""``transform_runs`` tells how every run ended: a run that raised is ``failed``, and one killed
before it could say (SIGKILL, power loss) is marked ``interrupted`` by the next run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import transforms.runner
from tests.factories import generation, make_event
from tests.helpers.cli import flywheel
from tests.helpers.lake import land, query
from transforms.runner import run_transforms
from warehouse.lake import Lake

KILLED_MID_RUN = """
import os, signal, sys
from pathlib import Path
import transforms.runner as runner

def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

runner.run_models = killed
runner.run_transforms(Path(sys.argv[1]))
"""


def statuses(data_dir: Path) -> list[tuple[str, bool]]:
    return [
        (status, finished)
        for status, finished in query(
            data_dir,
            "SELECT status, finished_at IS NOT NULL FROM transform_runs ORDER BY started_at",
        )
    ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    land(Lake.in_data_dir(data_dir), [generation("r1"), make_event("copy", response_id="r1")])
    return data_dir


def test_a_killed_run_is_marked_interrupted_by_the_next(data_dir: Path) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_RUN, str(data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert statuses(data_dir) == [("running", False)]  # what it left

    result = flywheel("transform", "run", env={"FLYWHEEL_DATA_DIR": str(data_dir)})

    assert result.returncode == 0, result.stderr
    assert "1 earlier run(s) had been killed" in result.stderr
    assert statuses(data_dir) == [("interrupted", False), ("succeeded", True)]
    assert run_transforms(data_dir).interrupted == 0


def test_a_run_that_raises_is_marked_failed(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a model failed")

    monkeypatch.setattr(transforms.runner, "run_models", broken)
    with pytest.raises(Exception, match="a model failed"):
        run_transforms(data_dir)
    monkeypatch.undo()

    assert statuses(data_dir) == [("failed", True)]
    assert run_transforms(data_dir).interrupted == 0
    assert statuses(data_dir)[-1] == ("succeeded", True)
