"""Datasets published to S3 (``FLYWHEEL_EXPORT__TARGET=s3://...``) on a real S3 endpoint
(``moto_server``): the same version as on disk, object by object; the manifest last, as the
commit; failed and racing attempts; the readers; erasure; the CLI's lines at start."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pytest

from export.build import Rekeyer
from export.catalog import CLAIM_FILE, Catalog, claim_record, open_catalog
from export.commit import commit_objects
from export.manifest import Manifest
from export.publish import export_dataset
from flywheel.errors import ExportBusyError, TransientError
from flywheel.net import free_port
from flywheel.settings import Settings
from flywheel.shell.erasure import erase_users
from flywheel.storage import ObjectStorage
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import KEYRING
from tests.helpers.erasure import heavy_users, settings_for
from tests.helpers.s3 import S3Bucket

FIXTURES = Path(__file__).with_name("fixtures")
PREFIX = "published"
RUN_TIME = re.compile(r"\d{8}T\d{6}\.\d+Z")
"""Great Expectations names its validation pages after the run's time."""


def timeless(paths: Iterable[str]) -> list[str]:
    """Paths with the quality report's run times blanked, sorted."""
    return sorted(RUN_TIME.sub("<time>", path) for path in paths)


def s3_catalog(bucket: S3Bucket, data_dir: Path) -> Catalog:
    return open_catalog(Settings(data_dir=data_dir, export={"target": bucket.url(PREFIX)}))


def objects(bucket: S3Bucket, prefix: str = PREFIX) -> dict[str, bytes]:
    """Every object under ``prefix``, read as it is (not through the catalogue), by key relative
    to it."""
    client = bucket.server.client()
    return {
        key.removeprefix(f"{prefix}/"): client.get_object(Bucket=bucket.name, Key=key)[
            "Body"
        ].read()
        for key in bucket.keys(f"{prefix}/")
    }


def local_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def rows(files: dict[str, bytes]) -> dict[str, pl.DataFrame]:
    return {
        key: pl.read_parquet(io.BytesIO(data))
        for key, data in files.items()
        if key.endswith(".parquet")
    }


@pytest.mark.slow
def test_a_version_on_s3_is_the_version_on_disk(
    data_dir: Path, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    twin = tmp_path / "twin" / "data"
    shutil.copytree(data_dir, twin)
    local = export_dataset(data_dir, "default", KEYRING)
    catalog = s3_catalog(s3_bucket, twin)
    remote = export_dataset(twin, "default", KEYRING, catalog=catalog)

    assert local.version == remote.version == "v1"
    assert remote.path is None and remote.url == f"s3://{s3_bucket.name}/{PREFIX}/default/v1"
    assert local.path is not None
    on_disk = local_files(local.path)
    stored = objects(s3_bucket)
    # Nothing but the version and the pointer to it: no claim, no attempt, no failed folder.
    assert stored["default/LATEST"] == b"v1\n"
    assert timeless(k for k in stored if k != "default/LATEST") == timeless(
        f"default/v1/{key}" for key in on_disk
    )
    version = {
        key.removeprefix("default/v1/"): data
        for key, data in stored.items()
        if key.startswith("default/v1/")
    }
    # Data files and the card are deterministic: byte for byte the same.
    for key, data in on_disk.items():
        if key.startswith("data/") or key == "README.md":
            assert version[key] == data, key
    assert rows(version).keys() == rows(on_disk).keys()
    for key, frame in rows(on_disk).items():
        assert rows(version)[key].equals(frame)
    # The manifest lists every object but itself, each with the hash and size of its bytes.
    manifest = Manifest.from_json(version["manifest.json"])
    local_manifest = Manifest.from_json(on_disk["manifest.json"])
    assert {f.path for f in manifest.files} == set(version) - {"manifest.json"}
    for entry in manifest.files:
        assert entry.sha256 == hashlib.sha256(version[entry.path]).hexdigest()
        assert entry.bytes == len(version[entry.path])
    assert timeless(f.path for f in manifest.files) == timeless(
        f.path for f in local_manifest.files
    )
    deterministic = {f.path: f.sha256 for f in local_manifest.files if f.path.startswith("data/")}
    assert {f.path: f.sha256 for f in manifest.files if f.path in deterministic} == deterministic
    assert manifest.counts == local_manifest.counts
    assert manifest.fingerprint == local_manifest.fingerprint
    # The catalogue reads it back; nothing new is nothing new on S3 too.
    assert catalog.names() == ["default"] and catalog.versions("default") == ["v1"]
    assert catalog.read_manifest("default", "v1") == manifest
    assert catalog.read_manifest("default", "latest") == manifest
    again = export_dataset(twin, "default", KEYRING, catalog=catalog)
    assert not again.published and set(objects(s3_bucket)) == set(stored)


@pytest.mark.slow
def test_load_dataset_reads_a_version_from_s3(
    data_dir: Path, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    datasets = pytest.importorskip("datasets")
    catalog = s3_catalog(s3_bucket, data_dir)
    result = export_dataset(data_dir, "default", KEYRING, catalog=catalog)
    assert result.version is not None

    files = catalog.data_files("default", result.version)
    for kind in ("dpo", "kto", "reward"):
        assert all(url.startswith(f"s3://{s3_bucket.name}/") for u in files[kind].values()
                   for url in u)  # fmt: skip
        loaded = datasets.load_dataset(
            "parquet",
            data_files=files[kind],
            storage_options=catalog.storage_options(),
            cache_dir=str(tmp_path / "hf"),
        )
        assert set(loaded) == set(result.manifest.counts[kind].splits)
        for split, table in loaded.items():
            assert table.num_rows == result.manifest.counts[kind].splits[split].rows


def attempt_folder(tmp_path: Path) -> tuple[Path, Manifest]:
    """A small finished attempt (a data file and a report) and a manifest for it."""
    folder = tmp_path / "datasets" / "default"
    attempt = folder / ".attempt-test"
    (attempt / "data" / "dpo").mkdir(parents=True)
    (attempt / "quality").mkdir()
    pl.DataFrame({"user": ["u1", "u2"]}).write_parquet(
        attempt / "data" / "dpo" / "train-00000-of-00001.parquet"
    )
    (attempt / "quality" / "index.html").write_text("<html></html>")
    manifest = Manifest.from_json((FIXTURES / "manifest-1-published.json").read_bytes())
    manifest = manifest.model_copy(update={"dataset": "default", "superseded_by": None})
    return attempt, manifest


def test_an_upload_that_fails_leaves_no_version_and_no_object(
    s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = s3_catalog(s3_bucket, tmp_path)
    attempt, manifest = attempt_folder(tmp_path)
    real = ObjectStorage.write_once
    calls: list[str] = []

    def failing(self: ObjectStorage, key: str, data: bytes) -> None:
        calls.append(key)
        if len(calls) == 2:  # the store goes away after the first file
            raise TransientError(f"{self.location}: could not reach S3")
        real(self, key, data)

    monkeypatch.setattr(ObjectStorage, "write_once", failing)
    with pytest.raises(TransientError):
        commit_objects(catalog, attempt, manifest, owner="host:/data")
    assert catalog.versions("default") == [] and catalog.names() == []
    assert objects(s3_bucket) == {}  # what it uploaded and its claim are gone

    monkeypatch.setattr(ObjectStorage, "write_once", real)
    committed = commit_objects(catalog, attempt, manifest, owner="host:/data")
    assert committed.version == "v1" and catalog.versions("default") == ["v1"]


def test_a_killed_attempt_is_invisible_then_cleared_by_its_owner(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    catalog = s3_catalog(s3_bucket, tmp_path)
    attempt, manifest = attempt_folder(tmp_path)
    client = s3_bucket.server.client()
    # What a process killed mid-upload leaves: its claim and a data file, no manifest. One of
    # another data dir's too, which must be left alone.
    for version, owner in (("v1", "host:/data"), ("v2", "other-host:/data")):
        key = f"{PREFIX}/default/{version}"
        client.put_object(Bucket=s3_bucket.name, Key=f"{key}/{CLAIM_FILE}",
                          Body=claim_record(owner, "a", "2026-01-01T00:00:00+00:00"))  # fmt: skip
        client.put_object(Bucket=s3_bucket.name, Key=f"{key}/data/dpo/train-00000-of-00001.parquet",
                          Body=b"half")  # fmt: skip
    assert catalog.names() == [] and catalog.versions("default") == []
    result = flywheel("export", "list", env=env(tmp_path / "data",
                      FLYWHEEL_EXPORT__TARGET=s3_bucket.url(PREFIX)))  # fmt: skip
    assert result.returncode == 0 and "no published datasets" in result.stdout

    committed = commit_objects(catalog, attempt, manifest, owner="host:/data")

    # Its own leftovers are gone; the other owner's keep their number, so this is v3.
    assert committed.version == "v3" and committed.previous_version is None
    left = set(objects(s3_bucket))
    assert not {k for k in left if k.startswith("default/v1/")}
    assert {k for k in left if k.startswith("default/v2/")} == {
        f"default/v2/{CLAIM_FILE}",
        "default/v2/data/dpo/train-00000-of-00001.parquet",
    }
    assert catalog.versions("default") == ["v3"]


def test_two_exporters_cannot_both_publish_a_number(
    s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = s3_catalog(s3_bucket, tmp_path)
    attempt, manifest = attempt_folder(tmp_path)
    client = s3_bucket.server.client()
    real = ObjectStorage.write_if_absent

    def raced(self: ObjectStorage, key: str, data: bytes) -> bool:
        if key.endswith(CLAIM_FILE):  # another host numbered v1 too, and claimed it first
            client.put_object(Bucket=s3_bucket.name, Key=self.path_of(key).partition("/")[2],
                              Body=claim_record("other:/data", "b", "now"))  # fmt: skip
        return real(self, key, data)

    monkeypatch.setattr(ObjectStorage, "write_if_absent", raced)
    with pytest.raises(ExportBusyError, match="v1 of dataset 'default' was claimed by another"):
        commit_objects(catalog, attempt, manifest, owner="host:/data")
    # Nothing of this attempt was uploaded; the winner's claim is untouched.
    assert set(objects(s3_bucket)) == {f"default/v1/{CLAIM_FILE}"}
    assert json.loads(objects(s3_bucket)[f"default/v1/{CLAIM_FILE}"])["owner"] == "other:/data"


def test_a_manifest_is_never_written_over(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    storage = s3_catalog(s3_bucket, tmp_path).objects
    assert storage.write_if_absent("default/v1/manifest.json", b"first")
    assert not storage.write_if_absent("default/v1/manifest.json", b"second")
    assert storage.read_bytes("default/v1/manifest.json") == b"first"


@pytest.mark.slow
def test_erasure_leaves_no_object_holding_the_users(data_dir: Path, s3_bucket: S3Bucket) -> None:
    settings = settings_for(data_dir, export={"target": s3_bucket.url(PREFIX)})
    catalog = open_catalog(settings)
    export_dataset(data_dir, "default", KEYRING, catalog=catalog)
    raw_ids = heavy_users()
    rekey = Rekeyer(KEYRING.keys[1], "default")
    exported = {rekey(KEYRING.pseudonym(raw_id)) for raw_id in raw_ids}

    def holding(stored: dict[str, bytes]) -> list[str]:
        found = []
        for key, data in stored.items():
            if key.endswith(".parquet"):
                users = set(pl.read_parquet(io.BytesIO(data), columns=["user"])["user"])
                if users & exported:
                    found.append(key)
            elif any(user.encode() in data for user in exported):
                found.append(key)
        return found

    assert holding(objects(s3_bucket))  # the users are in v1 before

    erase_users(settings, raw_ids, KEYRING)

    stored = objects(s3_bucket)
    assert holding(stored) == []
    assert catalog.versions("default") == ["v1", "v2"]
    old, new = catalog.read_manifest("default", "v1"), catalog.read_manifest("default", "v2")
    assert old.superseded_by == "v2" and new.erasure is not None and new.erasure.rows_removed
    assert not [k for k in stored if k.startswith("default/v1/data/")]
    assert all(f.deleted for f in old.files if f.path.startswith("data/"))
    assert "Superseded by v2" in stored["default/v1/README.md"].decode()
    assert stored["default/LATEST"] == b"v2\n" and catalog.resolve("default", "latest") == "v2"
    card = next(f for f in old.files if f.path == "README.md")
    assert card.sha256 == hashlib.sha256(stored["default/v1/README.md"]).hexdigest()


def test_a_missing_bucket_stops_export_commands_at_start(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    target = f"s3://{s3_bucket.name}-missing/{PREFIX}"
    settings = env(data_dir, FLYWHEEL_EXPORT__TARGET=target)
    for command in (("export", "run"), ("export", "list"), ("erase", "--user", "u-1")):
        result = flywheel(*command, env=settings)
        assert_one_line_error(
            result, f"the bucket {s3_bucket.name}-missing does not exist "
            f"(FLYWHEEL_EXPORT__TARGET={target})", code=3,
        )  # fmt: skip
    assert not data_dir.exists()  # nothing built, no erasure request logged


def test_an_unreachable_endpoint_stops_export_commands_at_start(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "unused", "AWS_SECRET_ACCESS_KEY": "unused",
           "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    data_dir = tmp_path / "data"
    settings = env(data_dir, FLYWHEEL_EXPORT__TARGET="s3://flywheel-datasets/v", **aws)
    for command in (("export", "run"), ("export", "list")):
        result = flywheel(*command, env=settings)
        assert_one_line_error(
            result, f"s3://flywheel-datasets/v: could not reach the S3 endpoint {endpoint}", code=4
        )
    assert not data_dir.exists()


def test_the_target_setting_is_checked() -> None:
    from flywheel.settings import load_settings

    with pytest.raises(Exception, match="FLYWHEEL_EXPORT__TARGET"):
        load_settings(export={"target": "ftp://host/x"})
    assert Settings(data_dir=Path("d")).datasets_location.local_path() == Path("d/datasets")
    other = Settings(export={"target": "/srv/datasets"}).datasets_location
    assert other.local_path() == Path("/srv/datasets")
