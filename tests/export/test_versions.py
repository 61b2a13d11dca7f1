"""Using published versions: the ``latest`` alias (on disk, in the API, in the CLI), ``flywheel
export list --json``, ``flywheel export diff`` against a count of the versions' own files, and
what a reader key may do over real HTTP."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from api.server import running_api
from api.sink import MemorySink
from export.catalog import LATEST_FILE, Catalog
from export.manifest import Accuracy, Evaluation
from export.policy import DatasetPolicy, DatasetsFile
from export.publish import export_dataset
from flywheel.settings import Settings
from flywheel.shell.erasure import erase_users
from tests.factories import WRITE_KEY
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import ADMIN_KEY, KEYRING
from tests.helpers.erasure import heavy_users, settings_for

# The versions are published from a copy of the simulated warehouse (5 to 25 s an export).
pytestmark = pytest.mark.slow

READER_KEY = "reader-key-for-tests-0123456789"
READER = {"Authorization": f"Bearer {READER_KEY}"}
NO_RATING = ["ab_choice", "edit", "regenerate", "copy", "continued"]


def measured(files: Mapping[str, Sequence[Path]], *, ablations: bool) -> Evaluation:
    """An evaluator that records the share of train rows among all (no fit: the test reads
    the number back through the manifest, wherever it came from)."""
    rows = {split: sum(pl.read_parquet(p).height for p in paths) for split, paths in files.items()}
    share = rows["train"] / sum(rows.values())
    return Evaluation(
        model="share of train rows",
        train_pairs=rows["train"],
        accuracies=[
            Accuracy(
                name="test",
                pairs=rows["test"],
                accuracy=round(share, 6),
                wilson_low=None,
                wilson_high=None,
            )
        ],  # fmt: skip
        ablations=[],
    )


def policy(**keys: Any) -> DatasetsFile:
    return DatasetsFile(datasets={"default": DatasetPolicy(evaluate="accuracy", **keys)})


@pytest.fixture(scope="module")
def two_versions(simulated: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1: rows of confidence 0.5 or more; v2: down to 0.2, but none carried by a rating alone
    (so rows are both added and removed)."""
    source, _ = simulated
    data_dir = tmp_path_factory.mktemp("versions") / "data"
    shutil.copytree(source, data_dir, ignore=shutil.ignore_patterns("lake-catalog.db"))
    shutil.copy(source.parent / "keys.json", data_dir.parent / "keys.json")
    first = export_dataset(
        data_dir, "default", KEYRING, datasets=policy(min_confidence=0.5), evaluator=measured
    )
    second = export_dataset(data_dir, "default", KEYRING, datasets=policy(signals=NO_RATING))
    assert (first.version, second.version) == ("v1", "v2")
    return data_dir


def folder(data_dir: Path) -> Path:
    return data_dir / "datasets" / "default"


def rows_of(version_dir: Path) -> dict[tuple[str, str], pl.DataFrame]:
    """Every config's split of a version, read from its Parquet files."""
    found = {}
    for path in sorted((version_dir / "data").glob("*/*.parquet")):
        config, split = path.parent.name, path.name.split("-", 1)[0]
        frame = pl.read_parquet(path, columns=["id", "signals", "confidence"])
        found[config, split] = pl.concat([found[config, split], frame]) if (
            config, split) in found else frame  # fmt: skip
    return found


def test_latest_names_the_newest_version_on_disk(two_versions: Path) -> None:
    assert (folder(two_versions) / LATEST_FILE).read_text() == "v2\n"
    catalog = Catalog.in_data_dir(two_versions)
    assert catalog.resolve("default", "latest") == "v2"
    assert catalog.read_manifest("default", "latest").version == "v2"
    assert all("/v2/" in f for s in catalog.data_files("default", "latest")["dpo"].values()
               for f in s)  # fmt: skip


def test_diff_counts_match_the_versions_files(two_versions: Path) -> None:
    result = flywheel("export", "diff", "default", "v1", "latest", "--json",
                      env=env(two_versions))  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["a"], found["b"], found["by_rows"]) == ("v1", "v2", True)

    old, new = rows_of(folder(two_versions) / "v1"), rows_of(folder(two_versions) / "v2")
    splits = {(s["config"], s["split"]): s for s in found["splits"]}
    assert set(splits) == set(old) | set(new)
    added_by: dict[str, Counter[str]] = {}
    removed_by: dict[str, Counter[str]] = {}
    for key, item in splits.items():
        ids_a = set(old[key]["id"]) if key in old else set()
        ids_b = set(new[key]["id"]) if key in new else set()
        assert (item["rows_a"], item["rows_b"]) == (len(ids_a), len(ids_b))
        assert (item["added"], item["removed"]) == (len(ids_b - ids_a), len(ids_a - ids_b))
        for frame, ids, into in ((new, ids_b - ids_a, added_by), (old, ids_a - ids_b, removed_by)):
            rows = frame[key].filter(pl.col("id").is_in(list(ids))) if key in frame else None
            counter = into.setdefault(key[0], Counter())
            for signals in [] if rows is None else rows["signals"].to_list():
                counter.update(set(signals))
    assert sum(i["added"] for i in found["splits"]) > 0
    assert sum(i["removed"] for i in found["splits"]) > 0

    configs = {c["config"]: c for c in found["configs"]}
    assert set(configs) == {"dpo", "kto", "reward"}
    for config, shift in configs.items():
        assert shift["signals_added"] == dict(added_by[config])
        assert shift["signals_removed"] == dict(removed_by[config])
        for side, frames in (("confidence_a", old), ("confidence_b", new)):
            every = pl.concat([f for (c, _), f in frames.items() if c == config])
            assert shift[side] == pytest.approx(every["confidence"].mean())
    assert configs["dpo"]["confidence_a"] > configs["dpo"]["confidence_b"]
    assert "rating" in configs["dpo"]["signals_removed"]


def test_diff_prints_a_table(two_versions: Path) -> None:
    result = flywheel("export", "diff", "default", "v1", "v2", env=env(two_versions))
    assert result.returncode == 0, result.stderr
    assert "default: v1 -> v2" in result.stdout and "signals of added rows" in result.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("default", "v1", "v9"), "dataset 'default' has no version 'v9'"),
        (("default", "v0", "latest"), "dataset 'default' has no version 'v0'"),
        (("nosuch", "v1", "latest"), "dataset 'nosuch' has no published version"),
        (("default", "v1", "newest"), "dataset 'default' has no version 'newest'"),
    ],
)
def test_diff_of_versions_that_do_not_exist(
    two_versions: Path, args: tuple[str, ...], fragment: str
) -> None:
    result = flywheel("export", "diff", *args, env=env(two_versions))
    assert_one_line_error(result, fragment, code=6)
    assert result.stdout == ""


def test_list_json_has_every_fact_of_the_manifests(two_versions: Path) -> None:
    result = flywheel("export", "list", "--json", env=env(two_versions))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["dataset"], x["version"]) for x in lines] == [("default", "v1"), ("default", "v2")]
    for line in lines:
        manifest = json.loads(
            (folder(two_versions) / line["version"] / "manifest.json").read_text()
        )
        assert line["created_at"] == manifest["created_at"]
        assert line["rows"] == {c: n["rows"] for c, n in manifest["counts"].items()}
        assert line["splits"] == {
            c: {s: x["rows"] for s, x in n["splits"].items()} for c, n in manifest["counts"].items()
        }
        fingerprint = json.dumps(manifest["fingerprint"], sort_keys=True, separators=(",", ":"))
        assert line["digest"] == hashlib.sha256(fingerprint.encode()).hexdigest()
        assert line["quality"] == "passed" and line["superseded"] is False
        assert line["superseded_by"] is None and line["policy_hash"] == manifest["policy_hash"]
    v1, v2 = lines
    recorded = json.loads((folder(two_versions) / "v1" / "manifest.json").read_text())
    [test] = [a for a in recorded["evaluation"]["accuracies"] if a["name"] == "test"]
    assert v1["test_accuracy"] == test["accuracy"] is not None
    assert v2["test_accuracy"] is None
    assert (v1["latest"], v2["latest"]) == (False, True)

    table = flywheel("export", "list", env={**env(two_versions), "COLUMNS": "100"})
    assert table.returncode == 0, table.stderr
    assert "v2 (latest)" in table.stdout
    narrow = flywheel("export", "list", env={**env(two_versions), "COLUMNS": "50"})
    assert v1["created_at"] in narrow.stdout and v2["created_at"] in narrow.stdout


def test_trace_takes_latest(two_versions: Path) -> None:
    [some_id] = pl.read_parquet(next((folder(two_versions) / "v2" / "data" / "dpo").glob(
        "train-*.parquet")), columns=["id"])["id"].head(1).to_list()  # fmt: skip
    result = flywheel("export", "trace", "--version", "latest", "--json", some_id,
                      env=env(two_versions))  # fmt: skip
    assert result.returncode == 0, result.stderr
    traced = json.loads(result.stdout)
    assert traced["version"] == "v2" and traced["table"] is not None


def reader_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        api={"write_keys": [WRITE_KEY], "reader_keys": [READER_KEY], "admin_keys": [ADMIN_KEY]},
    )


def test_a_reader_key_reads_latest_over_http(two_versions: Path) -> None:
    with (
        running_api(reader_settings(two_versions), MemorySink()) as url,
        httpx.Client(base_url=url, headers=READER) as client,
    ):
        listing = client.get("/v1/datasets")
        manifest = client.get("/v1/datasets/default/versions/latest")
        by_name = client.get("/v1/datasets/default/versions/v1")
        entry = next(e for e in manifest.json()["files"] if e["path"].startswith("data/dpo/"))
        download = client.get(f"/v1/datasets/default/versions/latest/files/{entry['path']}")
        card = client.get("/v1/datasets/default/versions/latest/files/README.md")
        missing = client.get("/v1/datasets/nosuch/versions/latest")
        bad = client.get("/v1/datasets/default/versions/newest")
    assert listing.status_code == 200, listing.text
    [dataset] = listing.json()["datasets"]
    assert dataset["latest"] == "v2" and [v["version"] for v in dataset["versions"]] == ["v1", "v2"]
    assert manifest.status_code == 200 and manifest.json()["version"] == "v2"
    assert by_name.status_code == 200 and by_name.json()["version"] == "v1"
    assert download.status_code == 200 and download.headers["x-dataset-version"] == "v2"
    assert hashlib.sha256(download.content).hexdigest() == entry["sha256"]
    assert card.status_code == 200 and card.text.startswith("---\n")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/privacy/erasure", {"user_ids": ["someone"]}),
        ("GET", "/v1/privacy/erasure/00000000-0000-0000-0000-000000000000", None),
        ("GET", "/v1/review/queues", None),
        ("POST", "/v1/review/queues", {"name": "q", "kind": "pairs"}),
        ("GET", "/v1/review/calibration", None),
        ("GET", "/v1/review/policy-suggestion", None),
        ("POST", "/v1/events", {}),
    ],
)
def test_a_reader_key_is_refused_elsewhere_over_http(
    two_versions: Path, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with (
        running_api(reader_settings(two_versions), MemorySink()) as url,
        httpx.Client(base_url=url, headers=READER) as client,
    ):
        response = client.request(method, path, json=body)
    assert response.status_code == 403, response.text
    refusal = response.json()
    assert refusal["error"] == "forbidden" and "key" in refusal["message"]


@pytest.fixture
def erased(two_versions: Path, tmp_path: Path) -> Path:
    """A copy of the two versions after an erasure of the heaviest users: v3 replaces v2."""
    data_dir = tmp_path / "data"
    shutil.copytree(two_versions, data_dir, ignore=shutil.ignore_patterns("lake-catalog.db"))
    shutil.copy(two_versions.parent / "keys.json", tmp_path / "keys.json")
    record = erase_users(settings_for(data_dir), heavy_users(), KEYRING)
    [done] = record.datasets
    assert done["published"] == "v3" and "v2" in done["superseded"]
    return data_dir


def test_latest_follows_an_erasure(erased: Path) -> None:
    assert (folder(erased) / LATEST_FILE).read_text() == "v3\n"
    listed = flywheel("export", "list", "--json", env=env(erased))
    assert listed.returncode == 0, listed.stderr
    lines = {x["version"]: x for x in map(json.loads, listed.stdout.splitlines())}
    assert lines["v2"]["superseded"] is True and lines["v2"]["superseded_by"] == "v3"
    assert [v for v, x in lines.items() if x["latest"]] == ["v3"]
    assert lines["v3"]["erasure_of"] == "v2"
    with (
        running_api(reader_settings(erased), MemorySink()) as url,
        httpx.Client(base_url=url, headers=READER) as client,
    ):
        manifest = client.get("/v1/datasets/default/versions/latest")
        listing = client.get("/v1/datasets")
    assert manifest.json()["version"] == "v3" and manifest.json()["superseded_by"] is None
    assert listing.json()["datasets"][0]["latest"] == "v3"


def test_no_current_version_once_the_newest_is_withdrawn(erased: Path) -> None:
    """An erasure whose replacement failed its gate withdraws the newest version and removes
    the pointer: ``latest`` names nothing, although older versions are published."""
    v3 = folder(erased) / "v3" / "manifest.json"
    manifest = json.loads(v3.read_text())
    v3.write_text(json.dumps({**manifest, "superseded_by": "withdrawn"}))
    (folder(erased) / LATEST_FILE).unlink()
    result = flywheel("export", "diff", "default", "v1", "latest", env=env(erased))
    assert_one_line_error(result, "dataset 'default' has no current version", code=6)
    listed = flywheel("export", "list", "--json", env=env(erased))
    assert not any(json.loads(line)["latest"] for line in listed.stdout.splitlines())


def test_an_export_with_nothing_new_sets_a_missing_pointer(
    two_versions: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(two_versions, data_dir, ignore=shutil.ignore_patterns("lake-catalog.db"))
    (folder(data_dir) / LATEST_FILE).unlink()
    assert Catalog.in_data_dir(data_dir).resolve("default", "latest") == "v2"  # the newest
    again = export_dataset(data_dir, "default", KEYRING, datasets=policy(signals=NO_RATING))
    assert not again.published
    assert (folder(data_dir) / LATEST_FILE).read_text() == "v2\n"


def test_evaluate_takes_latest(two_versions: Path) -> None:
    result = flywheel("evaluate", "--version", "latest", "--no-ablations", "--json",
                      env=env(two_versions))  # fmt: skip
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["version"] == "v2"
    [test] = [a for a in found["accuracies"] if a["name"] == "test"]
    assert (
        test["pairs"]
        == json.loads((folder(two_versions) / "v2" / "manifest.json").read_text())["counts"]["dpo"][
            "splits"
        ]["test"]["rows"]
    )
