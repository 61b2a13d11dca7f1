"""Shared fixtures. Tests under tests/integration/ are marked ``integration`` automatically (so are
tests that use the S3 server: ``tests.helpers.s3`` marks them), tests that use the
``trl_python`` fixture ``trl``, and those that use ``spark_settings`` ``spark``."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The simulated warehouse, the review's warehouse, and the S3 server (moto), shared.
pytest_plugins = [
    "tests.helpers.simulated", "tests.helpers.s3", "tests.helpers.postgres", "tests.helpers.spark",
    "tests.helpers.browser", "tests.helpers.review",
]  # fmt: skip

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
        if "trl_python" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.trl)
        if "spark_settings" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)


@pytest.fixture(autouse=True)
def _clean_flywheel_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's FLYWHEEL_* settings or .env file."""
    for name in list(os.environ):
        if name.startswith("FLYWHEEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(scope="session")
def trl_python() -> Path:
    """The interpreter of the cached TRL environment (scripts/trl_env.py, built by ``make test``);
    a test that uses it is marked ``trl``, and fails when the environment is missing."""
    spec = importlib.util.spec_from_file_location("trl_env", ROOT / "scripts" / "trl_env.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    python: Path | None = module.env_python()
    if python is None:
        pytest.fail(
            "the TRL environment is missing: run `python scripts/trl_env.py` (make test does)"
        )
    return python
