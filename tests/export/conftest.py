"""The export tests' settings on the simulated data dir (``tests.helpers.simulated``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.settings import Settings


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, privacy={"hmac_key_file": data_dir.parent / "keys.json"})
