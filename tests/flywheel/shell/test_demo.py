"""The README's first command (`make demo` runs `flywheel demo`) end to end in a fresh folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import flywheel
from tests.helpers.datasets import check_published


@pytest.mark.slow
def test_demo_publishes_a_dataset_and_reruns_safely(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"FLYWHEEL_DATA_DIR": str(data)}
    first = flywheel("demo", "--events", "4000", env=env)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    for expected in ("generation", "precision vs ground truth", "quality gate: passed",
                     "dataset default v1 published", "quality report (Data Docs)",
                     # what the version teaches, the ground truth included, and each signal's part
                     "measured on", "ground_truth", "without each signal's pairs"):  # fmt: skip
        assert expected in out, out
    version = data / "datasets" / "default" / "v1"
    manifest = check_published(version)
    before = {p: p.read_bytes() for p in version.rglob("*") if p.is_file()}

    again = flywheel("demo", "--events", "4000", env=env)  # same seed: nothing new
    assert again.returncode == 0, again.stderr
    assert "v1 unchanged (nothing new to publish)" in again.stdout
    assert {p: p.read_bytes() for p in version.rglob("*") if p.is_file()} == before

    more = flywheel("demo", "--events", "4000", "--seed", "1", env=env)  # continue: new traffic
    assert more.returncode == 0 and "dataset default v2 published" in more.stdout
    assert (
        check_published(data / "datasets" / "default" / "v2")["counts"]["dpo"]["rows"]
        > (manifest["counts"]["dpo"]["rows"])
    )

    fresh = flywheel("demo", "--events", "4000", "--fresh", env=env)
    assert fresh.returncode == 0 and "dataset default v1 published" in fresh.stdout
    assert not (data / "datasets" / "default" / "v2").exists()
    assert (data / "keys" / "pseudonym-keys.json").is_file()  # keys survive --fresh


def test_fresh_clears_the_demo_broker_too(tmp_path: Path) -> None:
    from rich.console import Console

    from flywheel.shell.demo import clear_data

    data = tmp_path / "data"
    for folder in ("lake/events", "datasets/default/v1", "kafka-local/data", "keys"):
        (data / folder).mkdir(parents=True)
    (data / "warehouse.duckdb").write_bytes(b"")
    (data / "keys" / "pseudonym-keys.json").write_text("{}")

    clear_data(data, Console(file=None, quiet=True))

    assert sorted(p.name for p in data.iterdir()) == ["keys"]
