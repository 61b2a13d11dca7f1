"""Erasure's promises the audits broke: every spelling of an erased id is erased, and events
that arrive while an erasure runs do not survive it. Real files, a real DuckDB warehouse, the API
over real HTTP and the CLI as a process."""

from __future__ import annotations

import json
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from api.server import running_api
from api.sink import MemorySink
from export.build import Rekeyer
from export.catalog import versions
from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.settings import Settings
from flywheel.shell.erasure import erase_users, finish_erasure
from ingest.embedded import embedded_sink
from ingest.pipeline import DedupeWindow, RawMessage, build_pipeline, frame_users, rename_batch
from privacy.keys import normalise_user_id, write_keyring
from privacy.suppression import add_suppressed, suppression_file
from tests.factories import WRITE_KEY, make_event
from tests.helpers.cli import flywheel
from tests.helpers.datasets import ADMIN, KEYRING, land
from tests.helpers.erasure import (
    API_KEYS,
    dataset_users,
    heavy_users,
    lake_users,
    settings_for,
    wait_for,
    warehouse_hits,
)
from transforms.runner import run_transforms
from warehouse.lake import Lake

VARIANTS = [
    lambda u: f"  {u}  ",  # padded, as the audit sent it
    lambda u: f"{u}\t",  # a trailing tab
    lambda u: u.upper(),
    lambda u: f"\u200b{u}",  # a zero-width space in front
    lambda u: unicodedata.normalize("NFKC", u).translate(  # fullwidth letters and digits
        {c: c + 0xFEE0 for c in range(0x21, 0x7F)}
    ),
]


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("alice", "alice"),
        ("  Alice\t", "alice"),
        ("Alice   Smith", "alice smith"),
        ("\u200balice\ufeff", "alice"),
        ("ＡＬＩＣＥ", "alice"),
        ("Straße", "strasse"),  # case folding, not only lower()
        ("\u200b", "\u200b"),  # nothing visible left: kept as sent
    ],
)
def test_one_normal_form_of_a_user_id(raw: str, normal: str) -> None:
    assert normalise_user_id(raw) == normal
    assert KEYRING.pseudonym(raw) == KEYRING.pseudonym(normal)


def spelled_differently(events: list[dict[str, Any]], users: list[str]) -> list[dict[str, Any]]:
    """The events with each of ``users``' ids spelled by a different variant, in turn."""
    turn = 0
    out = []
    for event in events:
        if event["user_id"] in users:
            event = {**event, "user_id": VARIANTS[turn % len(VARIANTS)](event["user_id"])}
            turn += 1
        out.append(event)
    return out


@pytest.fixture
def variant_data_dir(tmp_path: Path) -> tuple[Path, list[str]]:
    """A published data dir whose two heaviest users sent their ids in every variant."""
    data_dir = tmp_path / "data"
    users = heavy_users(2)
    events = spelled_differently(
        list(simulate(SimulationConfig(events=12_000, seed=11, ab_rate=0.2))), users
    )
    land(data_dir, events)
    run_transforms(data_dir)
    write_keyring(KEYRING, tmp_path / "keys.json")
    export_dataset(data_dir, "default", KEYRING)
    return data_dir, users


@pytest.mark.slow
def test_every_spelling_of_an_id_is_one_user_erased_through_the_api(
    variant_data_dir: tuple[Path, list[str]],
) -> None:
    data_dir, users = variant_data_dir
    victim, bystander = users
    pseudonym = KEYRING.pseudonym(victim)
    # Five spellings landed as one user, not five.
    assert lake_users(data_dir)[pseudonym] > 100
    assert not {KEYRING.pseudonym(v(victim)) for v in VARIANTS} - {pseudonym}
    rekey = Rekeyer(KEYRING.keys[1], "default")
    assert rekey(pseudonym) in dataset_users(data_dir / "datasets" / "default" / "v1")

    settings = settings_for(data_dir, api=API_KEYS)
    with (
        running_api(settings, MemorySink(), erasure=finish_erasure) as url,
        httpx.Client(base_url=url) as client,
    ):
        # Padded, as the audit sent it: the API keeps the id as sent.
        accepted = client.post(
            "/v1/privacy/erasure", json={"user_ids": [f"  {victim}  "]}, headers=ADMIN
        )
        assert accepted.status_code == 202, accepted.text
        url_ = accepted.json()["status_url"]
        done = wait_for(lambda: client.get(url_, headers=ADMIN).json())

    assert done["status"] == "completed" and done["lake_events_removed"] > 100
    assert pseudonym not in lake_users(data_dir)
    assert not any(warehouse_hits(data_dir, {pseudonym}).values())
    assert versions(data_dir, "default") == ["v1", "v2"]
    left = dataset_users(data_dir / "datasets" / "default" / "v2")
    assert rekey(pseudonym) not in left and rekey(KEYRING.pseudonym(bystander)) in left

    # A variant sent afterwards is the erased user, suppressed: not a new user.
    land(data_dir, [make_event(user_id=victim.upper())], partition=5)
    assert pseudonym not in lake_users(data_dir)


@pytest.mark.slow
def test_erase_finds_events_landed_before_ids_were_normalised(
    variant_data_dir: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """A lake file written when the pseudonym was the HMAC of the id exactly as sent."""
    data_dir, users = variant_data_dir
    padded = f"  {users[0]}  "
    [verbatim] = KEYRING.verbatim_pseudonyms(padded).values()
    lake = Lake.in_data_dir(data_dir)
    first = next(iter(lake.files()))
    legacy = pl.read_parquet(first.path).head(50).with_columns(user_pseudonym=pl.lit(verbatim))
    lake.land(legacy, topic="legacy", partition=0, first_offset=0, last_offset=49)
    run_transforms(data_dir)
    assert lake_users(data_dir)[verbatim] == 50
    listed = tmp_path / "ids.txt"
    listed.write_text(f"{padded}\n")
    env = {"FLYWHEEL_DATA_DIR": str(data_dir),
           "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(data_dir.parent / "keys.json")}  # fmt: skip

    result = flywheel("erase", "--users-file", str(listed), env=env)

    assert result.returncode == 0, result.stderr
    assert verbatim not in lake_users(data_dir)
    assert KEYRING.pseudonym(padded) not in lake_users(data_dir)
    assert not any(warehouse_hits(data_dir, {verbatim}).values())
    assert KEYRING.verbatim_pseudonyms(users[0]) == {}  # an id already normal has no other


@pytest.fixture
def published(data_dir: Path) -> Path:
    export_dataset(data_dir, "default", KEYRING)
    return data_dir


@pytest.mark.slow
def test_events_posted_while_an_erasure_runs_do_not_survive_it(published: Path) -> None:
    """Clients keep posting a user's events over real HTTP (embedded mode) while the user is
    erased; once the erasure is ``completed``, the lake holds none of them, in every trial."""
    settings = settings_for(published, api=API_KEYS)
    write = {"Authorization": f"Bearer {WRITE_KEY}"}
    sink = embedded_sink(settings, KEYRING)
    survivors = []
    with running_api(settings, sink, erasure=finish_erasure) as url:
        for trial in range(5):
            victim = f"race-victim-{trial}"
            stop = threading.Event()
            accepted = [0]

            def post_until_stopped(
                victim: str = victim, stop: threading.Event = stop, accepted: list[int] = accepted
            ) -> None:
                with httpx.Client(base_url=url, headers=write, timeout=30) as client:
                    while not stop.is_set():
                        batch = [make_event(user_id=victim) for _ in range(20)]
                        response = client.post("/v1/events", json={"events": batch})
                        assert response.status_code == 202, response.text
                        accepted[0] += len(batch)

            posters = [threading.Thread(target=post_until_stopped) for _ in range(3)]
            for poster in posters:
                poster.start()
            with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as admin:
                time.sleep(0.3)
                request = admin.post("/v1/privacy/erasure", json={"user_ids": [victim]})
                assert request.status_code == 202, request.text
                status_url = request.json()["status_url"]
                done = wait_for(lambda u=status_url: admin.get(u).json())
            assert done["status"] == "completed", done
            survivors.append(lake_users(published)[KEYRING.pseudonym(victim)])
            stop.set()
            for poster in posters:
                poster.join()
            assert accepted[0] > 0
    assert survivors == [0] * 5


def test_a_batch_written_before_an_erasure_lands_without_the_user(tmp_path: Path) -> None:
    """The Kafka worker's window, made deterministic: a batch is written under its temporary
    name, the user is erased (listed) before it is renamed; it lands without the user."""
    data_dir = tmp_path / "data"
    pipeline = build_pipeline(Settings(data_dir=data_dir), KEYRING)
    lake = Lake.in_data_dir(data_dir)
    events = [make_event(user_id=u) for u in ("keep", "late-erased", "keep", "late-erased")]
    messages = [RawMessage("t", 0, i, b"", json.dumps(e).encode()) for i, e in enumerate(events)]
    frame = pipeline.frame(pipeline.process(messages, DedupeWindow(10)))
    temporary, final = lake.write_temporary(
        frame, topic="t", partition=0, first_offset=0, last_offset=3
    )
    add_suppressed(suppression_file(data_dir), [KEYRING.pseudonym("late-erased")])

    removed = rename_batch(lake, pipeline.suppression, temporary, final, frame_users(frame))

    assert removed == 2
    assert pl.read_parquet(final)["user_pseudonym"].to_list() == [KEYRING.pseudonym("keep")] * 2
    assert not temporary.exists() and [p.name for p in final.parent.iterdir()] == [final.name]


@pytest.mark.slow
def test_no_byte_of_the_warehouse_file_holds_an_erased_user(published: Path) -> None:
    """Deleted rows keep their bytes in a DuckDB file until the space is reused: after the
    erasure, the file must hold none of the users' pseudonyms, conversation ids or response ids
    (nor its write-ahead log, nor a copy beside it)."""
    import duckdb

    raw_ids = heavy_users(2)
    users = sorted(KEYRING.pseudonym(u) for u in raw_ids)
    path = published / "warehouse.duckdb"
    with duckdb.connect(str(path), read_only=True) as db:
        conversations, responses = (
            [
                v
                for (v,) in db.execute(
                    f"SELECT DISTINCT {column} FROM events WHERE {column} IS NOT NULL "
                    "AND user_pseudonym IN (SELECT unnest($u))",
                    {"u": users},
                ).fetchall()
            ]  # fmt: skip
            for column in ("conversation_id", "response_id")
        )
    wanted = [s.encode() for s in users + conversations + responses]
    assert len(conversations) > 10 and len(responses) > 10
    assert sum(w in path.read_bytes() for w in wanted) > len(wanted) // 2  # the scan can see

    erase_users(settings_for(published), raw_ids, KEYRING)

    left = [f for f in published.iterdir() if f.name.startswith(path.name) or "compact" in f.name]
    assert [f.name for f in left] == [path.name]
    data = path.read_bytes()
    assert [w.decode() for w in wanted if w in data] == []
    # Still the warehouse: migrated, its sequences going on, the next run equal to a full one.
    with duckdb.connect(str(path), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM events").fetchone()[0] > 1000
    run_transforms(published)
