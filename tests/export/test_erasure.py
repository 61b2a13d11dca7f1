"""Erasure across lake, warehouse and published datasets (files and DuckDB for real, no Kafka)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import duckdb
import httpx
import polars as pl
import pytest

from api.main import create_app
from api.server import running_api
from api.sink import MemorySink
from export.catalog import read_manifest, versions
from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.errors import FlywheelError
from flywheel.settings import Settings
from flywheel.shell.erasure import erase_users, finish_erasure
from privacy.keys import write_keyring
from privacy.requests import (
    ERASURE_LOCK,
    begin_erasure,
    erasure_log,
    erasure_status,
    unfinished_erasures,
)
from privacy.suppression import SuppressionList, suppression_file
from tests.factories import WRITE_KEY, api_client, warehouse_held
from tests.helpers.cli import assert_one_line_error, flywheel
from tests.helpers.datasets import ADMIN, ADMIN_KEY, KEYRING
from tests.helpers.erasure import (
    API_KEYS,
    dataset_users,
    heavy_users,
    lake_users,
    settings_for,
    wait_for,
    warehouse_hits,
)
from warehouse.lake import Lake

# Nearly every test erases from a copy of the simulated warehouse (measured: 5 to 27 s each).
pytestmark = pytest.mark.slow


def pseudonyms(raw_ids: list[str]) -> set[str]:
    return {KEYRING.pseudonym(raw_id) for raw_id in raw_ids}


STEPS = ["step:lake", "step:warehouse", "step:datasets"]
"""What an erasure that runs to the end logs between its start and its outcome."""


def log_events(data_dir: Path) -> list[str]:
    """The erasure log's events in order, a step named after its colon (``step:lake``)."""
    lines = erasure_log(data_dir).read_text().splitlines()
    return [e["event"] + (f":{e['step']}" if e["event"] == "step" else "")
            for e in map(json.loads, lines)]  # fmt: skip


def state(data_dir: Path) -> dict[str, Any]:
    """What an erasure leaves, to compare two end states (times and request ids left out)."""
    lake = {
        f.path.name: sorted(pl.read_parquet(f.path)["event_id"].to_list())
        for f in Lake.in_data_dir(data_dir).files()
    }
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        tables = {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()
            for (table,) in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            if table not in ("transform_runs", "model_state")
        }
        lake_rows = db.execute("SELECT path, rows FROM lake_files ORDER BY path").fetchall()
    datasets = {}
    for version in versions(data_dir, "default"):
        manifest = read_manifest(data_dir, "default", version)
        folder = data_dir / "datasets" / "default" / version
        datasets[version] = {
            "superseded_by": manifest.superseded_by,
            "counts": manifest.counts,
            "data": {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                     for p in sorted((folder / "data").rglob("*")) if p.is_file()},
        }  # fmt: skip
    suppressed = sorted(SuppressionList(suppression_file(data_dir)).current())
    return {"lake": lake, "tables": tables, "lake_rows": lake_rows, "datasets": datasets,
            "suppressed": suppressed}  # fmt: skip


@pytest.fixture
def published(data_dir: Path) -> Path:
    export_dataset(data_dir, "default", KEYRING)
    return data_dir


def test_erasure_removes_users_everywhere(published: Path) -> None:
    data_dir = published
    raw_ids = heavy_users()
    users = pseudonyms(raw_ids)
    assert all(lake_users(data_dir)[u] > 0 for u in users)
    before = read_manifest(data_dir, "default", "v1")

    record = erase_users(settings_for(data_dir), raw_ids, KEYRING)

    assert not users & set(lake_users(data_dir))
    assert record.lake_events_removed > 0
    assert set(warehouse_hits(data_dir, users).values()) == {0}
    assert record.warehouse_rows_deleted["events"] > 0
    assert versions(data_dir, "default") == ["v1", "v2"]
    old, new = read_manifest(data_dir, "default", "v1"), read_manifest(data_dir, "default", "v2")
    assert old.superseded_by == "v2" and new.superseded_by is None
    assert not (data_dir / "datasets" / "default" / "v1" / "data").exists()
    assert (
        "Superseded by v2" in (data_dir / "datasets" / "default" / "v1" / "README.md").read_text()
    )
    v2 = data_dir / "datasets" / "default" / "v2"
    # The counts add up: the new version's files, and the old counts minus what was removed.
    removed = 0
    for kind, counts in new.counts.items():
        for split, split_counts in counts.splits.items():
            files = sorted((v2 / "data" / kind).glob(f"{split}-*.parquet"))
            assert sum(pl.read_parquet(f).height for f in files) == split_counts.rows
        removed += before.counts[kind].rows - counts.rows
    assert new.erasure is not None and removed == new.erasure.rows_removed > 0
    assert new.quality.success
    # Their future events are suppressed, by pseudonym.
    assert users <= SuppressionList(suppression_file(data_dir)).current()
    # Every log line names pseudonyms, never a raw id.
    log = erasure_log(data_dir).read_text()
    assert all(raw_id not in log for raw_id in raw_ids)
    assert log_events(data_dir) == [
        "started",
        "step:lake",
        "step:warehouse",
        "step:datasets",
        "completed",
    ]


def test_erasure_finds_the_users_in_the_exported_pseudonyms(published: Path) -> None:
    """The dataset's re-keyed ``user`` column is searched the way the exporter re-keyed it."""
    from export.build import Rekeyer

    raw_ids = heavy_users(1)
    rekey = Rekeyer(KEYRING.keys[1], "default")
    exported = {rekey(p) for p in pseudonyms(raw_ids)}
    assert exported <= dataset_users(published / "datasets" / "default" / "v1")

    erase_users(settings_for(published), raw_ids, KEYRING)

    assert not exported & dataset_users(published / "datasets" / "default" / "v2")


def test_erasure_is_idempotent(published: Path) -> None:
    raw_ids = heavy_users()
    erase_users(settings_for(published), raw_ids, KEYRING)
    after_first = state(published)

    again = erase_users(settings_for(published), raw_ids, KEYRING)

    assert again.lake_events_removed == 0 and not again.warehouse_rows_deleted
    assert again.datasets == [] and again.newly_suppressed == 0
    assert state(published) == after_first


def test_a_crash_after_the_lake_rewrite_then_a_rerun_ends_the_same(
    published: Path, tmp_path: Path
) -> None:
    raw_ids = heavy_users()
    clean = tmp_path / "clean" / "data"
    shutil.copytree(published, clean)
    shutil.copy(published.parent / "keys.json", clean.parent / "keys.json")
    erase_users(settings_for(clean), raw_ids, KEYRING)

    env = {"FLYWHEEL_DATA_DIR": str(published),
           "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(published.parent / "keys.json")}  # fmt: skip
    args = ["erase", *(a for raw_id in raw_ids for a in ("--user", raw_id))]
    crashed = flywheel(*args, env={**env, "FLYWHEEL_FAULT_INJECTION": "erase_after_lake:1"})
    assert crashed.returncode == -9, crashed.stderr  # SIGKILL between the lake and the warehouse
    assert not pseudonyms(raw_ids) & set(lake_users(published))
    assert any(warehouse_hits(published, pseudonyms(raw_ids)).values())  # not reached yet

    rerun = flywheel(*args, env={**env, "FLYWHEEL_LOG_LEVEL": "DEBUG"})

    assert rerun.returncode == 0, rerun.stderr
    assert state(published) == state(clean)
    for raw_id in raw_ids:  # nothing printed or logged names a user
        assert raw_id not in rerun.stdout + rerun.stderr + crashed.stdout + crashed.stderr
        assert raw_id not in erasure_log(published).read_text()
    # The crashed request stays unfinished (the next --unfinished or API start resumes it).
    assert log_events(published) == [
        "started",
        "step:lake",
        "started",
        "step:lake",
        "step:warehouse",
        "step:datasets",
        "completed",
    ]


def test_a_latest_version_without_the_users_supersedes_older_ones(published: Path) -> None:
    """A crash after publishing the replacement, before marking the old version: the re-run
    marks it, without publishing again."""
    raw_ids = heavy_users()
    v1 = published / "datasets" / "default" / "v1"
    original = {p: p.read_bytes() for p in [v1 / "manifest.json", v1 / "README.md"]}
    shutil.copytree(v1 / "data", published.parent / "v1-data")
    erase_users(settings_for(published), raw_ids, KEYRING)
    for path, content in original.items():  # as if the crash came before the marking
        path.write_bytes(content)
    shutil.copytree(published.parent / "v1-data", v1 / "data")

    record = erase_users(settings_for(published), raw_ids, KEYRING)

    assert [(d["superseded"], d["published"]) for d in record.datasets] == [(["v1"], None)]
    assert versions(published, "default") == ["v1", "v2"]
    assert read_manifest(published, "default", "v1").superseded_by == "v2"
    assert not (v1 / "data").exists()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_erasure_api_accepts_then_finishes_in_the_background(published: Path) -> None:
    settings = settings_for(published, api=API_KEYS)
    raw_ids = heavy_users(2)
    users = pseudonyms(raw_ids)
    async with api_client(create_app(settings, MemorySink(), erasure=finish_erasure)) as client:
        assert (
            await client.post("/v1/privacy/erasure", json={"user_ids": raw_ids})
        ).status_code == 403
        empty = await client.post("/v1/privacy/erasure", json={"user_ids": []}, headers=ADMIN)
        assert empty.status_code == 422 and empty.json()["errors"][0]["path"] == "body.user_ids"
        many = {"user_ids": [f"u{i}" for i in range(1001)]}
        assert (
            await client.post("/v1/privacy/erasure", json=many, headers=ADMIN)
        ).status_code == 422
        with erasures_held(published):  # the background work waits: only step 1 is done
            accepted = await client.post(
                "/v1/privacy/erasure", json={"user_ids": raw_ids}, headers=ADMIN
            )
            assert accepted.status_code == 202, accepted.text
            body = accepted.json()
            assert (
                body["status"] == "pending" and accepted.headers["location"] == body["status_url"]
            )
            # Suppressed before the answer, while the lake still holds them.
            assert users <= SuppressionList(suppression_file(published)).current()
            assert users <= set(lake_users(published))
            pending = await client.get(body["status_url"], headers=ADMIN)
            assert pending.json()["status"] == "pending"

        async def status() -> dict[str, Any]:
            return dict((await client.get(body["status_url"], headers=ADMIN)).json())

        deadline = time.monotonic() + 120
        while (done := await status())["status"] == "pending":
            assert time.monotonic() < deadline
            await anyio.sleep(0.1)
        unknown = await client.get(f"/v1/privacy/erasure/{'0' * 32}", headers=ADMIN)
        malformed = await client.get("/v1/privacy/erasure/nope", headers=ADMIN)
        anonymous = await client.get(body["status_url"])
        metrics = (await client.get("/metrics")).text

    assert done["status"] == "completed", done
    assert done["lake_events_removed"] > 0 and done["datasets"][0]["published"] == "v2"
    assert set(done["pseudonyms"]["1"]) == users
    assert all(raw_id not in accepted.text + str(done) for raw_id in raw_ids)
    assert not users & set(lake_users(published))
    assert unknown.status_code == 404 and malformed.status_code == 422
    assert anonymous.status_code == 403
    assert 'flywheel_api_erasures_total{outcome="completed"} 1.0' in metrics
    assert "flywheel_api_erasure_seconds_count 1.0" in metrics


@pytest.mark.anyio
async def test_the_api_tries_an_erasure_again_while_the_warehouse_is_busy(published: Path) -> None:
    """A transform run or an export holding the warehouse fails the erasure's warehouse step:
    the queue tries again after a pause instead of leaving it failed until a restart."""
    from api.erasures import ErasureQueue

    app = create_app(settings_for(published, api=API_KEYS), MemorySink())
    # The first pause is long enough to read the status in it; then it tries every 0.2 s.
    app.state.erasures = ErasureQueue(app.state.settings, app.state.metrics, finish_erasure,
                                      busy_retries_s=(3.0, *(0.2,) * 300))  # fmt: skip
    raw_ids = heavy_users(1)
    with warehouse_held(published / "warehouse.duckdb") as holder:
        async with api_client(app) as client:
            accepted = await client.post(
                "/v1/privacy/erasure", json={"user_ids": raw_ids}, headers=ADMIN
            )
            log = erasure_log(published)
            deadline = time.monotonic() + 60
            while '"waiting"' not in log.read_text():  # the first try met the busy warehouse
                assert time.monotonic() < deadline
                await anyio.sleep(0.05)
            waiting = await client.get(accepted.json()["status_url"], headers=ADMIN)
            assert waiting.json()["status"] == "pending"  # not failed: it will be tried again
            holder.kill()
            holder.wait()
            deadline = time.monotonic() + 120
            while (await client.get(accepted.json()["status_url"], headers=ADMIN)).json()[
                "status"
            ] != "completed":
                assert time.monotonic() < deadline
                await anyio.sleep(0.1)

    events = log_events(published)
    assert events[:5] == ["started", "step:lake", "failed", "waiting", "resumed"]
    assert events[-1] == "completed"
    assert set(warehouse_hits(published, pseudonyms(raw_ids)).values()) == {0}


@contextmanager
def erasures_held(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's erasure lock from another process, as a running erasure would."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(data_dir / ERASURE_LOCK)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.terminate()
        holder.wait(timeout=10)
        holder.stdout.close()


HOLD_LOCK = """
import fcntl, pathlib, sys, time
path = pathlib.Path(sys.argv[1])
path.parent.mkdir(parents=True, exist_ok=True)
handle = path.open("a")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(600)
"""


def test_the_api_resumes_unfinished_erasures_as_it_starts(published: Path) -> None:
    """A request accepted (logged, suppressed) but cut off before the rest is finished by the
    next API process, over real HTTP."""
    settings = settings_for(published, api=API_KEYS)
    raw_ids = heavy_users(2)
    record = begin_erasure(settings, raw_ids, KEYRING)  # then the process died
    assert [r.request for r in unfinished_erasures(published)] == [record.request]
    assert pseudonyms(raw_ids) <= set(lake_users(published))

    with running_api(settings, MemorySink(), erasure=finish_erasure) as url:
        done = wait_for(lambda: httpx.get(f"{url}/v1/privacy/erasure/{record.request}",
                                          headers=ADMIN).json())  # fmt: skip

    assert done["status"] == "completed" and done["lake_events_removed"] > 0
    assert not pseudonyms(raw_ids) & set(lake_users(published))
    assert log_events(published) == [
        "started",
        "resumed",
        "step:lake",
        "step:warehouse",
        "step:datasets",
        "completed",
    ]
    assert unfinished_erasures(published) == []


def test_a_failed_erasure_is_finished_by_erase_unfinished(published: Path, tmp_path: Path) -> None:
    raw_ids = heavy_users()
    clean = tmp_path / "clean" / "data"
    shutil.copytree(published, clean)
    shutil.copy(published.parent / "keys.json", clean.parent / "keys.json")
    uninterrupted = erase_users(settings_for(clean), raw_ids, KEYRING)

    def refuse(point: str) -> None:
        if point == "erase_after_lake":
            raise FlywheelError("the warehouse is busy")

    record = begin_erasure(settings_for(published), raw_ids, KEYRING)
    with pytest.raises(FlywheelError):
        finish_erasure(settings_for(published), record, KEYRING, fault=refuse)
    failed = erasure_status(published, record.request)
    assert failed["status"] == "failed" and failed["error"] == "the warehouse is busy"

    env = {"FLYWHEEL_DATA_DIR": str(published),
           "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(published.parent / "keys.json")}  # fmt: skip
    resumed = flywheel("erase", "--unfinished", env=env)
    again = flywheel("erase", "--unfinished", env=env)

    assert resumed.returncode == 0, resumed.stderr
    assert f"erasure {record.request} (resumed)" in resumed.stdout
    done = erasure_status(published, record.request)
    assert done["status"] == "completed"
    assert state(published) == state(clean)
    # The outcome adds up both attempts (the lake was done by the first), as one attempt's does.
    for count in ("lake_events_removed", "lake_files_rewritten", "warehouse_rows_deleted"):
        assert done[count] == getattr(uninterrupted, count), count
    assert done["lake_events_removed"] > 0
    assert again.returncode == 0 and "no unfinished erasure request" in again.stdout
    assert log_events(published) == [
        "started", "step:lake", "failed", "resumed", *STEPS, "completed"
    ]  # fmt: skip


def test_a_key_file_that_is_not_the_lakes_is_refused_before_anything_changes(
    published: Path, tmp_path: Path
) -> None:
    """With another key every pseudonym would miss: the erasure would find nobody and say it
    succeeded, and an export would re-key users so that no erasure finds them again."""
    from privacy.keys import create_keyring

    other_key = tmp_path / "other-keys.json"
    create_keyring(other_key)
    env = {"FLYWHEEL_DATA_DIR": str(published), "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(other_key)}
    before = state(published)

    erased = flywheel("erase", "--user", heavy_users(1)[0], env=env)
    exported = flywheel("export", "run", "--dataset", "default", env=env)

    for refused in (erased, exported):
        assert_one_line_error(
            refused, "is not the one this data dir's lake was pseudonymised", code=3
        )
    assert state(published) == before and not erasure_log(published).exists()
    assert versions(published, "default") == ["v1"]


def test_erase_reads_one_id_per_line_of_a_users_file(published: Path, tmp_path: Path) -> None:
    [raw_id] = heavy_users(1)
    env = {"FLYWHEEL_DATA_DIR": str(published),
           "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(published.parent / "keys.json")}  # fmt: skip
    listed, latin1, blank = tmp_path / "ids.txt", tmp_path / "latin1.txt", tmp_path / "blank.txt"
    listed.write_text(f"\n  {raw_id}  \nan id with spaces\n\n")
    latin1.write_bytes(b"caf\xe9\n")
    blank.write_text("\n  \n")

    done = flywheel("erase", "--users-file", str(listed), env=env)
    not_utf8 = flywheel("erase", "--users-file", str(latin1), env=env)
    empty = flywheel("erase", "--users-file", str(blank), env=env)

    assert done.returncode == 0, done.stderr
    [started] = [json.loads(line) for line in erasure_log(published).read_text().splitlines()
                 if json.loads(line)["event"] == "started"]  # fmt: skip
    assert started["users"] == 2  # the id, and the line with spaces as one id
    assert not pseudonyms([raw_id]) & set(lake_users(published))
    assert_one_line_error(not_utf8, f"{latin1} is not UTF-8 text", code=3)
    assert_one_line_error(empty, f"{blank} holds no user id", code=3)


def test_erase_refuses_a_data_dir_that_does_not_exist(tmp_path: Path) -> None:
    """A mistyped FLYWHEEL_DATA_DIR used to get an erasure log of its own, and 'success'."""
    missing = tmp_path / "dta"
    key_file = tmp_path / "keys.json"
    write_keyring(KEYRING, key_file)
    result = flywheel("erase", "--user", "u-1", env={
        "FLYWHEEL_DATA_DIR": str(missing), "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(key_file),
    })  # fmt: skip

    assert_one_line_error(result, f"the data dir {missing} does not exist", code=3)
    assert not missing.exists()


def test_a_damaged_lake_file_fails_the_erasure_with_one_line(published: Path) -> None:
    [raw_id] = heavy_users(1)
    damaged = next(Lake.in_data_dir(published).files()).path
    damaged.write_bytes(damaged.read_bytes()[:200])
    env = {"FLYWHEEL_DATA_DIR": str(published),
           "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(published.parent / "keys.json")}  # fmt: skip

    result = flywheel("erase", "--user", raw_id, env=env)

    assert_one_line_error(result, "could not read the lake")
    assert damaged.name in result.stderr
    log = erasure_log(published).read_text().splitlines()
    [_, failed] = [json.loads(line) for line in log]
    assert failed["event"] == "failed" and "could not read the lake" in failed["error"]


def test_a_log_line_cut_off_by_a_crash_is_skipped(published: Path) -> None:
    """A crash while the outcome was written leaves half a line: the request counts as
    unfinished, and whatever follows is read."""
    settings = settings_for(published)
    cut = begin_erasure(settings, heavy_users(1), KEYRING)
    with erasure_log(published).open("a") as log:  # no newline: the crash came first
        log.write('{"event": "completed", "request": "' + cut.request + '", "lake_ev')
    later = begin_erasure(settings, heavy_users(2)[1:], KEYRING)

    assert [r.request for r in unfinished_erasures(published)] == [cut.request, later.request]
    assert erasure_status(published, cut.request)["status"] == "pending"
    assert erasure_status(published, later.request)["status"] == "pending"


def test_a_request_whose_suppression_failed_is_suppressed_when_resumed(published: Path) -> None:
    settings = settings_for(published)
    raw_ids = heavy_users(1)
    blocked = suppression_file(published)
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.mkdir()  # the list cannot be written

    with pytest.raises(OSError):
        begin_erasure(settings, raw_ids, KEYRING)
    [request] = unfinished_erasures(published)
    failed = erasure_status(published, request.request)
    assert failed["status"] == "failed" and "Is a directory" in failed["error"]

    blocked.rmdir()
    done = finish_erasure(settings, request, KEYRING, resumed=True)

    assert done is not None and done.newly_suppressed == 1
    assert pseudonyms(raw_ids) <= SuppressionList(suppression_file(published)).current()
    assert erasure_status(published, request.request)["status"] == "completed"


def test_erase_unfinished_with_new_users_runs_each_request_once(published: Path) -> None:
    [first, second] = heavy_users(2)
    cut = begin_erasure(settings_for(published), [first], KEYRING)  # then the process died
    env = {"FLYWHEEL_DATA_DIR": str(published),
           "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(published.parent / "keys.json")}  # fmt: skip

    result = flywheel("erase", "--user", second, "--unfinished", env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and sum(f"erasure {cut.request} (resumed)" in x for x in lines) == 1
    assert log_events(published) == [
        "started", "started", *STEPS, "completed", "resumed", *STEPS, "completed"
    ]  # fmt: skip


def test_an_erasure_waits_for_the_one_running(published: Path) -> None:
    settings = settings_for(published)
    raw_ids = heavy_users(1)
    record = begin_erasure(settings, raw_ids, KEYRING)
    steps: list[str] = []
    with erasures_held(published):
        worker = threading.Thread(
            target=finish_erasure, args=(settings, record, KEYRING),
            kwargs={"on_step": steps.append},
        )  # fmt: skip
        worker.start()
        worker.join(timeout=2)
        assert worker.is_alive() and steps == ["waiting for another erasure to end"]
        assert erasure_status(published, record.request)["status"] == "pending"
    worker.join(timeout=120)

    assert erasure_status(published, record.request)["status"] == "completed"
    assert not pseudonyms(raw_ids) & set(lake_users(published))


def test_erasure_api_without_a_key_is_503(published: Path) -> None:
    settings = Settings(
        data_dir=published, api={"write_keys": [WRITE_KEY], "admin_keys": [ADMIN_KEY]}
    )
    app = create_app(settings, MemorySink(), erasure=finish_erasure)
    transport = httpx.ASGITransport(app=app)
    import anyio

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/v1/privacy/erasure", json={"user_ids": ["x"]}, headers=ADMIN)

    response = anyio.run(call)
    assert (
        response.status_code == 503
        and "FLYWHEEL_PRIVACY__HMAC_KEY_FILE" in response.json()["message"]
    )


def test_an_api_built_without_an_erasure_runner_refuses_erasures(published: Path) -> None:
    """The API does not import the shell, which finishes erasures: the composition root passes
    it in. Without it a request is refused before anything is logged or suppressed, rather than
    accepted and never finished."""
    import anyio

    transport = httpx.ASGITransport(app=create_app(settings_for(published, api=API_KEYS),
                                                   MemorySink()))  # fmt: skip

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/v1/privacy/erasure", json={"user_ids": ["x"]}, headers=ADMIN)

    response = anyio.run(call)
    assert response.status_code == 503 and "erasure runner" in response.json()["message"]
    assert not erasure_log(published).exists()


def test_erasure_after_a_key_rotation_finds_both_pseudonyms(published: Path) -> None:
    from privacy.keys import load_keyring, rotate_keyring
    from tests.helpers.datasets import land
    from transforms.runner import run_transforms

    key_file = published.parent / "keys.json"
    rotated = rotate_keyring(key_file)
    [raw_id] = heavy_users(1)
    later = [
        {**event, "event_id": str(uuid.uuid4())}
        for event in simulate(SimulationConfig(events=12_000, seed=11, ab_rate=0.2))
        if event["user_id"] == raw_id
    ]
    land(published, later, partition=5, keyring=rotated)
    run_transforms(published)
    old, new = rotated.all_pseudonyms(raw_id)[1], rotated.all_pseudonyms(raw_id)[2]
    assert lake_users(published)[old] > 0 and lake_users(published)[new] > 0

    record = erase_users(settings_for(published), [raw_id], load_keyring(key_file))

    assert record.pseudonyms == {"1": [old], "2": [new]}
    assert not {old, new} & set(lake_users(published))
    assert set(warehouse_hits(published, {old, new}).values()) == {0}


def test_after_an_erasure_the_next_run_equals_a_full_refresh(published: Path) -> None:
    from transforms.runner import run_transforms

    models = ("responses", "preference_pairs", "labels", "rewards", "code_checks",
              "edit_changes", "calibration_votes", "signal_calibration")  # fmt: skip

    def contents() -> dict[str, list[tuple[Any, ...]]]:
        with duckdb.connect(str(published / "warehouse.duckdb"), read_only=True) as db:
            return {m: db.execute(f"SELECT * FROM {m} ORDER BY ALL").fetchall() for m in models}

    erase_users(settings_for(published), heavy_users(), KEYRING)
    run_transforms(published)  # the models' state was cleared: they are rebuilt in full
    after_erasure = contents()
    run_transforms(published, full_refresh=True)

    assert contents() == after_erasure
    assert all(after_erasure[m] for m in models)


def test_model_rows_naming_an_erased_response_from_another_conversation_go(
    tmp_path: Path,
) -> None:
    """A user compared their own answer with an erased user's answer (another conversation): the
    unpaired A/B choice (the two answer different prompts) and the calibration vote naming the
    erased response go with the erasure, before any transform run; the other user's own events
    stay."""
    from tests.factories import generation, make_event
    from tests.helpers.lake import land, query
    from transforms.runner import run_transforms
    from warehouse.db import open_warehouse, raw
    from warehouse.erase import erase_from_warehouse

    ab = make_event("ab_choice", response_a_id="r1", response_b_id="r9", choice="a",
                    conversation_id="c1", user_id="keep")  # fmt: skip
    land(Lake.in_data_dir(tmp_path), [
        generation("r1", conversation_id="c1", user_id="keep"),
        generation("r9", conversation_id="c9", user_id="erase-me"),
        # Before the choice: only then does the calibration compare the copy with it.
        make_event("copy", response_id="r1", conversation_id="c1", user_id="keep",
                   occurred_at="2026-01-05T08:59:00Z"),
        ab,
    ])  # fmt: skip
    run_transforms(tmp_path)
    named = ("SELECT count(*) FROM unpaired_ab_choices WHERE response_b_id = 'r9'",
             "SELECT count(*) FROM calibration_votes WHERE other_response_id = 'r9'")  # fmt: skip
    assert [query(tmp_path, sql) for sql in named] == [[(1,)], [(1,)]]
    engine = open_warehouse(tmp_path)
    with engine.connect() as connection:
        erase_from_warehouse(raw(connection), [KEYRING.pseudonym("erase-me")])
    engine.dispose()
    assert [query(tmp_path, sql) for sql in named] == [[(0,)], [(0,)]]
    kept = query(tmp_path, "SELECT event_id FROM events WHERE type = 'ab_choice'")
    assert kept == [(ab["event_id"],)]


@pytest.mark.parametrize("copied", [True, False], ids=["copied and continued", "continued"])
def test_erasure_keeps_other_users_answers_and_drops_rows_their_events_voted_for(
    tmp_path: Path, copied: bool
) -> None:
    """The erased user copied another user's answer and continued from it in a conversation of
    their own: the other user's responses stay (they are theirs), and the pair whose lineage
    names the erased user's events goes until the next run rebuilds it from what is left."""
    from tests.factories import generation, make_event
    from tests.helpers.lake import land, query
    from transforms.runner import run_transforms
    from warehouse.db import open_warehouse, raw
    from warehouse.erase import erase_from_warehouse

    continued = make_event(
        "generation", response_id="r9", parent_id="m9", conversation_id="c9", user_id="erase-me",
        prompt=[{"role": "assistant", "content": "answer rb", "response_id": "rb"},
                {"role": "user", "content": "more"}],
    )  # fmt: skip
    copy = [make_event("copy", response_id="rb", conversation_id="c9", user_id="erase-me")]
    copy = copy if copied else []
    land(Lake.in_data_dir(tmp_path), [
        generation("ra", conversation_id="c1", user_id="keep"),
        generation("rb", conversation_id="c1", user_id="keep"),
        make_event("regenerate", response_id="ra", new_response_id="rb", conversation_id="c1",
                   user_id="keep"),
        *copy,
        continued,
    ])  # fmt: skip
    run_transforms(tmp_path)
    pair = "SELECT count(*) FROM preference_pairs WHERE chosen_response_id = 'rb'"
    theirs = "SELECT response_id FROM responses WHERE conversation_id = 'c1' ORDER BY ALL"
    assert query(tmp_path, pair) == [(1,)]
    assert query(tmp_path, theirs) == [("ra",), ("rb",)]
    engine = open_warehouse(tmp_path)
    with engine.connect() as connection:
        erase_from_warehouse(raw(connection), [KEYRING.pseudonym("erase-me")])
    engine.dispose()
    assert query(tmp_path, pair) == [(0,)]
    assert query(tmp_path, theirs) == [("ra",), ("rb",)]
    # rb's label weighed the erased user's copy or continuation (its lineage names it): gone
    # until the next run; ra's, regenerated away by its own user, stays.
    assert query(tmp_path, "SELECT response_id FROM labels ORDER BY ALL") == [("ra",)]
