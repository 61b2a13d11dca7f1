from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from api.sink import MemorySink
from flywheel.settings import Settings, load_settings
from tests.factories import WRITE_KEY


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
    app = create_app(settings, sink)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {WRITE_KEY}"},
    ) as client:
        yield client
