"""FLYWHEEL_LAKE__URL: a local path or s3://bucket/prefix, one clear error for anything else,
and one clear line at start for a bucket that is missing or an endpoint nobody answers on."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError, TransientError
from flywheel.net import free_port
from flywheel.settings import load_settings
from flywheel.storage import LakeLocation, ObjectStorage, open_storage, parse_lake_url
from tests.helpers.s3 import S3Bucket


def test_the_default_lake_is_the_folder_under_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", "somewhere")
    location = load_settings().lake_location
    assert location.is_local and location.local_path() == Path("somewhere/lake")


@pytest.mark.parametrize(
    ("url", "bucket", "prefix", "local"),
    [
        ("/srv/lake", None, "", "/srv/lake"),
        ("relative/lake", None, "", "relative/lake"),
        ("file:///srv/lake", None, "", "/srv/lake"),
        ("s3://flywheel-lake", "flywheel-lake", "", None),
        ("s3://flywheel-lake/", "flywheel-lake", "", None),
        ("s3://flywheel.lake/prod/v1/", "flywheel.lake", "prod/v1", None),
    ],
)
def test_a_lake_url_is_a_local_path_or_a_bucket_and_prefix(
    url: str, bucket: str | None, prefix: str, local: str | None
) -> None:
    location = parse_lake_url(url)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    if local is not None:
        assert location.local_path() == Path(local)
    else:
        assert location.url == f"s3://{bucket}" + (f"/{prefix}" if prefix else "")


def test_a_child_location_keeps_the_store() -> None:
    assert parse_lake_url("s3://b-1/lake").child("events").url == "s3://b-1/lake/events"
    assert parse_lake_url("s3://b-1").child("events") == LakeLocation(
        "s3://b-1/events", "b-1", "events"
    )
    assert parse_lake_url("/srv/lake").child("events").local_path() == Path("/srv/lake/events")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("gs://bucket/lake", "not a gs:// URL"),
        ("https://s3.example.com/bucket", "not a https:// URL"),
        ("s3://", "is not an S3 bucket name"),
        ("s3://Upper/lake", "is not an S3 bucket name"),
        ("s3://a/lake", "is not an S3 bucket name"),
        ("s3://bucket/a//b", "empty, '.' or '..' segment"),
        ("s3://bucket/a/../b", "empty, '.' or '..' segment"),
        ("s3://key:secret@bucket/lake", "without credentials"),
        ("s3://bucket:9000/lake", "without credentials, port"),
        ("s3://bucket/lake?versionId=1", "query"),
        ("file://host/lake", "file:///absolute/path"),
    ],
)
def test_a_malformed_lake_url_is_one_config_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, url: str, reason: str
) -> None:
    monkeypatch.setenv("FLYWHEEL_LAKE__URL", url)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid settings: FLYWHEEL_LAKE__URL: ")
    assert reason in message and "\n" not in message
    assert "secret" not in message  # the URL's credentials are not repeated


def test_an_unreachable_endpoint_is_one_transient_line_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unused-access-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unused-secret-key")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(TransientError) as caught:
        open_storage(parse_lake_url("s3://flywheel-lake/lake"))
    message = str(caught.value)
    assert message.startswith(
        f"s3://flywheel-lake/lake: could not reach the S3 endpoint {endpoint}"
    )
    assert "\n" not in message and "unused-secret-key" not in message


def test_a_malformed_endpoint_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "127.0.0.1:9000")
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL must be http"):
        open_storage(parse_lake_url("s3://flywheel-lake/lake"))


def test_a_missing_bucket_is_one_config_line_at_start(s3_bucket: S3Bucket) -> None:
    with pytest.raises(ConfigError) as caught:
        open_storage(parse_lake_url(f"s3://{s3_bucket.name}-missing/lake"))
    assert str(caught.value) == (
        f"the bucket {s3_bucket.name}-missing does not exist "
        f"(FLYWHEEL_LAKE__URL=s3://{s3_bucket.name}-missing/lake); create it first"
    )


def test_local_and_object_storage_write_list_and_read_alike(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    local = open_storage(LakeLocation(str(tmp_path / "lake")))
    remote = open_storage(parse_lake_url(s3_bucket.url("lake")))
    assert isinstance(remote, ObjectStorage)
    for storage in (local, remote):
        assert list(storage.list_files()) == []
        assert storage.read_bytes("a/b.bin") is None
        storage.write_once("a/b.bin", b"one")
        storage.write_once("a/c/d.bin", b"three")
        storage.write_once("a/b.bin", b"two")
    assert sorted(local.list_files()) == sorted(remote.list_files())
    assert {f.key for f in remote.list_files("a/c")} == {"a/c/d.bin"}
    assert local.read_bytes("a/b.bin") == remote.read_bytes("a/b.bin") == b"two"
    assert s3_bucket.keys() == [
        "lake/a/b.bin",
        "lake/a/c/d.bin",
    ]  # no folder markers, no temporaries
    assert sorted(p.name for p in (tmp_path / "lake" / "a").iterdir()) == ["b.bin", "c"]
