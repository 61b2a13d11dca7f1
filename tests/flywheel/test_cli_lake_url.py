"""FLYWHEEL_LAKE__URL as the commands read it: a command that cannot work on a lake on object
storage yet refuses an ``s3://`` URL at start, in one line naming the setting (exit 3), before it
writes anything or sends a request to the store; a local lake elsewhere than the data dir is the
one the commands use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import assert_one_line_error, env, flywheel

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
    "demo": (["demo", "--events", "10"], {}),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_lake_on_object_storage_is_refused_at_start(tmp_path: Path, command: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    args, more = COMMANDS[command]
    # Nobody listens on port 1: a request to the store would be a TransientError (exit 4).
    settings = env(data, FLYWHEEL_LAKE__URL="s3://lake-bucket/lake",
                   AWS_ENDPOINT_URL="http://127.0.0.1:1", **more)  # fmt: skip

    result = flywheel(*args, env=settings)

    assert_one_line_error(result, "FLYWHEEL_LAKE__URL=s3://lake-bucket/lake", code=3)
    assert "does not support a lake on object storage yet" in result.stderr
    assert list(data.iterdir()) == []  # no erasure logged, no warehouse, no lake


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
