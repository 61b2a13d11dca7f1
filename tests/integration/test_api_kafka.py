"""The API over real HTTP against the real broker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition

from api.producer import KafkaSink
from api.server import running_api
from flywheel.dev import localkafka
from flywheel.kafka import create_topics
from flywheel.settings import KafkaSettings, Settings, load_settings
from ingest.contract import encode_event, parse_event
from tests.factories import WRITE_KEY, make_event

AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}


def api_settings(kafka: KafkaSettings) -> Settings:
    return load_settings(api={"write_keys": [WRITE_KEY]}, kafka=kafka.model_dump())


def read_topic(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 30) -> list[Any]:
    """Every record of ``topic`` from the beginning; waits until at least ``expect`` arrived."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def conversation_events(conversation: str, n: int) -> list[dict[str, Any]]:
    types = ["generation", "copy", "edit", "regenerate", "ab_choice", "rating"]
    return [make_event(types[i % len(types)], conversation_id=conversation) for i in range(n)]


def test_posted_batches_are_in_the_topic_with_the_same_ids_payloads_and_keys(
    kafka_settings: KafkaSettings,
) -> None:
    create_topics(kafka_settings)
    batches = [conversation_events(f"conv-{i}", 40) for i in range(5)]
    sink = KafkaSink(kafka_settings)
    with running_api(api_settings(kafka_settings), sink) as url, httpx.Client() as client:
        for batch in batches:
            response = client.post(f"{url}/v1/events", json={"events": batch}, headers=AUTH)
            assert response.status_code == 202, response.text
            assert response.json()["accepted"] == len(batch)
    sent = {e["event_id"]: e for batch in batches for e in batch}
    records = read_topic(kafka_settings.bootstrap_servers or "", kafka_settings.events_topic,
                         expect=len(sent))  # fmt: skip
    assert len(records) == len(sent)
    for record in records:
        value = json.loads(record.value)
        original = sent[value["event_id"]]
        assert record.value == encode_event(parse_event(original))
        assert record.key == original["conversation_id"].encode()
        assert dict(record.headers)["schema-version"] == b"1"
    # Keyed by conversation: each conversation's events sit in one partition, in order.
    by_conversation: dict[bytes, set[int]] = {}
    for record in records:
        by_conversation.setdefault(record.key, set()).add(record.partition)
    assert all(len(partitions) == 1 for partitions in by_conversation.values())
    for batch in batches:
        key = batch[0]["conversation_id"].encode()
        in_topic = [json.loads(r.value)["event_id"] for r in records if r.key == key]
        assert in_topic == [e["event_id"] for e in batch]


def test_202_means_the_broker_already_has_the_events(kafka_settings: KafkaSettings) -> None:
    create_topics(kafka_settings)
    sink = KafkaSink(kafka_settings)
    consumer = KafkaConsumer(bootstrap_servers=kafka_settings.bootstrap_servers)
    partitions = [
        TopicPartition(kafka_settings.events_topic, p)
        for p in consumer.partitions_for_topic(kafka_settings.events_topic)
    ]
    try:
        with running_api(api_settings(kafka_settings), sink) as url, httpx.Client() as client:
            for round_ in range(1, 6):
                events = conversation_events(f"conv-{round_}", 25)
                response = client.post(f"{url}/v1/events", json={"events": events}, headers=AUTH)
                assert response.status_code == 202
                # No waiting: the records must be in the log by the time 202 arrives.
                assert sum(consumer.end_offsets(partitions).values()) == 25 * round_
    finally:
        consumer.close()


def test_the_real_producer_is_acks_all_and_idempotent(kafka_settings: KafkaSettings) -> None:
    create_topics(kafka_settings)
    sink = KafkaSink(kafka_settings)
    try:
        producer = sink.producer()
        assert producer.config["acks"] == -1
        assert producer.config["enable_idempotence"] is True
        assert producer._transaction_manager is not None  # the idempotent-producer state
    finally:
        sink.close()


def test_kafka_init_creates_topics_with_the_configured_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    settings = kafka_settings.model_copy(update={"partitions": 4})
    assert create_topics(settings) == {settings.events_topic: "created",
                                       settings.dead_letter_topic: "created"}  # fmt: skip
    assert create_topics(settings) == {settings.events_topic: "exists",
                                       settings.dead_letter_topic: "exists"}  # fmt: skip
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        assert len(consumer.partitions_for_topic(settings.events_topic)) == 4
        assert len(consumer.partitions_for_topic(settings.dead_letter_topic)) == 1
    finally:
        consumer.close()


def test_unreachable_kafka_is_503_and_not_ready(tmp_path: Path) -> None:
    dead = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{localkafka.free_port()}", max_block_ms=1000,
        produce_timeout_s=2,
    )  # fmt: skip
    with running_api(api_settings(dead), KafkaSink(dead)) as url, httpx.Client() as client:
        response = client.post(f"{url}/v1/events", json=make_event(), headers=AUTH)
        assert response.status_code == 503
        assert response.headers["retry-after"].isdigit()
        assert response.json()["error"] == "unavailable"
        assert client.get(f"{url}/readyz").status_code == 503
        assert client.get(f"{url}/healthz").status_code == 200


def test_broker_outage_gives_503_and_a_resend_after_recovery_gives_202(own_broker: Path) -> None:
    state = localkafka.read_state(own_broker)
    assert state is not None
    kafka = KafkaSettings(
        bootstrap_servers=state.bootstrap_servers, events_topic="outage.events",
        dead_letter_topic="outage.dlq", partitions=2, produce_timeout_s=3, max_block_ms=2000,
        request_timeout_ms=2000,
    )  # fmt: skip
    create_topics(kafka)
    before = conversation_events("conv-before", 20)
    during = conversation_events("conv-during", 20)
    sink = KafkaSink(kafka)
    with running_api(api_settings(kafka), sink) as url, httpx.Client(timeout=30) as client:
        post = lambda events: client.post(  # noqa: E731
            f"{url}/v1/events", json={"events": events}, headers=AUTH
        )
        assert post(before).status_code == 202
        assert client.get(f"{url}/readyz").status_code == 200

        localkafka.stop(own_broker)
        # Asked before any send failed: kafka-python still holds the topic's metadata, so only a
        # round trip to the broker tells it is gone (within the readiness timeout and cache).
        time.sleep(1.1)
        started = time.monotonic()
        not_ready = client.get(f"{url}/readyz")
        assert not_ready.status_code == 503, not_ready.text
        assert not_ready.json()["error"] == "not_ready"
        assert time.monotonic() - started < 5
        response = post(during)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0

        localkafka.start(own_broker)
        deadline = time.monotonic() + 90
        while (status := post(during).status_code) != 202 and time.monotonic() < deadline:
            time.sleep(1)
        assert status == 202
        # Ready again within a few probes (a metadata request may still be on a dead socket;
        # each probe waits up to 2 s, longer on a loaded machine).
        deadline = time.monotonic() + 45
        while (ready := client.get(f"{url}/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(1)
    ids = [json.loads(r.value)["event_id"] for r in read_topic(
        state.bootstrap_servers, kafka.events_topic, expect=40)]  # fmt: skip
    # Nothing acknowledged is lost; the 503'd batch may be there twice (dropped by event id later).
    assert {e["event_id"] for e in before + during} <= set(ids)
    assert len(ids) == len(set(ids)) or len(ids) > 40


@pytest.mark.parametrize("occupied", ["port"])
def test_a_failed_broker_start_shows_the_brokers_last_log_lines(
    tmp_path: Path, occupied: str
) -> None:
    import socket

    home = tmp_path / "kafka"
    home.mkdir()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        # A previous run's state pins the broker to a port someone else now holds.
        (home / "state.json").write_text(json.dumps(
            {"pid": 2**22 + 1, "port": port, "controller_port": localkafka.free_port(),
             "home": str(home)}))  # fmt: skip
        with pytest.raises(localkafka.LocalKafkaError) as caught:
            localkafka.start(home, timeout_s=60)
    message = str(caught.value)
    assert "exited" in message or "did not answer" in message
    assert "server.log" in message
    assert "Address already in use" in message or "BindException" in message


def test_serve_with_two_worker_processes_produces_to_kafka_and_every_scrape_counts_both(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from tests.helpers.metrics import samples

    create_topics(kafka_settings)
    port = localkafka.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers or "",
        FLYWHEEL_KAFKA__EVENTS_TOPIC=kafka_settings.events_topic,
        FLYWHEEL_API__WRITE_KEYS=json.dumps([WRITE_KEY]),
    )
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "flywheel", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    accepted = ("flywheel_api_events_total", (("outcome", "accepted"),))
    posts = ("flywheel_api_requests_total",
             (("method", "POST"), ("route", "/v1/events"), ("status", "202")))  # fmt: skip
    # Ten conversations posted at once, each on a connection of its own, so that both
    # processes answer some.
    batches = [conversation_events(f"conv-workers-{i}", 5) for i in range(10)]

    def post(batch: list[dict[str, Any]]) -> int:
        with httpx.Client() as client:
            return client.post(f"{url}/v1/events", json={"events": batch}, headers=AUTH).status_code

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with httpx.Client() as client:  # a new connection: any process may answer
            return samples(client.get(f"{url}/metrics").text)

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        with ThreadPoolExecutor(len(batches)) as pool:
            assert list(pool.map(post, batches)) == [202] * len(batches)
        # A request is counted just after its answer is sent: wait for the last ones.
        deadline = time.monotonic() + 10
        while scrape().get(posts) != len(batches) and time.monotonic() < deadline:
            time.sleep(0.1)
        with ThreadPoolExecutor(4) as pool:
            scrapes = list(pool.map(lambda _: scrape(), range(8)))
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert [s[accepted] for s in scrapes] == [50] * len(scrapes)
    assert [s[posts] for s in scrapes] == [len(batches)] * len(scrapes)
    produced = ("flywheel_api_produce_seconds_count", ())
    assert [s[produced] for s in scrapes] == [len(batches)] * len(scrapes)
    records = read_topic(kafka_settings.bootstrap_servers or "", kafka_settings.events_topic,
                         expect=50)  # fmt: skip
    by_conversation: dict[str, list[str]] = {}
    for record in records:
        event = json.loads(record.value)
        by_conversation.setdefault(event["conversation_id"], []).append(event["event_id"])
    assert by_conversation == {
        batch[0]["conversation_id"]: [e["event_id"] for e in batch] for batch in batches
    }
