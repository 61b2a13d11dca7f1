"""What the console's datasets pages read: the difference of two versions kept on disk, by the
console and by the export that published the newer version (export.differences)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import export.differences as datasets
from export.differences import DIFF_CACHE


def test_the_export_of_v2_kept_its_changes_for_the_console(
    console_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from export.catalog import open_catalog
    from flywheel.settings import Settings

    catalog = open_catalog(Settings(data_dir=console_data), check=False)
    # v2 against v1, changed rows counted: the file the export wrote (other tests' pages may
    # have kept more differences beside it).
    key = datasets._cache_key(catalog.read_manifest("default", "v1"),
                              catalog.read_manifest("default", "v2"), changes=True)  # fmt: skip
    assert (console_data / DIFF_CACHE / f"{key}.json").is_file()

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the versions' files were read again")

    monkeypatch.setattr(datasets, "_compare", no_reading)
    found = datasets.diff(catalog, "default", "v1", "v2", changes=True,
                          cache=console_data / DIFF_CACHE)  # fmt: skip
    assert found.by_rows and found.changes


def test_a_difference_is_kept_on_disk_and_read_back(
    console_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from export.catalog import open_catalog
    from flywheel.settings import Settings

    catalog = open_catalog(Settings(data_dir=console_data), check=False)
    cache = tmp_path / "differences"
    computed = datasets.diff(catalog, "default", "v1", "v2", changes=True, cache=cache)
    by_id = datasets.diff(catalog, "default", "v1", "v2", cache=cache)
    assert computed.by_rows and computed.changes
    assert len(list(cache.glob("*.json"))) == 2  # with and without the changed rows
    assert not list(cache.glob(".*"))  # no temporary file left

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the versions' files were read again")

    monkeypatch.setattr(datasets, "_compare", no_reading)
    assert datasets.diff(catalog, "default", "v1", "v2", changes=True, cache=cache) == computed
    assert datasets.diff(catalog, "default", "v1", "v2", cache=cache) == by_id
    monkeypatch.undo()

    # An unreadable file is computed again and written over; a folder that cannot be written
    # only costs the computation.
    for path in cache.glob("*.json"):
        path.write_text("{not json")
    assert datasets.diff(catalog, "default", "v1", "v2", changes=True, cache=cache) == computed
    assert sum(path.read_text() != "{not json" for path in cache.glob("*.json")) == 1
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert datasets.diff(catalog, "default", "v1", "v2", changes=True, cache=blocked) == computed
