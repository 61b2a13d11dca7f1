"""Publishing dataset versions from a warehouse built from simulated traffic."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from evaluate.utility import evaluate_files
from export.build import Rekeyer
from export.catalog import read_manifest, versions
from export.policy import DatasetPolicy, DatasetsFile, load_datasets
from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.errors import ConfigError, ExportBusyError, ExportError, QualityGateError
from tests.helpers.datasets import KEYRING, land, rewrite_texts
from transforms.principles import load_principles
from transforms.runner import run_transforms

TRL_COLUMNS = {
    "dpo": ["prompt", "chosen", "rejected"],
    "kto": ["prompt", "completion", "label"],
    "reward": ["chosen", "rejected", "margin"],
}


def policies(**datasets: DatasetPolicy) -> DatasetsFile:
    return DatasetsFile(datasets=datasets)


def read(version_dir: Path, kind: str, split: str | None = None) -> pl.DataFrame:
    pattern = f"{split}-*.parquet" if split else "*.parquet"
    files = sorted((version_dir / "data" / kind).glob(pattern))
    return pl.concat([pl.read_parquet(f) for f in files])


def shown(warehouse_ids: list[str], dataset: str) -> set[str]:
    """Warehouse pair or response ids as dataset ``dataset`` shows them (re-keyed)."""
    rekey = Rekeyer(KEYRING.keys[KEYRING.current], dataset)
    return {rekey.lineage(i) for i in warehouse_ids}


def sql(data_dir: Path, statement: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as connection:
        return connection.execute(statement).fetchall()


def test_publishes_a_version_whose_manifest_matches_its_files(data_dir: Path) -> None:
    result = export_dataset(data_dir, "default", KEYRING)

    assert result.version == "v1" and result.path == data_dir / "datasets" / "default" / "v1"
    manifest = read_manifest(data_dir, "default", "v1")
    assert manifest.quality.success is True
    for kind, columns in TRL_COLUMNS.items():
        total = 0
        for split, counts in manifest.counts[kind].splits.items():
            frame = read(result.path, kind, split)
            assert frame.height == counts.rows > 0
            assert frame.columns[:3] == columns
            signals = frame["signals"].explode().value_counts()
            assert dict(signals.iter_rows()) == counts.signals
            total += frame.height
        assert total == manifest.counts[kind].rows
    for entry in manifest.files:
        content = (result.path / entry.path).read_bytes()
        assert hashlib.sha256(content).hexdigest() == entry.sha256
        assert len(content) == entry.bytes
    listed = {entry.path for entry in manifest.files}
    assert "README.md" in listed and "quality/index.html" in listed
    lake = manifest.source.lake
    assert lake is not None
    loaded = sql(data_dir, "SELECT path, topic, partition, first_offset, last_offset, rows "
                           "FROM lake_files ORDER BY path")  # fmt: skip
    assert lake.files == len(loaded) > 1 and lake.rows == sum(row[5] for row in loaded)
    columns = ("path", "topic", "partition", "first_offset", "last_offset", "rows")
    listing = b"".join(json.dumps(dict(zip(columns, row, strict=True)), sort_keys=True).encode()
                       + b"\n" for row in loaded)  # fmt: skip
    assert lake.files_sha256 == hashlib.sha256(listing).hexdigest()
    assert sum(p.files for p in lake.partitions) == len(loaded)
    assert {(p.topic, p.partition) for p in lake.partitions} == {(row[1], row[2]) for row in loaded}
    assert manifest.policy_hash and manifest.source.transforms_policy_hash
    assert manifest.source.transforms_principles_hash == load_principles().digest
    first, last = manifest.time_window.first_event, manifest.time_window.last_event
    assert first is not None and last is not None and first < last


@pytest.mark.slow
def test_load_dataset_reads_every_config_and_split(data_dir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    result = export_dataset(data_dir, "default", KEYRING)
    assert result.path is not None
    manifest = result.manifest
    for kind, columns in TRL_COLUMNS.items():
        loaded = datasets.load_dataset(str(result.path), kind, cache_dir=str(tmp_path / "hf"))
        assert set(loaded) == set(manifest.counts[kind].splits)
        for split, table in loaded.items():
            assert table.num_rows == manifest.counts[kind].splits[split].rows
            assert table.column_names[:3] == columns


@pytest.mark.slow
def test_nothing_new_publishes_nothing_and_skips_the_gate(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = export_dataset(data_dir, "default", KEYRING)

    def gate_not_expected(*_: object) -> None:
        raise AssertionError("the gate ran with nothing new")

    monkeypatch.setattr("export.publish.run_gate", gate_not_expected)
    again = export_dataset(data_dir, "default", KEYRING)

    assert first.published and first.gate is not None and first.gate.success
    assert not again.published and again.gate is None
    assert again.manifest.version == "v1"
    assert versions(data_dir, "default") == ["v1"]
    assert not [p for p in (data_dir / "datasets" / "default").iterdir() if "attempt" in p.name]


@pytest.mark.slow
def test_same_warehouse_and_policy_give_the_same_bytes(data_dir: Path, tmp_path: Path) -> None:
    # With the evaluation in the card: the same pairs train the same model (its ablations, the
    # same fit five times more, are compared in tests/export/test_evaluation.py).
    shipped = load_datasets().dataset("default")
    datasets = policies(default=shipped.model_copy(update={"evaluate": "accuracy"}))
    first = export_dataset(data_dir, "default", KEYRING, datasets=datasets,
                           evaluator=evaluate_files)  # fmt: skip
    assert first.path is not None and first.manifest.evaluation is not None
    aside = tmp_path / "first"
    shutil.move(first.path, aside)
    second = export_dataset(data_dir, "default", KEYRING, datasets=datasets,
                            evaluator=evaluate_files)  # fmt: skip
    assert second.path is not None and second.version == "v1"
    assert second.manifest.evaluation == first.manifest.evaluation

    compared = [e.path for e in first.manifest.files if not e.path.startswith("quality/")]
    assert any(p.endswith(".parquet") for p in compared) and "README.md" in compared
    for path in compared:
        assert (aside / path).read_bytes() == (second.path / path).read_bytes(), path


@pytest.mark.slow
def test_new_events_make_a_new_version(data_dir: Path) -> None:
    export_dataset(data_dir, "default", KEYRING)
    more = list(simulate(SimulationConfig(events=3000, seed=99, ab_rate=0.2)))
    land(data_dir, more, partition=1)
    run_transforms(data_dir)

    result = export_dataset(data_dir, "default", KEYRING)

    assert result.version == "v2"
    assert result.manifest.previous_version == "v1"
    previous = read_manifest(data_dir, "default", "v1")
    assert result.manifest.counts["dpo"].rows > previous.counts["dpo"].rows
    lake, before = result.manifest.source.lake, previous.source.lake
    assert lake is not None and before is not None
    assert lake.files > before.files and lake.files_sha256 != before.files_sha256


@pytest.mark.slow
def test_a_changed_policy_makes_a_new_version(data_dir: Path) -> None:
    export_dataset(data_dir, "default", KEYRING, datasets=policies(default=DatasetPolicy()))
    stricter = DatasetPolicy(min_confidence=0.9)
    result = export_dataset(data_dir, "default", KEYRING, datasets=policies(default=stricter))

    assert result.version == "v2"
    assert result.manifest.policy["min_confidence"] == 0.9


def test_a_changed_schedule_alone_publishes_nothing_new(data_dir: Path) -> None:
    hourly, nightly = DatasetPolicy(schedule="0 * * * *"), DatasetPolicy(schedule="30 2 * * *")
    first = export_dataset(data_dir, "default", KEYRING, datasets=policies(default=hourly))
    again = export_dataset(data_dir, "default", KEYRING, datasets=policies(default=nightly))

    assert first.published and not again.published
    assert versions(data_dir, "default") == ["v1"]
    # When a dataset is exported is not part of what it holds: not in its recorded policy either,
    # so the policy hash stays the sha256 of the recorded policy.
    manifest = read_manifest(data_dir, "default", "v1")
    assert "schedule" not in manifest.policy
    canonical = json.dumps(manifest.policy, sort_keys=True).encode()
    assert manifest.policy_hash == hashlib.sha256(canonical).hexdigest()


@pytest.mark.slow
def test_a_version_published_with_its_schedule_in_the_digest_is_still_nothing_new(
    data_dir: Path,
) -> None:
    """Versions published before the schedule left the digest recorded it in their policy and
    hash: the first export after the upgrade must not republish the same files."""
    hourly = DatasetPolicy(schedule="0 * * * *")
    export_dataset(data_dir, "default", KEYRING, datasets=policies(default=hourly))
    path = data_dir / "datasets" / "default" / "v1" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["policy"]["schedule"] = "0 * * * *"  # as such a version recorded it
    legacy = hashlib.sha256(json.dumps(manifest["policy"], sort_keys=True).encode()).hexdigest()
    manifest["policy_hash"] = manifest["fingerprint"]["policy_hash"] = legacy
    path.write_text(json.dumps(manifest))

    again = export_dataset(data_dir, "default", KEYRING, datasets=policies(default=hourly))
    stricter = policies(default=DatasetPolicy(min_confidence=0.5))
    changed = export_dataset(data_dir, "default", KEYRING, datasets=stricter)

    assert not again.published and versions(data_dir, "default") == ["v1", "v2"]
    assert changed.published


def test_splits_group_conversations(data_dir: Path) -> None:
    result = export_dataset(data_dir, "default", KEYRING)
    assert result.path is not None
    split_of: dict[str, str] = {}
    for kind in TRL_COLUMNS:
        for split in ("train", "test"):
            for conversation in read(result.path, kind, split)["conversation"].unique():
                # one split per conversation, across every config
                assert split_of.setdefault(conversation, split) == split
    share = sum(s == "test" for s in split_of.values()) / len(split_of)
    assert 0.05 < share < 0.2  # ratio 0.1


def test_rows_follow_the_policy(data_dir: Path) -> None:
    policy = DatasetPolicy(
        signals=["ab_choice"], min_confidence=0.5, max_rows_per_user=3, max_rows_per_prompt=1
    )
    result = export_dataset(data_dir, "strict", KEYRING, datasets=policies(strict=policy))
    assert result.path is not None

    for kind in TRL_COLUMNS:
        rows = read(result.path, kind)
        assert rows.height > 0
        assert all("ab_choice" in signals for signals in rows["signals"])
        assert rows["confidence"].min() >= 0.5  # type: ignore[operator]
        assert rows.group_by("user").len()["len"].max() <= 3  # type: ignore[operator]
        prompt = rows["prompt"] if kind != "reward" else rows["chosen"].str.split("\n\nAssistant")
        if kind != "reward":
            normalised = prompt.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
            assert normalised.n_unique() == rows.height


def test_rows_without_consent_are_never_exported(data_dir: Path) -> None:
    withdrawn = [row[0] for row in sql(data_dir, "SELECT pair_id FROM preference_pairs LIMIT 50")]
    sql(data_dir, "UPDATE preference_pairs SET consent_training = false "
                  f"WHERE pair_id IN ({', '.join(repr(p) for p in withdrawn)})")  # fmt: skip

    result = export_dataset(data_dir, "default", KEYRING)
    assert result.path is not None

    exported = set(read(result.path, "dpo")["id"]) | set(read(result.path, "reward")["id"])
    assert exported and not exported & shown(withdrawn, "default")


@pytest.mark.slow
def test_users_conversations_rows_and_events_are_rekeyed_per_dataset(data_dir: Path) -> None:
    both = policies(one=DatasetPolicy(), two=DatasetPolicy())
    first = export_dataset(data_dir, "one", KEYRING, datasets=both)
    second = export_dataset(data_dir, "two", KEYRING, datasets=both)
    assert first.path is not None and second.path is not None

    columns = ("id", "event_ids", "user", "conversation")
    one = pl.concat([read(first.path, kind).select(columns) for kind in ("dpo", "kto")])
    two = pl.concat([read(second.path, kind).select(columns) for kind in ("dpo", "kto")])
    # Nothing to join the two datasets on, nor the client's or the warehouse's ids.
    for column in ("id", "user", "conversation"):
        assert not set(one[column]) & set(two[column]), column
    assert not set(one["event_ids"].explode()) & set(two["event_ids"].explode())
    warehouse = {row[0] for row in sql(data_dir, "SELECT user_pseudonym FROM events UNION "
                                       "SELECT event_id FROM events UNION "
                                       "SELECT pair_id FROM preference_pairs UNION "
                                       "SELECT response_id FROM responses")}  # fmt: skip
    assert not (set(one["id"]) | set(one["user"]) | set(one["event_ids"].explode())) & warehouse
    # The same rows, one to one: each dataset's ids map back to the same warehouse rows.
    rows = [r[0] for r in sql(data_dir, "SELECT pair_id FROM preference_pairs UNION ALL "
                                        "SELECT response_id FROM labels")]  # fmt: skip
    back_one = {Rekeyer(KEYRING.keys[1], "one").lineage(i): i for i in rows}
    back_two = {Rekeyer(KEYRING.keys[1], "two").lineage(i): i for i in rows}
    assert sorted(back_one[i] for i in one["id"]) == sorted(back_two[i] for i in two["id"])
    assert one["id"].n_unique() == one.height
    # Within a dataset, one user and one event, one re-keyed value.
    joined = one.with_columns(id=pl.col("id").replace_strict(back_one)).join(
        two.with_columns(id=pl.col("id").replace_strict(back_two)), on="id", suffix="_two"
    )
    assert joined.height == one.height
    assert joined.group_by("user").agg(pl.col("user_two").n_unique())["user_two"].max() == 1
    assert (joined["event_ids"].list.len() == joined["event_ids_two"].list.len()).all()


def test_conversational_format_and_jsonl(data_dir: Path) -> None:
    policy = DatasetPolicy(message_format="conversational", formats=["parquet", "jsonl"])
    result = export_dataset(data_dir, "chat", KEYRING, datasets=policies(chat=policy))
    assert result.path is not None

    dpo = read(result.path, "dpo")
    first = dpo.row(0, named=True)
    assert first["prompt"][-1]["role"] == "user"
    assert first["chosen"] == [{"role": "assistant", "content": first["chosen"][0]["content"]}]
    reward = read(result.path, "reward").row(0, named=True)
    assert reward["chosen"][-1]["role"] == "assistant" and reward["chosen"][0]["role"] in (
        "system",
        "user",
    )
    for parquet in (result.path / "data").rglob("*.parquet"):
        lines = parquet.with_suffix(".jsonl").read_text().splitlines()
        assert len(lines) == pl.read_parquet(parquet).height
        assert set(json.loads(lines[0])) == set(pl.read_parquet(parquet).columns)


def test_no_planted_value_reaches_a_dataset(
    data_dir: Path, simulated: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, truth = simulated
    planted = {r["value"] for r in truth if r["record"] == "planted" and len(r["value"]) >= 6}
    assert len(planted) > 50
    result = export_dataset(data_dir, "default", KEYRING)
    assert result.path is not None

    published = "\n".join(
        f.read_text(errors="replace") if f.suffix != ".parquet" else
        "\n".join(json.dumps(row) for row in pl.read_parquet(f).iter_rows())
        for f in result.path.rglob("*") if f.is_file() and "quality" not in f.parts
    )  # fmt: skip
    leaked = [value for value in planted if value in published]
    assert not leaked


def test_pairs_with_identical_texts_are_not_exported(data_dir: Path) -> None:
    same = [row[0] for row in sql(data_dir, "SELECT pair_id FROM preference_pairs LIMIT 5")]
    # The chosen side's text read from the rejected side's event: the same text.
    sql(data_dir, "UPDATE preference_pairs SET chosen_event_id = rejected_event_id "
                  f"WHERE pair_id IN ({', '.join(repr(p) for p in same)})")  # fmt: skip

    result = export_dataset(data_dir, "default", KEYRING)

    assert result.path is not None and result.manifest.quality.success
    assert not set(read(result.path, "dpo")["id"]) & shown(same, "default")


def test_a_broken_dataset_is_stopped_by_the_gate(data_dir: Path) -> None:
    sql(data_dir, "UPDATE preference_pairs SET confidence = 1.5 "
                  "WHERE pair_id IN (SELECT pair_id FROM preference_pairs LIMIT 5)")  # fmt: skip
    labelled = (
        "SELECT event_id FROM labels JOIN responses USING (response_id) WHERE consent_training"
    )
    rewrite_texts(data_dir, f"{labelled} LIMIT 3", "write to jane.doe@example.com")

    with pytest.raises(QualityGateError) as raised:
        export_dataset(data_dir, "default", KEYRING)

    message = str(raised.value)
    assert "confidence" in message and "_raw_secret_" in message
    assert all(line in message for line in raised.value.failed[:5])  # the first five listed
    assert any(line.startswith("dpo.confidence: ") for line in raised.value.failed)
    assert versions(data_dir, "default") == []
    failed = [p for p in (data_dir / "datasets" / "default").iterdir() if p.name.startswith("f")]
    assert len(failed) == 1
    assert (failed[0] / "quality" / "index.html").is_file()
    assert str(failed[0]) in raised.value.report


def test_unknown_dataset_and_missing_warehouse(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no dataset called 'nope'.*default"):
        export_dataset(data_dir, "nope", KEYRING)
    with pytest.raises(ExportError, match="flywheel transform run"):
        export_dataset(tmp_path / "empty", "default", KEYRING)


def test_one_export_per_dataset_at_a_time(data_dir: Path) -> None:
    import fcntl

    folder = data_dir / "datasets" / "default"
    folder.mkdir(parents=True)
    with (folder / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ExportBusyError, match="another export"):
            export_dataset(data_dir, "default", KEYRING)


def test_a_corrupt_manifest_is_an_export_error_naming_the_version(tmp_path: Path) -> None:
    manifest = tmp_path / "datasets" / "default" / "v1" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{")
    with pytest.raises(ExportError, match="version v1 of dataset 'default' is not valid JSON") as e:
        read_manifest(tmp_path, "default", "v1")
    assert str(tmp_path) not in str(e.value)


def test_shipped_policy_has_a_default_dataset() -> None:
    shipped = load_datasets()
    assert shipped.dataset("default").kinds == ["dpo", "kto", "reward"]
