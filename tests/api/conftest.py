from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from api.sink import MemorySink
from flywheel.settings import Settings, load_settings
from tests.factories import WRITE_KEY, api_client
from tests.helpers.keys import Clock, key_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def settings() -> Settings:
    return load_settings(
        api={"write_keys": [WRITE_KEY], "cors_origins": ["https://chat.example.com"]}
    )


@pytest.fixture
async def client(settings: Settings, sink: MemorySink) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(settings, sink)) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keyed_settings(tmp_path: Path) -> Settings:
    """A key of every scope (tests.helpers.keys), the data dir in the test's folder."""
    return key_settings(tmp_path / "data")


@pytest.fixture
async def keyed(
    keyed_settings: Settings, sink: MemorySink, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app with a key of every scope; it sends no key of its own."""
    app = create_app(keyed_settings, sink, clock=clock)
    async with api_client(app) as client:
        del client.headers["Authorization"]
        yield client
