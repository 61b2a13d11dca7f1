"""On simulated traffic, end to end: the version published from the users' behaviour teaches a
reward model that beats chance on held-out pairs, the explicit A/B choices among them, and the
simulator's hidden ground truth; the same version with chosen and rejected swapped does not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from evaluate.utility import evaluate_version, truth_pairs
from export.catalog import Catalog
from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from tests.helpers.cli import flywheel
from tests.helpers.datasets import KEYRING

pytestmark = pytest.mark.slow  # an export and several fits: ~30 s


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, simulated: tuple[Path, Any]) -> Path:
    source, _ = simulated
    data_dir = tmp_path_factory.mktemp("evaluate") / "data"
    shutil.copytree(source, data_dir, ignore=shutil.ignore_patterns("lake-catalog.db"))
    shutil.copy(source.parent / "keys.json", data_dir.parent / "keys.json")
    export_dataset(data_dir, "default", KEYRING)
    return data_dir


def ground_truth(simulated: tuple[Path, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    # The same configuration as the fixture's: the simulator is deterministic.
    events = list(simulate(SimulationConfig(events=12_000, seed=11, ab_rate=0.2)))
    return truth_pairs(events, simulated[1])


def test_the_published_version_beats_chance_everywhere_it_is_measured(
    published: Path, simulated: tuple[Path, list[dict[str, Any]]]
) -> None:
    found = evaluate_version(Catalog.in_data_dir(published), "default",
                             truth=ground_truth(simulated))  # fmt: skip
    by_name = {a.name: a for a in found.accuracies}
    assert set(by_name) == {"test", "ab_choice", "ground_truth"}
    for name, measured in by_name.items():
        assert measured.pairs > 20, name
        assert measured.wilson_low is not None and measured.wilson_low > 0.5, (name, measured)
    assert {a.signal for a in found.ablations} >= {"ab_choice", "copy"}


def test_a_version_with_its_sides_swapped_scores_below_chance(
    published: Path, simulated: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    corrupted = tmp_path / "data"
    shutil.copytree(published, corrupted)
    catalog = Catalog.in_data_dir(corrupted)
    version = catalog.versions("default")[-1]
    for split_files in catalog.data_files("default", version)["dpo"].values():
        for path in split_files:
            if "train" in Path(path).name:
                frame = pl.read_parquet(path)
                frame.with_columns(
                    chosen=frame["rejected"], rejected=frame["chosen"]
                ).write_parquet(path)
    found = evaluate_version(catalog, "default", truth=ground_truth(simulated), ablations=False)
    for measured in found.accuracies:
        assert measured.accuracy is not None and measured.accuracy < 0.5, measured


def test_the_command_prints_the_tables_and_the_json(published: Path, tmp_path: Path) -> None:
    env = {"FLYWHEEL_DATA_DIR": str(published)}
    table = flywheel("evaluate", "--no-ablations", env=env)
    assert table.returncode == 0, table.stderr
    assert "ab_choice" in table.stdout and "95% interval" in table.stdout
    as_json = flywheel("evaluate", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["version"] == "v1" and report["ablations"]
    missing = flywheel("evaluate", "--dataset", "nope", env=env)
    assert missing.returncode == 6 and "Traceback" not in missing.stderr
    half = flywheel("evaluate", "--events", str(tmp_path / "e.jsonl"), env=env)
    assert half.returncode == 2 and "Traceback" not in half.stderr
