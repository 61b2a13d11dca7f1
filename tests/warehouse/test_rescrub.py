"""Rescrub with the lake on S3 (moto): objects landed unscrubbed are uploaded again scrubbed,
committed to the lake's table or not, and the table reads them with their new sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyarrow import fs

from flywheel.settings import Settings
from flywheel.shell.rescrub import rescrub_lake
from flywheel.storage import s3_filesystem
from tests.factories import generation
from tests.helpers.datasets import KEYRING
from tests.helpers.lake import land
from tests.helpers.objects import decoded_objects
from tests.helpers.s3 import S3Bucket
from transforms.runner import run_transforms
from warehouse.lake import open_lake
from warehouse.table import LakeTable

EMAIL = "jane.roe.7f3a@example.org"
"""A value the landing missed (the helper's pipeline scrubs nothing)."""


@pytest.mark.slow
def test_rescrub_rewrites_the_objects_holding_a_missed_value_on_s3(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    settings = Settings(data_dir=tmp_path / "data", lake={"url": s3_bucket.url("lake")})
    lake = open_lake(settings)
    # Two committed files (one clean), and one landed after the commit.
    land(lake, [generation("r-1", text=f"mail {EMAIL} please")], partition=0)
    land(lake, [generation("r-2", text="nothing to hide")], partition=1)
    run_transforms(settings.data_dir, lake=lake, table=LakeTable.of(settings, lake))
    land(lake, [generation("r-3", text=f"or {EMAIL}")], partition=0, first=1)
    root = s3_bucket.name + "/lake"
    before = decoded_objects(s3_filesystem(), root)
    assert len([path for path, text in before.items() if EMAIL in text]) == 2
    clean = {path: text for path, text in before.items()
             if "/metadata/" not in path and EMAIL not in text}  # fmt: skip

    record = rescrub_lake(settings, KEYRING)

    assert record.values == {"email": 2} and len(record.files) == 2
    after = decoded_objects(s3_filesystem(), root)
    assert not [path for path, text in after.items() if EMAIL[:15] in text]
    assert all(after[path] == text for path, text in clean.items())  # left alone
    local = decoded_objects(fs.LocalFileSystem(), str(tmp_path / "data" / "lake-cache"))
    assert not [path for path, text in local.items() if EMAIL in text]
    table = LakeTable.of(settings, lake)
    responses = table.table().scan().to_arrow().column("response").to_pylist()
    assert sorted(responses) == ["mail <EMAIL> please", "nothing to hide"]
    assert rescrub_lake(settings, KEYRING).files == []  # a second run finds nothing
