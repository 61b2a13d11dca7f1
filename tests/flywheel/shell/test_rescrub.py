"""flywheel lake rescrub: events landed by a scrubber that missed IBANs are scrubbed again by the
real one, in the lake, the warehouse and the datasets (files and DuckDB for real, no Kafka)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from prometheus_client import REGISTRY

from export.catalog import read_manifest, versions
from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.shell.rescrub import rescrub_lake, rescrub_log
from ingest.scrubbing import ScrubbingAnonymiser
from privacy.detectors import Finding, Scrubber
from privacy.keys import write_keyring
from tests.helpers.cli import assert_one_line_error, env, flywheel
from tests.helpers.datasets import KEYRING, land
from tests.helpers.erasure import settings_for
from transforms.runner import run_transforms
from warehouse.lake import Lake

pytestmark = pytest.mark.slow  # each test rescrubs a copy of a published data dir (5 to 20 s)

IBAN = "DE89 3704 0044 0532 0130 00"
"""The value the weak scrubber lets through (a valid IBAN, as a user might paste it)."""
IN_ID = "GB82WEST12345698765432"
"""Another, inside some conversations' ids (which the warehouse holds, unlike texts)."""


class WithoutIbans(Scrubber):
    """The scrubber before it learned IBANs: every detector but that one."""

    def find(self, text: str) -> list[Finding]:
        return [found for found in super().find(text) if found.kind != "iban"]


@pytest.fixture(scope="module")
def weakly_published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose events landed by ``WithoutIbans`` (a third of the responses hold
    ``IBAN``), transformed, and exported once."""
    data_dir = tmp_path_factory.mktemp("weak") / "data"
    events = list(simulate(SimulationConfig(events=3000, seed=7, ab_rate=0.3)))
    generations = [e for e in events if e["type"] == "generation"]
    for event in generations[::3]:
        event["response"] += f"\n\nPay to IBAN {IBAN}, thanks."
    marked = {e["conversation_id"] for e in generations[:40]}
    for event in events:
        if event["conversation_id"] in marked:
            event["conversation_id"] = f"{event['conversation_id']}-{IN_ID}"
    land(data_dir, events, chunk=500, anonymiser=ScrubbingAnonymiser(KEYRING, WithoutIbans()))
    write_keyring(KEYRING, data_dir.parent / "keys.json")
    run_transforms(data_dir)
    export_dataset(data_dir, "default", KEYRING)
    return data_dir


@pytest.fixture
def data_dir(weakly_published: Path, tmp_path: Path) -> Path:
    """A private copy of the weakly scrubbed data dir (and its key file beside it)."""
    copy = tmp_path / "data"
    shutil.copytree(weakly_published, copy, ignore=shutil.ignore_patterns("lake-catalog.db"))
    shutil.copy(weakly_published.parent / "keys.json", tmp_path / "keys.json")
    return copy


def lake_holding(data_dir: Path) -> int:
    """Lake rows whose texts (any column, prompts' messages included) hold ``IBAN``."""
    total = 0
    for landed in Lake.in_data_dir(data_dir).files():
        frame = pl.read_parquet(landed.path)
        rows = [json.dumps(row, default=str) for row in frame.rows()]
        total += sum(IBAN in row or IN_ID in row for row in rows)
    return total


def warehouse_holding(data_dir: Path) -> dict[str, int]:
    """Rows per warehouse table with a text column holding ``IBAN``."""
    found = {}
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        for (table,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            [(count,)] = db.execute(
                f'SELECT count(*) FROM "{table}" AS t WHERE CAST(t AS VARCHAR) LIKE $a '
                "OR CAST(t AS VARCHAR) LIKE $b",
                {"a": f"%{IBAN}%", "b": f"%{IN_ID}%"},
            ).fetchall()
            if count:
                found[table] = count
    return found


def version_holding(data_dir: Path, version: str) -> int:
    """Rows of a published version's files whose texts hold ``IBAN``."""
    folder = data_dir / "datasets" / "default" / version / "data"
    rows = [json.dumps(row, default=str) for f in sorted(folder.rglob("*.parquet"))
            for row in pl.read_parquet(f).rows()]  # fmt: skip
    return sum(IBAN in row or IN_ID in row for row in rows)


def lake_bytes(data_dir: Path) -> dict[str, str]:
    """Every file of the data dir and its hash (the rescrub's reach, to see that nothing moved)."""
    return {p.relative_to(data_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data_dir.rglob("*")) if p.is_file() and p.suffix != ".wal"}  # fmt: skip


def test_rescrub_replaces_the_missed_values_in_lake_warehouse_and_datasets(data_dir: Path) -> None:
    [old] = versions(data_dir, "default")
    before = lake_holding(data_dir)
    assert before > 50 and version_holding(data_dir, old) > 0  # the weak scrubber let them in
    assert warehouse_holding(data_dir)["events"] > 0  # the ids; texts stay in the lake

    record = rescrub_lake(settings_for(data_dir), KEYRING)

    assert lake_holding(data_dir) == 0
    # Each row's IBANs in texts, and its ids replaced whole (the simulator plants IBANs too).
    assert record.values["iban"] + record.values["identifier"] >= before
    assert record.files and all(f["values"] for f in record.files)
    # The scrubbed report of each row adds what was found now.
    reported = sum(
        entry["count"]
        for landed in Lake.in_data_dir(data_dir).files()
        for entries in pl.read_parquet(landed.path)["scrubbed"].to_list()
        for entry in entries or []
        if entry["kind"] == "iban"
    )
    assert reported == record.values["iban"]
    manifest = read_manifest(data_dir, "default", old)
    assert manifest.superseded_by == "withdrawn"  # the latest held them: none is current
    assert manifest.superseded is not None and record.rescrub in manifest.superseded.request
    card = (data_dir / "datasets" / "default" / old / "README.md").read_text()
    assert "texts held values the scrubber now removes" in card

    run = run_transforms(data_dir)
    assert run.files_loaded == len(record.files)  # the rewritten files, loaded again
    assert warehouse_holding(data_dir) == {}
    export_dataset(data_dir, "default", KEYRING)
    new = versions(data_dir, "default")[-1]
    assert new != old and version_holding(data_dir, new) == 0
    placeholders = version_holding_text(data_dir, new, "<IBAN>")
    assert placeholders > 0  # the same answers, published with the placeholder

    # Recorded: when, the scrubber's fingerprint, the files and counts; never a value.
    log = rescrub_log(data_dir).read_text()
    [started, completed] = [json.loads(line) for line in log.splitlines()]
    assert (started["event"], completed["event"]) == ("started", "completed")
    assert completed["values"] == record.values and completed["scrubber"] == record.scrubber
    assert IBAN not in log and IBAN.replace(" ", "") not in log and IN_ID not in log


def version_holding_text(data_dir: Path, version: str, text: str) -> int:
    folder = data_dir / "datasets" / "default" / version / "data"
    return sum(text in json.dumps(row, default=str) for f in sorted(folder.rglob("*.parquet"))
               for row in pl.read_parquet(f).rows())  # fmt: skip


def test_a_second_rescrub_changes_nothing(data_dir: Path) -> None:
    rescrub_lake(settings_for(data_dir), KEYRING)
    files = lake_bytes(data_dir)

    again = rescrub_lake(settings_for(data_dir), KEYRING)

    assert again.files == [] and again.values == {} and again.resumed == []
    assert lake_bytes(data_dir) == files


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_dry_run_counts_and_changes_nothing(data_dir: Path) -> None:
    files = lake_bytes(data_dir)
    dry_runs = metric("flywheel_lake_rescrubs_total", outcome="dry_run")
    ibans = metric("flywheel_lake_rescrubbed_values_total", kind="iban")

    dry = rescrub_lake(settings_for(data_dir), KEYRING, dry_run=True)

    assert lake_bytes(data_dir) == files
    assert metric("flywheel_lake_rescrubs_total", outcome="dry_run") == dry_runs + 1
    assert metric("flywheel_lake_rescrubbed_values_total", kind="iban") == ibans  # none replaced
    real = rescrub_lake(settings_for(data_dir), KEYRING)
    assert dry.values == real.values and dry.files == real.files
    assert dry.values["iban"] > 0
    assert (
        metric("flywheel_lake_rescrubbed_values_total", kind="iban") == ibans + dry.values["iban"]
    )


def test_cli_dry_run_then_a_crash_midway_then_a_rerun_finishes(data_dir: Path) -> None:
    settings = env(data_dir)
    dry = flywheel("lake", "rescrub", "--dry-run", env=settings)
    assert dry.returncode == 0, dry.stderr
    assert "nothing was changed" in dry.stdout and "iban" in dry.stdout

    fault = {"FLYWHEEL_FAULT_INJECTION": "rescrub_after_file:1"}
    crashed = flywheel("lake", "rescrub", env={**settings, **fault})
    assert crashed.returncode == -9, crashed.stderr  # SIGKILL after the first file's rewrite
    lake = Lake.in_data_dir(data_dir)
    for landed in lake.files():  # every file whole and readable, its rows all there
        assert pl.read_parquet(landed.path).height == lake.read_metadata(landed).num_rows > 0
    assert 0 < lake_holding(data_dir)

    rerun = flywheel("lake", "rescrub", env={**settings, "FLYWHEEL_LOG_LEVEL": "DEBUG"})

    assert rerun.returncode == 0, rerun.stderr
    assert "finishing 1 cut off" in rerun.stdout and "values replaced" in rerun.stdout
    assert "lake rescrub completed" in rerun.stderr and "iban" in rerun.stderr  # counts only
    assert lake_holding(data_dir) == 0
    for output in (dry, crashed, rerun):
        assert IBAN not in output.stdout + output.stderr
        assert IN_ID not in output.stdout + output.stderr
    # The file the crashed run rewrote is forgotten too: the warehouse loads every file again.
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        [(loaded,)] = db.execute("SELECT count(*) FROM lake_files").fetchall()
    changed = {f["path"] for line in rescrub_log(data_dir).read_text().splitlines()
               for f in json.loads(line)["files"]}  # fmt: skip
    assert loaded == len(list(lake.files())) - len(changed)
    run_transforms(data_dir)
    assert warehouse_holding(data_dir) == {}

    again = flywheel("lake", "rescrub", env=settings)
    assert again.returncode == 0, again.stderr
    assert "nothing to rescrub" in again.stdout


def test_rescrub_refuses_a_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "dta"
    write_keyring(KEYRING, tmp_path / "keys.json")

    result = flywheel("lake", "rescrub", env=env(missing))

    assert_one_line_error(result, f"the data dir {missing} does not exist", code=3)
    assert not missing.exists()
