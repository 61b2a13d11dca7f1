"""Retention of published versions (``keep_versions``): the newest N current versions keep their
data, older ones keep their manifest, card and quality report, and a reader asking for a pruned
version's data is told when and why (the catalogue, the CLI's one line and exit 6, the API's
410); on the data dir's folder and on S3."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from api.main import create_app
from api.sink import MemorySink
from export.catalog import Catalog, open_catalog, read_manifest, versions
from export.manifest import Manifest, Pruning
from export.policy import DatasetPolicy, DatasetsFile
from export.publish import export_dataset
from export.retention import prunable
from flywheel.errors import VersionPrunedError
from flywheel.settings import Settings
from tests.factories import WRITE_KEY, api_client
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import ADMIN, ADMIN_KEY, KEYRING, check_published
from tests.helpers.s3 import S3Bucket

FIXTURES = Path(__file__).with_name("fixtures")


def publish(data_dir: Path, n: int, *, keep: int, catalog: Catalog | None = None) -> list[str]:
    """Publish ``n`` versions of ``default`` (each a new description: a new version from the same
    warehouse); returns what the last export pruned."""
    pruned: list[str] = []
    for i in range(n):
        policy = DatasetPolicy(description=f"round {i}", keep_versions=keep)
        datasets = DatasetsFile(datasets={"default": policy})
        result = export_dataset(data_dir, "default", KEYRING, datasets=datasets, catalog=catalog)
        assert result.published
        pruned = result.pruned
    return pruned


def manifest_of(pruned: Pruning | None = None, superseded_by: str | None = None) -> Manifest:
    data = json.loads((FIXTURES / "manifest-1-published.json").read_text())
    return Manifest.model_validate(data).model_copy(
        update={"pruned": pruned, "superseded_by": superseded_by}
    )


def test_the_newest_current_versions_keep_their_data() -> None:
    pruning = Pruning(at="2026-12-07T00:00:00+00:00", keep_versions=1, kept=["v2"], reason="r")
    manifests = {
        "v1": manifest_of(pruning),  # pruned already: left alone
        "v2": manifest_of(),
        "v3": manifest_of(superseded_by="v5"),  # an erasure decided: never pruned, not counted
        "v4": manifest_of(),
        "v5": manifest_of(),
        "v6": manifest_of(),
    }
    assert prunable(manifests, 2) == (["v2", "v4"], ["v5", "v6"])
    assert prunable(manifests, 3) == (["v2"], ["v4", "v5", "v6"])
    # A version pruned under a smaller setting has no data to keep.
    assert prunable(manifests, 10) == ([], ["v2", "v4", "v5", "v6"])
    # The newest is never pruned; nor is a withdrawn newest counted as current.
    assert prunable(manifests, 1) == (["v2", "v4", "v5"], ["v6"])
    withdrawn = {**manifests, "v7": manifest_of(superseded_by="withdrawn")}
    assert prunable(withdrawn, 1) == (["v2", "v4", "v5"], ["v6"])
    with pytest.raises(ValueError, match="at least 1"):
        prunable(manifests, 0)


@pytest.mark.slow
@pytest.mark.anyio
async def test_older_versions_lose_their_data_and_keep_their_record(data_dir: Path) -> None:
    folder = data_dir / "datasets" / "default"
    assert publish(data_dir, 2, keep=2) == []
    assert (folder / "v1" / "data").is_dir()

    assert publish(data_dir, 2, keep=2) == ["v2"]  # the third pruned v1, the fourth v2

    assert versions(data_dir, "default") == ["v1", "v2", "v3", "v4"]
    for kept in ("v3", "v4"):
        check_published(folder / kept)
        assert read_manifest(data_dir, "default", kept).pruned is None
    for old in ("v1", "v2"):
        manifest = read_manifest(data_dir, "default", old)
        assert manifest.pruned is not None and manifest.pruned.keep_versions == 2
        assert manifest.pruned.kept == (["v2", "v3"] if old == "v1" else ["v3", "v4"])
        assert not (folder / old / "data").exists()
        data = [f for f in manifest.files if f.path.startswith("data/")]
        assert data and all(f.deleted for f in data)
        # The rest stays, as the manifest lists it: the card (with its notice) and the report.
        for entry in manifest.files:
            if not entry.deleted:
                stored = (folder / old / entry.path).read_bytes()
                assert hashlib.sha256(stored).hexdigest() == entry.sha256, entry.path
        card = (folder / old / "README.md").read_text()
        assert card.startswith("---\n") and "**Data files pruned** on" in card
        assert (folder / old / "quality" / "index.html").is_file()
        assert sum(c.rows for c in manifest.counts.values()) > 0  # the record's counts stay

    catalog = Catalog.in_data_dir(data_dir)
    with pytest.raises(VersionPrunedError, match="keep_versions = 2"):
        catalog.data_files("default", "v1")
    assert catalog.data_files("default", "v4")["dpo"]["train"]

    # The CLI: one red line and exit 6 for the data, the pruned mark in the listing.
    result = flywheel("evaluate", "--version", "v2", env=env(data_dir))
    assert_one_line_error(result, "version v2 of dataset 'default' were pruned on", code=6)
    listing = flywheel("export", "list", env=env(data_dir))
    assert listing.returncode == 0 and "v1 (pruned)" in listing.stdout
    assert "v4 (pruned)" not in listing.stdout

    # The API: the manifest still answers; a pruned data file is 410 with the reason.
    settings = Settings(
        data_dir=data_dir, api={"write_keys": [WRITE_KEY], "admin_keys": [ADMIN_KEY]}
    )
    manifest = read_manifest(data_dir, "default", "v1")
    [path] = [f.path for f in manifest.files if f.path.startswith("data/dpo/train-")]
    async with api_client(create_app(settings, MemorySink())) as client:
        base = "/v1/datasets/default/versions"
        record = await client.get(f"{base}/v1", headers=ADMIN)
        gone = await client.get(f"{base}/v1/files/{path}", headers=ADMIN)
        card = await client.get(f"{base}/v1/files/README.md", headers=ADMIN)
        live = await client.get(f"{base}/v4/files/{path}", headers=ADMIN)
    assert record.status_code == 200 and record.json()["pruned"]["kept"] == ["v2", "v3"]
    assert gone.status_code == 410 and gone.json()["error"] == "pruned"
    assert "keep_versions = 2" in gone.json()["message"] and str(data_dir) not in gone.text
    assert card.status_code == 200 and live.status_code == 200


@pytest.mark.slow
def test_pruning_on_s3(data_dir: Path, s3_bucket: S3Bucket) -> None:
    catalog = open_catalog(Settings(data_dir=data_dir, export={"target": s3_bucket.url("pub")}))

    assert publish(data_dir, 2, keep=1, catalog=catalog) == ["v1"]

    keys = s3_bucket.keys("pub/default/")
    assert not any(k.startswith("pub/default/v1/data/") for k in keys)
    assert any(k.startswith("pub/default/v2/data/") for k in keys)
    manifest = catalog.read_manifest("default", "v1")
    assert manifest.pruned is not None and manifest.pruned.kept == ["v2"]
    assert {f.path for f in manifest.files if not f.deleted} | {"manifest.json"} == {
        k.removeprefix("pub/default/v1/") for k in keys if k.startswith("pub/default/v1/")
    }
    card = catalog.read_file("default", "v1", "README.md")
    assert b"**Data files pruned** on" in card
    [entry] = [f for f in manifest.files if f.path == "README.md"]
    assert entry.sha256 == hashlib.sha256(card).hexdigest()
    [path] = [f.path for f in manifest.files if f.path.startswith("data/kto/train-")]
    with pytest.raises(VersionPrunedError, match="keep_versions = 1"):
        catalog.read_file("default", "v1", path)
    assert catalog.read_file("default", "v2", path)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
