"""FLYWHEEL_LAKE__URL as the commands read it: on object storage, a command stops at start
with one line when the store cannot be reached (exit 4, try again) or the bucket is missing
(exit 3), before it writes anything; the demo, which makes its own lake, refuses one there; a
local lake elsewhere than the data dir is the one the commands use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.s3 import S3Bucket

WRITE_KEYS = '["a-long-random-key-1234"]'
NO_BROKER = "127.0.0.1:1"

COMMANDS = {
    "ingest": (["ingest"], {"FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": NO_BROKER}),
    "serve (embedded)": (["serve"], {"FLYWHEEL_API__WRITE_KEYS": WRITE_KEYS}),
    "serve (Kafka)": (
        ["serve"],
        {"FLYWHEEL_API__WRITE_KEYS": WRITE_KEYS, "FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": NO_BROKER},
    ),
    "transform run": (["transform", "run"], {}),
    "export run": (["export", "run"], {}),
    "erase": (["erase", "--user", "u-1"], {}),
    "schedule": (["schedule", "--once"], {}),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unreachable_store_stops_a_command_at_start(tmp_path: Path, command: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    args, more = COMMANDS[command]
    # Nobody listens on port 1.
    settings = env(data, FLYWHEEL_LAKE__URL="s3://lake-bucket/lake",
                   AWS_ENDPOINT_URL="http://127.0.0.1:1", AWS_ACCESS_KEY_ID="a",
                   AWS_SECRET_ACCESS_KEY="b", **more)  # fmt: skip

    result = flywheel(*args, env=settings)

    assert_one_line_error(result, "could not reach the S3 endpoint http://127.0.0.1:1", code=4)
    assert list(data.iterdir()) == []  # no erasure logged, no warehouse, no spool


@pytest.mark.parametrize("command", ["transform run", "erase", "ingest"])
def test_a_missing_bucket_stops_a_command_at_start(
    tmp_path: Path, s3_bucket: S3Bucket, command: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    args, more = COMMANDS[command]
    url = f"s3://{s3_bucket.name}-missing/lake"

    result = flywheel(*args, env=env(data, FLYWHEEL_LAKE__URL=url, **more))

    assert_one_line_error(result, f"{s3_bucket.name}-missing", code=3)
    assert list(data.iterdir()) == []


def test_the_demo_refuses_a_lake_on_object_storage(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    settings = env(data, FLYWHEEL_LAKE__URL="s3://lake-bucket/lake",
                   AWS_ENDPOINT_URL="http://127.0.0.1:1")  # fmt: skip

    result = flywheel("demo", "--events", "10", env=settings)

    assert_one_line_error(result, "FLYWHEEL_LAKE__URL=s3://lake-bucket/lake", code=3)
    assert "does not support a lake on object storage" in result.stderr
    assert list(data.iterdir()) == []


@pytest.mark.slow
def test_the_demo_lands_transforms_and_exports_a_local_lake_elsewhere(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    settings = {"FLYWHEEL_DATA_DIR": str(data), "FLYWHEEL_LAKE__URL": str(elsewhere)}

    result = flywheel("demo", "--events", "2000", env=settings)

    assert result.returncode == 0, result.stderr
    landed = list((elsewhere / "events").glob("landed_date=*/*.parquet"))
    assert landed and (elsewhere / "embedded.lock").is_file()
    assert not (data / "lake" / "events").exists()
    assert f"transform run: {len(landed)} new lake files" in result.stdout
    assert "dataset default v1 published" in result.stdout

    fresh = flywheel("demo", "--events", "10", "--fresh", env=settings)
    assert_one_line_error(fresh, "--fresh removes the data dir's lake", code=3)
    assert landed == list((elsewhere / "events").glob("landed_date=*/*.parquet"))
