"""Ingest workers on several "hosts" (processes with data dirs of their own) sharing one lake on
S3 (moto) and one catalog: SIGKILLed at random moments and across a broker restart, every
event lands in the lake's table exactly once, and the table reads alike in pyiceberg, DuckDB and
polars."""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import polars as pl
import pytest

from flywheel.dev import localkafka
from flywheel.settings import KafkaSettings, Settings
from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.deadletters import KafkaDeadLetters
from ingest.metrics import IngestMetrics
from ingest.pipeline import Pipeline
from ingest.worker import IngestWorker
from privacy.keys import load_keyring
from tests.helpers.proxy import CuttableProxy
from tests.helpers.s3 import S3Bucket
from tests.integration.kafka_tools import (
    consented,
    encoded,
    produce,
    simulated,
    start_worker,
    topic_with_events,
    worker_env,
)  # fmt: skip
from warehouse.lake import open_lake
from warehouse.table import LakeTable


def parquet_keys(bucket: S3Bucket) -> list[str]:
    return [key for key in bucket.keys() if key.endswith(".parquet")]


def retried(metrics: IngestMetrics) -> float | None:
    return metrics.registry.get_sample_value("flywheel_ingest_retries_total", {"action": "rename"})


def table_ids(table: LakeTable) -> list[str]:
    return table.table().scan(selected_fields=("event_id",)).to_arrow().column(0).to_pylist()


@pytest.mark.slow
def test_workers_on_two_hosts_sigkilled_and_a_broker_restart_land_every_event_once_on_s3(
    own_broker: Path, tmp_path: Path, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = localkafka.read_state(own_broker)
    assert state is not None
    kafka = KafkaSettings(
        bootstrap_servers=state.bootstrap_servers, events_topic="s3.events",
        dead_letter_topic="s3.dlq", partitions=4,
    )  # fmt: skip
    events, key_file = topic_with_events(kafka, tmp_path, events=24_000, seed=61)
    catalog = f"sqlite:///{tmp_path / 'shared-catalog.db'}"  # what PostgreSQL is to many hosts
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    envs = [
        worker_env(
            kafka, host, key_file,
            FLYWHEEL_LAKE__URL=s3_bucket.url("lake"), FLYWHEEL_LAKE__CATALOG=catalog,
            FLYWHEEL_LAKE__COMMIT_INTERVAL_S="2", FLYWHEEL_INGEST__GROUP_ID="s3-hosts",
            FLYWHEEL_INGEST__BATCH_MAX_EVENTS="1500", FLYWHEEL_INGEST__SESSION_TIMEOUT_MS="6000",
            FLYWHEEL_INGEST__RETRY_MAX_S="2",
        )
        for host in hosts
    ]  # fmt: skip
    log = tmp_path / "workers.log"
    rng = random.Random(61)
    kills = 0
    # Both hosts run; one of them is killed at a random moment, and started again, six times.
    workers = [start_worker(env, log) for env in envs]
    for round_ in range(6):
        time.sleep(rng.uniform(1.5, 4.0))
        victim = rng.randrange(2)
        if workers[victim].poll() is None:
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            kills += 1
        if round_ == 3:  # the broker goes away under both hosts, and comes back
            localkafka.stop(own_broker)
            time.sleep(2)
            localkafka.start(own_broker)
        workers[victim] = start_worker(envs[victim], log)
    for worker in workers:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    # Then both run to the end: idle-exit once nothing more arrives.
    finals = [start_worker(env, log, "--idle-exit", "10") for env in envs]
    for final in finals:
        assert final.wait(timeout=400) == 0, log.read_text()[-3000:]
    assert kills >= 4

    settings = Settings(data_dir=hosts[0], lake={"url": s3_bucket.url("lake"), "catalog": catalog})
    lake = open_lake(settings)
    table = LakeTable.of(settings, lake)
    table.commit()  # what a worker's next interval, or the transforms, would commit
    landed = table_ids(table)
    expected = {e["event_id"] for e in consented(events)}
    lost, duplicated = expected - set(landed), len(landed) - len(set(landed))
    assert (len(lost), duplicated) == (0, 0), f"{len(lost)} lost, {duplicated} duplicated"
    assert set(landed) == expected
    # The committed offsets reach the end of every partition.
    offsets = table.committed_offsets()["s3.events"]
    assert sorted(offsets) == [0, 1, 2, 3] and sum(offsets.values()) == len(events)
    # Other readers of the same table: DuckDB (through Arrow, no extension) and polars.
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")
    arrow = table.table().scan(selected_fields=("event_id",)).to_arrow()
    connection = duckdb.connect()
    connection.register("lake_events", arrow)
    in_duckdb = connection.sql("SELECT count(DISTINCT event_id) FROM lake_events").fetchall()
    assert in_duckdb == [(len(expected),)]
    assert pl.scan_iceberg(table.table()).select(pl.len()).collect().item() == len(expected)


def test_a_store_that_goes_away_is_retried_then_fails_and_nothing_is_lost(
    kafka_settings: KafkaSettings, tmp_path: Path, s3_bucket: S3Bucket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The network to S3 is cut under a running worker: its uploads are retried (counted), it
    lands nothing meanwhile, and stopped while the store is away it exits with the error; a
    worker started once the store is back lands every event, once."""
    upstream = urlsplit(s3_bucket.server.endpoint_url)
    proxy = CuttableProxy((upstream.hostname or "127.0.0.1", upstream.port or 80))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    events, key_file = topic_with_events(kafka_settings, tmp_path, events=3000, seed=71)
    settings = Settings(
        data_dir=tmp_path / "data", kafka=kafka_settings,
        lake={"url": s3_bucket.url("lake"), "commit_interval_s": 1},
        ingest={"group_id": "store-away", "batch_max_events": 500, "retry_max_s": 0.5},
    )  # fmt: skip
    keyring = load_keyring(key_file)

    def worker(metrics: IngestMetrics) -> tuple[IngestWorker, LakeTable]:
        lake = open_lake(settings)
        table = LakeTable.of(settings, lake)
        return IngestWorker(
            settings=settings, lake=lake, metrics=metrics,
            pipeline=Pipeline(PseudonymisingAnonymiser(keyring), max_event_bytes=64 * 1024),
            dead_letters=KafkaDeadLetters(kafka_settings), commit_landed=table.commit,
        ), table  # fmt: skip

    metrics = IngestMetrics()
    first, _ = worker(metrics)
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            first.run(stop)
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 90
    while not parquet_keys(s3_bucket):
        assert time.monotonic() < deadline, "nothing landed"
        time.sleep(0.2)
    proxy.cut()  # from now on every upload of this worker fails
    # A request the store had whole when the cut came (a copy of the next file, say) still
    # completes there though the worker never hears back: that file may land, and the worker
    # lands it again, under the same key, once the store is back. Nothing starts after the cut.
    time.sleep(1)
    landed_before = parquet_keys(s3_bucket)
    later = simulated(3000, seed=72)
    produce(kafka_settings.bootstrap_servers or "", kafka_settings.events_topic, encoded(later))
    while (retried(metrics) or 0) < 3:
        assert time.monotonic() < deadline, "the worker never retried an upload"
        time.sleep(0.2)
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert failure and "could not reach the S3 endpoint" in str(failure[0])
    assert parquet_keys(s3_bucket) == landed_before  # nothing landed after the cut

    proxy.restore()
    second, table = worker(IngestMetrics())
    second.run(threading.Event(), idle_exit_s=6)
    table.commit()
    landed = table_ids(table)
    assert len(landed) == len(set(landed)) and set(landed) == {
        e["event_id"] for e in consented(events + later)
    }
    proxy.close()
