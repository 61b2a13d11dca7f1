"""``open_lake``: the lake of a configuration, the one way commands build it. The data dir's
lake when FLYWHEEL_LAKE__URL is unset, the URL's otherwise; an ``s3://`` URL refused, without a
request to the store, to what needs local files; on moto, a lake that lands and reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel.settings import load_settings
from tests.factories import make_event
from tests.helpers.lake import land as land_events
from tests.helpers.lake import query
from tests.helpers.s3 import S3Bucket
from transforms.runner import run_transforms
from warehouse.lake import Lake, open_lake

REFUSED = "does not support a lake on object storage yet"


def test_unset_it_is_the_data_dirs_lake(tmp_path: Path) -> None:
    lake = open_lake(load_settings(data_dir=tmp_path / "data"), local_only="anything")
    assert lake.root == Lake.in_data_dir(tmp_path / "data").root and lake.objects is None


def test_a_local_url_is_the_lake_wherever_it_points(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", lake={"url": str(tmp_path / "there")})
    lake = open_lake(settings, local_only="anything")
    assert lake.root == tmp_path / "there" / "events"
    assert lake.local_root("anything") == lake.root


def test_an_s3_url_is_refused_to_local_work_without_asking_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nobody listens on port 1: a request would be a TransientError, not this ConfigError.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    settings = load_settings(data_dir=tmp_path, lake={"url": "s3://a-bucket/lake"})
    with pytest.raises(ConfigError) as refused:
        open_lake(settings, local_only="the transforms")
    assert str(refused.value).startswith(
        f"FLYWHEEL_LAKE__URL=s3://a-bucket/lake: the transforms {REFUSED}"
    )
    assert "\n" not in str(refused.value)


def test_on_s3_events_land_and_read_back_and_local_work_is_refused(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", lake={"url": s3_bucket.url("lake")})
    lake = open_lake(settings)
    assert lake.objects is not None
    landed = [make_event("rating", user_id=f"user-{i}") for i in range(5)]
    land_events(lake, landed, partition=0, first=0)

    again = open_lake(settings)  # another process, say: everything comes from the bucket
    [file] = list(again.files())
    assert again.landed_offsets("t") == {0: 4}
    events = again.read_table(file, ["event_id"]).column("event_id").to_pylist()
    assert events == [e["event_id"] for e in landed]
    assert all(key.startswith("lake/events/landed_date=") for key in s3_bucket.keys())

    with pytest.raises(ConfigError, match=f"FLYWHEEL_LAKE__URL={s3_bucket.url('lake')}: "):
        again.local_root("erasure")


def test_the_transforms_build_the_same_warehouse_from_an_s3_lake_as_from_a_local_one(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    """The same batches landed on a local disk and on S3: the transforms commit each lake's
    table, load it (on S3 through this host's copies) and build identical models."""
    users = [f"user-{i % 4}" for i in range(24)]
    landed = [make_event(kind, user_id=user)
              for kind in ("generation", "copy", "rating") for user in users]  # fmt: skip
    summaries = {}
    for name, url in (("local", str(tmp_path / "local-lake")), ("s3", s3_bucket.url("lake"))):
        settings = load_settings(data_dir=tmp_path / name, lake={"url": url})
        lake = open_lake(settings)
        for partition, start in enumerate(range(0, len(landed), 20)):
            land_events(lake, landed[start : start + 20], partition=partition, first=0)
        summaries[name] = run_transforms(settings.data_dir, lake=lake)
    assert summaries["local"].committed_files == summaries["s3"].committed_files == 4
    assert summaries["local"].events_loaded == summaries["s3"].events_loaded == len(landed)
    assert (tmp_path / "s3" / "lake-cache").is_dir()  # the copies DuckDB read
    counts = {}
    for table in ("events", "labels", "rewards", "preference_pairs", "lake_files"):
        columns = "* EXCLUDE (run_id, loaded_at)" if table == "lake_files" else "*"
        local, remote = (
            query(tmp_path / name, f"SELECT {columns} FROM {table} ORDER BY ALL")
            for name in ("local", "s3")
        )
        assert local == remote, table
        counts[table] = len(local)
    assert counts["events"] == len(landed) and counts["labels"] > 0 and counts["rewards"] > 0
