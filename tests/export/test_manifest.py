"""The manifest's model (``export.manifest``), its compatibility with the manifests of earlier
releases, and the commit of a version (``export.commit``).

``fixtures/manifest-1-*.json`` were written by the release before ``manifest_version`` existed:
a published version of the simulated warehouse, the version an erasure published from it, and
the version that erasure superseded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from api.main import create_app
from api.sink import MemorySink
from export.catalog import read_manifest, version_file, versions
from export.commit import commit_version, locked
from export.erasure import erase_from_datasets
from export.manifest import MANIFEST_VERSION, Manifest
from export.publish import export_dataset
from export.trace import trace_rows
from flywheel.errors import ExportError, ManifestVersionError
from flywheel.settings import Settings
from tests.factories import WRITE_KEY, api_client
from tests.helpers.cli import assert_one_line_error, flywheel
from tests.helpers.datasets import KEYRING
from warehouse.lake import Lake

FIXTURES = Path(__file__).parent / "fixtures"
OLD = sorted(FIXTURES.glob("manifest-1-*.json"))
ADMIN_KEY = "admin-key-for-manifest-tests-0123"


def old_manifest(kind: str = "published") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"manifest-1-{kind}.json").read_text())
    return data


def place(data_dir: Path, manifest: dict[str, Any], version: str = "v1") -> Path:
    """Write a manifest as ``version`` of dataset ``default``; returns the version's folder."""
    folder = data_dir / "datasets" / "default" / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return folder


@pytest.mark.parametrize("path", OLD, ids=lambda p: p.stem)
def test_a_manifest_of_an_earlier_release_reads_as_version_1_and_keeps_its_fields(
    path: Path,
) -> None:
    text = path.read_text()
    assert "manifest_version" not in text

    manifest = Manifest.from_json(text)

    assert manifest.manifest_version == MANIFEST_VERSION == 5
    # Written again, it is the same record with its version and the principles' hash (null)
    # added, field for field.
    assert json.loads(manifest.to_json()) == upgraded(json.loads(text))
    again = json.loads(manifest.to_json())
    del again["manifest_version"], again["source"]["transforms_principles_hash"]
    assert json.dumps(again, indent=2, sort_keys=True) + "\n" == text


def upgraded(data: dict[str, Any]) -> dict[str, Any]:
    """A manifest of version 1 or 2 as the current version reads it."""
    source = {**data["source"], "transforms_principles_hash": None}
    return {**data, "manifest_version": MANIFEST_VERSION, "source": source}


def test_a_manifest_of_version_2_reads_with_no_principles_hash() -> None:
    data = {**old_manifest(), "manifest_version": 2}
    manifest = Manifest.from_json(json.dumps(data))
    assert manifest.source.transforms_principles_hash is None
    assert json.loads(manifest.to_json()) == upgraded(data)


def test_a_manifest_of_version_3_reads_without_an_evaluation_and_keeps_none() -> None:
    source = {**old_manifest()["source"], "transforms_principles_hash": "ab" * 32}
    data = {**old_manifest(), "manifest_version": 3, "source": source}
    manifest = Manifest.from_json(json.dumps(data))
    assert manifest.evaluation is None
    written = json.loads(manifest.to_json())
    assert "evaluation" not in written
    assert written == {**data, "manifest_version": MANIFEST_VERSION}


def test_a_manifest_of_version_4_reads_as_not_pruned_and_keeps_no_record() -> None:
    data = {**upgraded(old_manifest()), "manifest_version": 4}
    manifest = Manifest.from_json(json.dumps(data))
    assert manifest.pruned is None
    written = json.loads(manifest.to_json())
    assert "pruned" not in written
    assert written == {**data, "manifest_version": MANIFEST_VERSION}


def test_a_pruning_record_round_trips() -> None:
    pruning = {"at": "2026-12-07T22:00:00+00:00", "keep_versions": 2, "kept": ["v4", "v5"],
               "reason": "the newest 2 keep their data"}  # fmt: skip
    manifest = Manifest.from_json(json.dumps({**upgraded(old_manifest()), "pruned": pruning}))
    assert manifest.pruned is not None and manifest.pruned.kept == ["v4", "v5"]
    assert json.loads(manifest.to_json())["pruned"] == pruning


def test_an_evaluation_round_trips_and_says_what_each_signal_adds() -> None:
    accuracy = {"name": "test", "pairs": 200, "accuracy": 0.75, "wilson_low": 0.686,
                "wilson_high": 0.804}  # fmt: skip
    without = {**accuracy, "accuracy": 0.7}
    ablation = {"signal": "edit", "train_pairs": 1200, "accuracies": [without]}
    evaluation = {"model": "bradley-terry (hashed words)", "train_pairs": 1500,
                  "accuracies": [accuracy], "ablations": [ablation]}  # fmt: skip
    data = {**upgraded(old_manifest()), "evaluation": evaluation}
    manifest = Manifest.from_json(json.dumps(data))
    assert manifest.evaluation is not None
    assert json.loads(manifest.to_json())["evaluation"] == evaluation
    [edit] = manifest.evaluation.ablations
    assert manifest.evaluation.change(edit) == -0.05
    assert manifest.evaluation.change(edit, "ab_choice") is None


def test_the_variants_of_version_1_read_and_keep_what_they_lack() -> None:
    # Older still: ids not re-keyed, every lake file listed, no count of unreadable times, the
    # schedule in the policy record.
    data = old_manifest()
    del data["lineage_ids"], data["quality"]["excluded"]
    del data["source"]["lake"]
    lake_file = {"path": "sim/0/a.parquet", "topic": "sim", "partition": 0, "first_offset": 0,
                 "last_offset": 9, "rows": 10}  # fmt: skip
    data["source"]["lake_files"] = [lake_file]
    data["policy"]["schedule"] = "0 * * * *"

    manifest = Manifest.from_json(json.dumps(data))

    assert manifest.lineage_ids is None and manifest.quality.excluded is None
    assert manifest.source.lake is None and manifest.source.lake_files is not None
    assert json.loads(manifest.to_json()) == upgraded(data)


def test_round_trip_model_json_model() -> None:
    manifest = Manifest.from_json(json.dumps(old_manifest("superseded")))
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.to_json() == manifest.to_json()
    assert json.loads(manifest.to_json())["manifest_version"] == MANIFEST_VERSION


def test_a_manifest_of_a_newer_release_is_a_clear_error(tmp_path: Path) -> None:
    place(tmp_path, {**old_manifest(), "manifest_version": 6, "a_field_of_tomorrow": 1})

    with pytest.raises(ManifestVersionError) as raised:
        read_manifest(tmp_path, "default", "v1")

    assert str(raised.value) == (
        "version v1 of dataset 'default' has manifest_version 6, newer than this release reads "
        "(5): upgrade feedback-flywheel to read it"
    )


def test_the_cli_exits_7_with_one_red_line_on_a_newer_manifest(tmp_path: Path) -> None:
    place(tmp_path, {**old_manifest(), "manifest_version": 6})

    result = flywheel("export", "list", env={"FLYWHEEL_DATA_DIR": str(tmp_path)})

    assert_one_line_error(result, "has manifest_version 6, newer than this release", code=7)


@pytest.mark.anyio
async def test_the_api_lists_a_newer_manifest_as_damaged_and_answers_500(tmp_path: Path) -> None:
    place(tmp_path, {**old_manifest(), "manifest_version": 6})
    settings = Settings(
        data_dir=tmp_path, api={"write_keys": [WRITE_KEY], "admin_keys": [ADMIN_KEY]}
    )
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    async with api_client(create_app(settings, MemorySink())) as client:
        listing = await client.get("/v1/datasets", headers=admin)
        manifest = await client.get("/v1/datasets/default/versions/v1", headers=admin)

    assert listing.json()["datasets"][0]["damaged"] == ["v1"]
    assert manifest.status_code == 500
    assert "manifest_version 6" in manifest.json()["message"]
    assert str(tmp_path) not in manifest.text


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"manifest_version": 0}, "is not a version"),
        ({"manifest_version": "2"}, "is not a version"),
        ({"a_field_nobody_wrote": 1}, "a_field_nobody_wrote: Extra inputs are not permitted"),
        ({"counts": {"dpo": {"rows": "many"}}}, "counts.dpo.rows"),
    ],
)
def test_a_manifest_that_is_not_one_is_damaged(
    tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    place(tmp_path, {**old_manifest(), **change})
    with pytest.raises(
        ExportError, match="the manifest of version v1 of dataset 'default' is"
    ) as e:
        read_manifest(tmp_path, "default", "v1")
    assert reason in str(e.value) and not isinstance(e.value, ManifestVersionError)


def attempt_with_a_file(folder: Path, name: str) -> Path:
    attempt = folder / f".attempt-{name}"
    (attempt / "data" / "dpo").mkdir(parents=True)
    (attempt / "data" / "dpo" / "train-00000-of-00001.parquet").write_bytes(name.encode())
    return attempt


def test_commit_numbers_writes_and_renames_and_a_failure_leaves_no_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "datasets" / "default"
    draft = Manifest.from_json(json.dumps(old_manifest()))
    with locked(folder):
        first = commit_version(folder, attempt_with_a_file(folder, "one"), draft)

        def power_cut(temporary: Path, final: Path) -> None:
            raise OSError("the rename never happened")

        monkeypatch.setattr(Lake, "publish", staticmethod(power_cut))
        failed = attempt_with_a_file(folder, "two")
        with pytest.raises(OSError, match="never happened"):
            commit_version(folder, failed, draft)
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["v1"]
        shutil.rmtree(failed)  # as the exporter does with a failed attempt
        monkeypatch.undo()
        second = commit_version(folder, attempt_with_a_file(folder, "three"), draft)

    assert (first.version, first.previous_version) == ("v1", None)
    assert (second.version, second.previous_version) == ("v2", "v1")
    assert versions(tmp_path, "default") == ["v1", "v2"]
    assert read_manifest(tmp_path, "default", "v2") == second
    on_disk = json.loads((folder / "v2" / "manifest.json").read_text())
    assert on_disk["manifest_version"] == MANIFEST_VERSION
    assert [f["path"] for f in on_disk["files"]] == [
        "README.md", "data/dpo/train-00000-of-00001.parquet",
    ]  # fmt: skip
    assert (folder / "v2" / "README.md").read_text().startswith('---\npretty_name: "default v2"')
    assert not list(folder.glob(".attempt-*"))


def test_an_export_that_fails_before_the_rename_publishes_nothing_and_the_next_takes_v1(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(root: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("export.commit.sync_tree", full_disk)
    with pytest.raises(OSError, match="No space left"):
        export_dataset(data_dir, "default", KEYRING)
    folder = data_dir / "datasets" / "default"
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]

    monkeypatch.undo()
    result = export_dataset(data_dir, "default", KEYRING)

    assert result.version == "v1" and versions(data_dir, "default") == ["v1"]


def test_a_version_published_by_an_earlier_release_still_reads_traces_and_is_erased(
    data_dir: Path,
) -> None:
    # The files of a version as the earlier release published them (the data files and card
    # are the same bytes; its manifest is the fixture, named for these very data files).
    fresh = export_dataset(data_dir, "default", KEYRING)
    assert fresh.path is not None
    old = old_manifest()
    old["fingerprint"] = fresh.manifest.fingerprint.model_dump()
    old["policy_hash"] = fresh.manifest.policy_hash
    old["files"] = [f.model_dump(exclude_none=True) for f in fresh.manifest.files]
    (fresh.path / "manifest.json").write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")

    manifest = read_manifest(data_dir, "default", "v1")
    assert manifest.manifest_version == MANIFEST_VERSION and manifest.lineage_ids == "rekeyed"
    train = version_file(data_dir, "default", "v1", "data/dpo/train-00000-of-00001.parquet")
    ids = pl.read_parquet(train)["id"].head(3).to_list()
    traced_version, traced = trace_rows(data_dir, "default", ids, KEYRING)
    assert traced_version == "v1" and all(row.found for row in traced)
    # Nothing new against the old manifest: the same files under the same policy.
    assert not export_dataset(data_dir, "default", KEYRING).published

    user = pl.read_parquet(train)["user"][0]
    rows = pl.read_parquet(train).filter(pl.col("user") == user)
    holder = _warehouse_pseudonym(data_dir, rows["id"][0])
    [erased] = erase_from_datasets(data_dir, [holder], KEYRING, request_id="req-compat")

    assert erased.superseded == ["v1"] and erased.published == "v2"
    for version in ("v1", "v2"):
        text = (data_dir / "datasets" / "default" / version / "manifest.json").read_text()
        assert json.loads(text)["manifest_version"] == MANIFEST_VERSION  # rewritten as current
        assert Manifest.from_json(text).to_json() == text
    v1, v2 = read_manifest(data_dir, "default", "v1"), read_manifest(data_dir, "default", "v2")
    assert v1.superseded_by == "v2" and v1.superseded is not None
    assert v1.created_at == old["created_at"] and v1.lineage_ids == "rekeyed"
    assert v2.erasure is not None and v2.erasure.replaces == "v1"
    assert v2.previous_version == "v1" and v2.erasure.rows_removed >= rows.height
    assert {f.path for f in v2.files} >= set(v2.fingerprint.files)


def _warehouse_pseudonym(data_dir: Path, row_id: str) -> str:
    """The warehouse pseudonym of the user behind a dataset row (through ``trace``)."""
    import duckdb

    [traced] = trace_rows(data_dir, "default", [row_id], KEYRING)[1]
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        found = db.execute(
            "SELECT user_pseudonym FROM events WHERE event_id = ?", [traced.event_ids[0]]
        ).fetchone()
    assert found is not None
    return str(found[0])


def test_a_published_manifest_is_the_current_version_and_round_trips(data_dir: Path) -> None:
    result = export_dataset(data_dir, "default", KEYRING)
    assert result.path is not None
    text = (result.path / "manifest.json").read_text()
    assert json.loads(text)["manifest_version"] == MANIFEST_VERSION
    assert Manifest.from_json(text) == result.manifest
    assert Manifest.from_json(text).to_json() == text
