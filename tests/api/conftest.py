from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from api.sink import MemorySink
from flywheel.settings import Settings, load_settings
from tests.factories import WRITE_KEY, api_client


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
