"""Request bodies: keys are checked before a body is read, and no route reads past the limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from api.main import create_app
from api.sink import MemorySink
from flywheel.settings import Settings, load_settings
from tests.factories import WRITE_KEY, api_client

pytestmark = pytest.mark.anyio

ADMIN_KEY = "admin-key-for-body-tests-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}
CHUNK = b"x" * 65536


@pytest.fixture
def admin_settings() -> Settings:
    return load_settings(api={"write_keys": [WRITE_KEY], "admin_keys": [ADMIN_KEY]})


class Streamed:
    """A chunked body (no Content-Length) that counts how much of it the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"user_ids": ["'
        for _ in range(self.chunks):
            self.sent += 1
            yield CHUNK


@pytest.mark.parametrize("headers", [{}, {"Authorization": f"Bearer {WRITE_KEY}"}])
async def test_erasure_checks_the_key_before_reading_the_body(
    admin_settings: Settings, headers: dict[str, str]
) -> None:
    body = Streamed(chunks=200)  # 13 MB
    async with api_client(create_app(admin_settings, MemorySink())) as client:
        response = await client.post(
            "/v1/privacy/erasure", content=body, headers={"Authorization": "", **headers}
        )
    assert response.status_code in (401, 403), response.text
    assert body.sent <= 1


async def test_erasure_stops_reading_a_chunked_body_at_the_limit(
    admin_settings: Settings,
) -> None:
    body = Streamed(chunks=200)
    async with api_client(create_app(admin_settings, MemorySink())) as client:
        response = await client.post("/v1/privacy/erasure", content=body, headers=ADMIN)
    assert response.status_code == 413, response.text
    limit = admin_settings.api.max_request_bytes
    assert body.sent * len(CHUNK) <= limit + 2 * len(CHUNK)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/privacy/erasure"),
        ("POST", "/v1/events"),
        ("GET", "/v1/datasets"),
        ("GET", "/healthz"),
    ],
)
async def test_every_route_refuses_a_declared_body_over_the_limit(
    admin_settings: Settings, method: str, path: str
) -> None:
    size = admin_settings.api.max_request_bytes + 1
    async with api_client(create_app(admin_settings, MemorySink())) as client:
        response = await client.request(method, path, content=b" " * size, headers=ADMIN)
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "request_entity_too_large"


async def test_erasure_body_that_is_not_json_is_400_and_a_wrong_shape_422(
    admin_settings: Settings,
) -> None:
    async with api_client(create_app(admin_settings, MemorySink())) as client:
        broken = await client.post("/v1/privacy/erasure", content=b'{"user_ids": [', headers=ADMIN)
        wrong = await client.post("/v1/privacy/erasure", json={"user_ids": "u1"}, headers=ADMIN)
        extra = await client.post(
            "/v1/privacy/erasure", json={"user_ids": ["u1"], "all": True}, headers=ADMIN
        )
    assert broken.status_code == 400 and broken.json()["error"] == "malformed_json"
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["path"] == "body.user_ids"
    assert extra.status_code == 422 and extra.json()["errors"][0]["path"] == "body.all"


def test_the_erasure_body_is_in_the_openapi_document(admin_settings: Settings) -> None:
    document = create_app(admin_settings, MemorySink()).openapi()
    operation = document["paths"]["/v1/privacy/erasure"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["user_ids"]["maxItems"] == 1000
    assert {"400", "413", "422"} <= set(operation["responses"])
