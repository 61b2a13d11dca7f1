"""A warehouse built from simulated traffic (scrubbed, pseudonymised, transformed), built once per
session and copied into each test that publishes from it: the ``simulated`` and ``data_dir``
fixtures, a plugin of the root conftest (``pytest_plugins``) so that the export and the scheduler
tests share one build."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from flywheel.dev.simulator import SimulationConfig, simulate
from privacy.keys import write_keyring
from tests.helpers.datasets import KEYRING, land
from transforms.runner import run_transforms


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """(data dir with lake and warehouse, the simulator's truth records) for 12,000 events."""
    data_dir = tmp_path_factory.mktemp("simulated") / "data"
    simulation = simulate(SimulationConfig(events=12_000, seed=11, ab_rate=0.2))
    land(data_dir, list(simulation))
    run_transforms(data_dir)
    write_keyring(KEYRING, data_dir.parent / "keys.json")
    return data_dir, simulation.truth


@pytest.fixture
def data_dir(simulated: tuple[Path, list[dict[str, Any]]], tmp_path: Path) -> Path:
    """A private copy of the simulated data dir (and its key file beside it)."""
    source, _ = simulated
    copy = tmp_path / "data"
    # Without the lake's catalog, which names the session's copy of the files: the table is
    # built again from this copy's files at its first commit.
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("lake-catalog.db"))
    shutil.copy(source.parent / "keys.json", tmp_path / "keys.json")
    return copy
