"""Privacy operations end to end with the real broker: erasure, suppression, topic retention.

Simulated traffic goes through the real API into Kafka, an ingest worker (its own process) lands
it, the transforms and an export publish a dataset; three users are erased with
``flywheel erase``; then their events are sent again and must be suppressed. Every process runs
at DEBUG and none may print a raw user id.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import httpx
import polars as pl
from pydantic import SecretStr

from api.producer import KafkaSink
from api.server import running_api
from export.catalog import read_manifest, versions
from export.publish import export_dataset
from flywheel.dev import simulator
from flywheel.kafka import create_topics, topic_retention_ms
from flywheel.settings import KafkaSettings, Settings
from privacy.keys import create_keyring
from tests.factories import make_event
from tests.integration.kafka_tools import lake_frame, worker_env
from transforms.runner import run_transforms


def post(settings: Settings, events: list[dict[str, Any]]) -> None:
    key = secrets.token_urlsafe(16)
    api = settings.model_copy(
        update={"api": settings.api.model_copy(update={"write_keys": [SecretStr(key)]})}
    )
    with running_api(api, KafkaSink(settings.kafka)) as url:
        simulator.post_events(events, url=f"{url}/v1/events", key=key)


def ingest(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "flywheel", "ingest", "--idle-exit", "5"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def table_hits(data_dir: Path, pseudonyms: list[str]) -> dict[str, int]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        tables = [t for (t,) in db.execute(
            "SELECT DISTINCT table_name FROM duckdb_columns() WHERE column_name = 'user_pseudonym'"
        ).fetchall()]  # fmt: skip
        return {
            table: db.execute(
                f"SELECT count(*) FROM {table} WHERE user_pseudonym IN (SELECT unnest($p))",
                {"p": pseudonyms},
            ).fetchone()[0]  # type: ignore[index]
            for table in tables
        }


def test_erase_three_users_then_their_resent_events_are_suppressed(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    data_dir, key_file = tmp_path / "data", tmp_path / "keys.json"
    keyring = create_keyring(key_file)
    settings = Settings(data_dir=data_dir, kafka=kafka_settings)
    create_topics(kafka_settings)
    traffic = list(simulator.simulate(simulator.SimulationConfig(events=8000, seed=4)))
    post(settings, traffic)
    env = worker_env(kafka_settings, data_dir, key_file, FLYWHEEL_LOG_LEVEL="DEBUG")
    outputs = [ingest(env)]
    run_transforms(data_dir)
    first = export_dataset(data_dir, "default", keyring)
    assert first.version == "v1"

    users = [u for u, _ in Counter(e["user_id"] for e in traffic).most_common(3)]
    pseudonyms = [keyring.pseudonym(u) for u in users]
    assert set(pseudonyms) <= set(lake_frame(data_dir)["user_pseudonym"])
    erase = subprocess.run(
        [sys.executable, "-m", "flywheel", "erase", *(a for u in users for a in ("--user", u))],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert erase.returncode == 0, erase.stderr[-2000:]
    outputs.append(erase)
    # What the erasure cannot reach, and until when: the topics' retention, read from the broker.
    completed = json.loads(
        (data_dir / "privacy" / "erasure-log.jsonl").read_text().splitlines()[-1]
    )
    remaining = {t["topic"]: t for t in completed["kafka_raw_until"]}
    assert remaining[kafka_settings.events_topic]["source"] == "broker"
    assert remaining[kafka_settings.events_topic]["retention_ms"] == 7 * 24 * 3600 * 1000
    assert remaining[kafka_settings.dead_letter_topic]["retention_ms"] == 3 * 24 * 3600 * 1000
    assert f"{kafka_settings.events_topic} until " in erase.stderr

    # Gone from the lake, every warehouse table and the current dataset version.
    assert not set(pseudonyms) & set(lake_frame(data_dir)["user_pseudonym"])
    assert set(table_hits(data_dir, pseudonyms).values()) == {0}
    assert versions(data_dir, "default") == ["v1", "v2"]
    assert read_manifest(data_dir, "default", "v1").superseded_by == "v2"
    current = data_dir / "datasets" / "default" / "v2"
    manifest = read_manifest(data_dir, "default", "v2")
    for kind, counts in manifest.counts.items():
        frames = [pl.read_parquet(p) for p in sorted((current / "data" / kind).glob("*.parquet"))]
        assert sum(f.height for f in frames) == counts.rows
        assert sum(s.rows for s in counts.splits.values()) == counts.rows
    assert manifest.erasure is not None
    removed = manifest.erasure.rows_removed
    assert removed == sum(first.manifest.counts[k].rows - manifest.counts[k].rows
                          for k in manifest.counts)  # fmt: skip

    # Their later events (new ids: a resend of old ones would only be a duplicate) never land.
    again = [{**e, "event_id": str(uuid.uuid4())} for e in traffic if e["user_id"] in users]
    post(settings, again)
    outputs.append(ingest(env))
    assert not set(pseudonyms) & set(lake_frame(data_dir)["user_pseudonym"])
    consented = sum(1 for e in again if (e.get("consent") or {}).get("training"))
    assert f"{consented:,} of erased users dropped" in outputs[-1].stdout

    # No process output, log line or erasure log names a raw user id.
    logged = "".join(o.stdout + o.stderr for o in outputs)
    logged += (data_dir / "privacy" / "erasure-log.jsonl").read_text()
    assert "DEBUG" in logged.upper() or '"level"' in logged  # the runs did log
    for user in users:
        assert user not in logged
    assert (
        json.loads((data_dir / "privacy" / "erasure-log.jsonl").read_text().splitlines()[-1])[
            "event"
        ]
        == "completed"
    )


def test_kafka_init_sets_topic_retention(kafka_settings: KafkaSettings) -> None:
    week, day = 7 * 24 * 3600 * 1000, 24 * 3600 * 1000
    short = kafka_settings.model_copy(update={"dead_letter_retention_ms": day})
    assert set(create_topics(short).values()) == {"created"}
    assert topic_retention_ms(short, short.events_topic) == week
    assert topic_retention_ms(short, short.dead_letter_topic) == day

    longer = short.model_copy(update={"events_retention_ms": 2 * week})
    assert set(create_topics(longer).values()) == {"exists"}
    assert topic_retention_ms(longer, longer.events_topic) == 2 * week


def test_events_landing_while_an_erasure_runs_do_not_survive_it(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """One user's events go through the API into Kafka, and a running ingest worker lands
    them, while the user is erased; after ``completed`` the lake holds none of them, and none
    lands later either. Three trials, each with a user of its own."""
    data_dir, key_file = tmp_path / "data", tmp_path / "keys.json"
    keyring = create_keyring(key_file)
    create_topics(kafka_settings)
    key = secrets.token_urlsafe(16)
    settings = Settings(data_dir=data_dir, kafka=kafka_settings, api={"write_keys": [key]})
    env = worker_env(kafka_settings, data_dir, key_file)
    worker = subprocess.Popen(
        [sys.executable, "-m", "flywheel", "ingest"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    at_completion, victims = [], [f"kafka-race-{trial}" for trial in range(3)]
    try:
        with running_api(settings, KafkaSink(kafka_settings)) as url:
            for victim in victims:
                stop = threading.Event()

                def post(victim: str = victim, stop: threading.Event = stop) -> None:
                    with httpx.Client(timeout=30) as client:
                        while not stop.is_set():
                            simulator.post_events(
                                [make_event(user_id=victim) for _ in range(50)],
                                url=f"{url}/v1/events", key=key, client=client,
                            )  # fmt: skip

                posters = [threading.Thread(target=post) for _ in range(2)]
                for poster in posters:
                    poster.start()
                pseudonym = keyring.pseudonym(victim)
                deadline = time.monotonic() + 60
                while pseudonym not in landed_users(data_dir):
                    assert time.monotonic() < deadline, "the worker landed nothing"
                    time.sleep(0.2)
                erase = subprocess.run(
                    [sys.executable, "-m", "flywheel", "erase", "--user", victim], env=env,
                    capture_output=True, text=True, timeout=300, check=False,
                )  # fmt: skip
                assert erase.returncode == 0, erase.stderr[-2000:]
                at_completion.append(landed_users(data_dir).count(pseudonym))
                stop.set()
                for poster in posters:
                    poster.join()
        time.sleep(5)  # the worker lands what is still in the topic
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0, stderr[-2000:]
    assert at_completion == [0, 0, 0]
    assert not set(landed_users(data_dir)) & {keyring.pseudonym(v) for v in victims}


def landed_users(data_dir: Path) -> list[str]:
    """The pseudonym of every landed event (none before the first file)."""
    frame = lake_frame(data_dir)
    return frame["user_pseudonym"].to_list() if "user_pseudonym" in frame.columns else []
