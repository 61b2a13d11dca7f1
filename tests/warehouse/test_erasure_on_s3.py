"""Erasure with the lake on S3 (moto): ``flywheel erase`` rewrites every object holding the
user, committed to the lake's table or not, and the table's metadata, old snapshots included,
never held their values; proven by reading every object under the lake's prefix."""

from __future__ import annotations

from pathlib import Path

from pyarrow import fs

from flywheel.settings import Settings
from flywheel.shell.erasure import erase_users
from flywheel.storage import s3_filesystem
from tests.factories import generation, make_event
from tests.helpers.datasets import KEYRING
from tests.helpers.lake import land
from tests.helpers.objects import decoded_objects
from tests.helpers.s3 import S3Bucket
from transforms.runner import run_transforms
from warehouse.lake import open_lake
from warehouse.table import LakeTable

SECRET = "the victim's own words 7f3a"
"""A text only the erased user wrote."""


def traffic(user: str, index: int) -> list[dict[str, object]]:
    text = SECRET if user == "victim" else f"an answer for {user}"
    response = f"r-{user}-{index}"
    return [
        generation(response, parent=f"m-{user}-{index}", text=text, user_id=user,
                   conversation_id=f"c-{user}-{index}"),
        make_event("rating", response_id=response, user_id=user,
                   conversation_id=f"c-{user}-{index}"),
    ]  # fmt: skip


def test_erasure_removes_the_user_from_every_object_of_the_lake_on_s3(
    tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    settings = Settings(data_dir=tmp_path / "data", lake={"url": s3_bucket.url("lake")})
    lake = open_lake(settings)
    # Three committed files and, landed after the commit, one the table does not hold yet.
    for partition, users in enumerate((["victim", "alice"], ["bob"], ["victim", "carol"])):
        land(lake, [e for i, u in enumerate(users) for e in traffic(u, i)], partition=partition)
    run_transforms(settings.data_dir, lake=lake, table=LakeTable.of(settings, lake))
    land(lake, traffic("victim", 9) + traffic("dave", 9), partition=0, first=4)
    victim = KEYRING.pseudonym("victim")
    root = s3_bucket.name + "/lake"

    before = decoded_objects(s3_filesystem(), root)
    holding = {path for path, text in before.items() if victim in text or SECRET in text}
    assert len(holding) == 3  # both committed files of the victim and the one not committed
    assert any("/metadata/" in path for path in before)  # the table's own objects are read too

    erased = erase_users(settings, ["victim"], KEYRING)

    assert erased.lake_events_removed == 6
    after = decoded_objects(s3_filesystem(), root)
    # A column bound in a manifest would be cut to 16 characters, an upper bound's last one
    # raised by one: their first 15 are looked for too.
    traces = (victim[:15], SECRET[:15])
    assert not [path for path, text in after.items() if any(t in text for t in traces)]
    others = "".join(after.values())
    assert all(KEYRING.pseudonym(user) in others for user in ("alice", "bob", "carol", "dave"))
    # The table reads the rewritten files with their new counts; this host's copies went too.
    table = LakeTable.of(settings, lake)
    scanned = table.table().scan().to_arrow()
    assert victim not in scanned.column("user_pseudonym").to_pylist()
    assert scanned.num_rows == 6
    local = decoded_objects(fs.LocalFileSystem(), str(tmp_path / "data" / "lake-cache"))
    assert local and not [path for path, text in local.items() if victim in text]
    # And the next transform run commits the rewritten pending file without the user.
    run_transforms(settings.data_dir, lake=lake, table=table)
    assert table.table().scan().to_arrow().num_rows == 8
