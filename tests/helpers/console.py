"""The web console's test data: a data dir with a built warehouse and two published versions of
the ``default`` dataset (the second after more traffic), and the pages a test visits."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from evaluate.utility import evaluate_files
from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from tests.helpers.datasets import KEYRING, land
from transforms.runner import run_transforms

ADMIN_KEY = "console-admin-key-0123456789"
"""The admin key the console's tests log in with."""

PAGES = (
    "/console/",
    "/console/signals",
    "/console/pairs",
    "/console/pairs?signal=copy&min_confidence=0.3&max_confidence=1&disagreement=some&page=2",
    "/console/datasets",
    "/console/datasets/default/versions/v1",
    "/console/datasets/default/versions/v2",
    "/console/datasets/default/diff?a=v1&b=v2",
    "/console/review",
    "/console/calibration",
)
"""Every page but one pair's (its id comes from the pairs list)."""

RAW_USER_ID = re.compile(r"\bu_[0-9a-f]{12}\b")
"""How the simulator writes raw user ids: none may reach a page."""

EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)""", re.I)
"""An attribute that loads or sends anything to another origin (any scheme, or //host)."""


def build_console_data(source: Path, target: Path) -> Path:
    """A copy of the simulated data dir ``source`` under ``target``, published as ``v1``, then
    with 3,000 more events (another partition) transformed and published as ``v2``, which
    records the evaluation of the light reward model (``v1`` records none)."""
    data_dir = target / "data"
    shutil.copytree(source, data_dir, ignore=shutil.ignore_patterns("lake-catalog.db"))
    shutil.copy(source.parent / "keys.json", target / "keys.json")
    export_dataset(data_dir, "default", KEYRING)
    more = simulate(SimulationConfig(events=3000, seed=12, ab_rate=0.2))
    land(data_dir, list(more), partition=1)
    run_transforms(data_dir)
    export_dataset(data_dir, "default", KEYRING, evaluator=evaluate_files)
    return data_dir


def first_pair_link(html: str) -> str:
    """The first pair's page in a pairs list."""
    found = re.search(r'href="(/console/pairs/[0-9a-f]+)"', html)
    assert found is not None, "the pairs list links no pair"
    return found.group(1)
