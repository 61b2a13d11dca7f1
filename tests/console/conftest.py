"""The console tests' data dir, built once per session (two exports: about 20 s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers.console import build_console_data


@pytest.fixture(scope="session")
def console_data(
    simulated: tuple[Path, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A data dir with a built warehouse and versions v1 and v2 of ``default``; read only."""
    source, _ = simulated
    return build_console_data(source, tmp_path_factory.mktemp("console"))
