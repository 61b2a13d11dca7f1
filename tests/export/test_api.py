"""The datasets API (admin key): listing, manifests and downloads, in-process and over HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from api.server import running_api
from api.sink import MemorySink
from export.publish import export_dataset
from flywheel.settings import Settings
from tests.factories import WRITE_KEY, api_client
from tests.helpers.datasets import ADMIN, ADMIN_KEY, KEYRING

# Every test publishes from a copy of the simulated warehouse (measured: 5 to 25 s each).
pytestmark = pytest.mark.slow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api_settings(data_dir: Path) -> Settings:
    export_dataset(data_dir, "default", KEYRING)
    return Settings(data_dir=data_dir, api={"write_keys": [WRITE_KEY], "admin_keys": [ADMIN_KEY]})


@pytest.mark.anyio
async def test_list_manifest_and_download(api_settings: Settings) -> None:
    async with api_client(create_app(api_settings, MemorySink())) as client:
        listing = await client.get("/v1/datasets", headers=ADMIN)
        assert listing.status_code == 200
        [dataset] = listing.json()["datasets"]
        assert dataset["name"] == "default" and dataset["latest"] == "v1"
        assert dataset["versions"][0]["rows"]["dpo"] > 0

        manifest = (await client.get("/v1/datasets/default/versions/v1", headers=ADMIN)).json()
        assert manifest["version"] == "v1"
        entry = next(e for e in manifest["files"] if e["path"].startswith("data/dpo/train"))
        download = await client.get(
            f"/v1/datasets/default/versions/v1/files/{entry['path']}", headers=ADMIN
        )
        assert download.status_code == 200
        assert hashlib.sha256(download.content).hexdigest() == entry["sha256"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    [
        "/v1/datasets/nope/versions/v1",
        "/v1/datasets/default/versions/v9",
        "/v1/datasets/default/versions/v1/files/data/dpo/nothing.parquet",
        "/v1/datasets/default/versions/v1/files/../../warehouse.duckdb",
        "/v1/datasets/default/versions/v1/files/%2e%2e/%2e%2e/warehouse.duckdb",
    ],
)
async def test_unknown_names_and_paths_are_404(api_settings: Settings, path: str) -> None:
    async with api_client(create_app(api_settings, MemorySink())) as client:
        response = await client.get(path, headers=ADMIN)
    assert response.status_code in (404, 422), response.text


@pytest.mark.anyio
async def test_admin_key_required(api_settings: Settings) -> None:
    async with api_client(create_app(api_settings, MemorySink())) as client:
        # api_client sends the write key: not enough
        assert (await client.get("/v1/datasets")).status_code == 403
        anonymous = await client.get("/v1/datasets", headers={"Authorization": ""})
        assert anonymous.status_code == 401
        assert "admin key" in anonymous.json()["message"]


def test_over_real_http(api_settings: Settings) -> None:
    with running_api(api_settings, MemorySink()) as url, httpx.Client(base_url=url) as client:
        listing = client.get("/v1/datasets", headers=ADMIN)
        readme = client.get("/v1/datasets/default/versions/v1/files/README.md", headers=ADMIN)
    assert listing.status_code == 200 and listing.json()["datasets"][0]["name"] == "default"
    assert readme.status_code == 200 and readme.text.startswith("---\n")


@pytest.mark.anyio
@pytest.mark.parametrize("damage", ["{", '{"created_at": "x"}', "[]"])
async def test_a_damaged_manifest_is_marked_and_the_other_datasets_still_listed(
    api_settings: Settings, damage: str
) -> None:
    other = api_settings.data_dir / "datasets" / "broken" / "v1"
    other.mkdir(parents=True)
    (other / "manifest.json").write_text(damage)
    async with api_client(create_app(api_settings, MemorySink())) as client:
        listing = await client.get("/v1/datasets", headers=ADMIN)
        manifest = await client.get("/v1/datasets/broken/versions/v1", headers=ADMIN)
    assert listing.status_code == 200, listing.text
    by_name = {d["name"]: d for d in listing.json()["datasets"]}
    assert by_name["default"]["latest"] == "v1" and by_name["default"]["damaged"] == []
    assert by_name["broken"] == {
        "name": "broken",
        "latest": None,
        "versions": [],
        "damaged": ["v1"],
    }
    assert str(api_settings.data_dir) not in listing.text
    assert str(api_settings.data_dir) not in manifest.text


@pytest.mark.anyio
async def test_a_not_found_message_never_carries_a_server_path(api_settings: Settings) -> None:
    manifest = api_settings.data_dir / "datasets" / "default" / "v1" / "manifest.json"
    manifest.write_text("{")
    async with api_client(create_app(api_settings, MemorySink())) as client:
        response = await client.get("/v1/datasets/default/versions/v1", headers=ADMIN)
    assert response.status_code == 404
    assert "/" not in response.json()["message"]
