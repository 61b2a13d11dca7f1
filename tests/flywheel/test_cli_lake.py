"""``flywheel lake``: commit, status and compact over real processes, on a local lake; one line
and exit 3 for a catalog URL that cannot be opened."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.lake import events, land
from warehouse.lake import Lake
from warehouse.table import LakeTable, default_catalog_uri


def test_commit_status_and_compact(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lake = Lake.in_data_dir(data)
    for index in range(3):
        land(lake, events(2, seed=index), partition=0, first=index * 2)
    land(lake, events(2, seed=9), partition=1, first=0)
    settings = env(data, COLUMNS="120")

    status = flywheel("lake", "status", env=settings)
    assert status.returncode == 0, status.stderr
    assert "the lake's table is empty" not in status.stdout  # files waiting are listed
    committed = flywheel("lake", "commit", env=settings)
    assert committed.returncode == 0, committed.stderr
    assert "committed 4 files" in committed.stdout
    assert "nothing new to commit" in flywheel("lake", "commit", env=settings).stdout

    compacted = flywheel("lake", "compact", "--expire-after-hours", "0", env=settings)
    assert compacted.returncode == 0, compacted.stderr
    assert "merged 3 files into 1" in compacted.stdout
    table = LakeTable(lake, default_catalog_uri(data))
    assert [(f.partition, f.first_offset, f.last_offset) for f in table.data_files()] == [
        (0, 0, 5), (1, 0, 1),
    ]  # fmt: skip
    after = flywheel("lake", "status", env=settings)
    assert after.returncode == 0, after.stderr
    rows = [
        line.replace("│", " ").split()
        for line in after.stdout.splitlines()
        if line.strip().startswith("t ")
    ]
    assert rows == [["t", "0", "1", "5", "0"], ["t", "1", "1", "1", "0"]]


def test_a_catalog_url_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = flywheel("lake", "commit", env=env(data, FLYWHEEL_LAKE__CATALOG="nonsense:pw"))
    assert_one_line_error(result, "FLYWHEEL_LAKE__CATALOG: not a SQLAlchemy URL", code=3)
