"""Fixtures of the Python client's tests: the scripted API over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.scripted_api import ScriptedApi, scripted_api


@pytest.fixture
def api() -> Iterator[ScriptedApi]:
    """An events API answering from a script (202 once the script is used up)."""
    with scripted_api() as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
