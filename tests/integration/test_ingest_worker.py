"""Ingest workers against the real broker: exactly once into the lake, dead letters, crashes."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest

from flywheel.dev import localkafka
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.errors import KafkaError
from flywheel.kafka import admin_client, create_topics
from flywheel.settings import IngestSettings, KafkaSettings, Settings
from ingest.anonymiser import PseudonymisingAnonymiser
from ingest.deadletters import KafkaDeadLetters, list_dead_letters, replay
from ingest.metrics import IngestMetrics
from ingest.pipeline import Pipeline
from ingest.scrubbing import ScrubbingAnonymiser
from ingest.worker import IngestWorker, WorkerStats
from privacy.keys import Keyring, create_keyring
from tests.factories import make_event
from tests.filesystems import fill, small_file_system
from tests.integration.kafka_tools import (
    consented,
    encoded,
    lake_frame,
    produce,
    simulated,
    start_worker,
    topic_with_events,
    worker_env,
)
from warehouse.lake import TOPICS_FILE, Lake


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    return create_keyring(tmp_path / "keys.json")


def worker_settings(kafka: KafkaSettings, data_dir: Path, **ingest: Any) -> Settings:
    options: dict[str, Any] = {
        "group_id": f"test-{uuid.uuid4().hex[:8]}",
        "batch_max_events": 500,
        "batch_max_wait_ms": 200,
        **ingest,
    }
    return Settings(data_dir=data_dir, kafka=kafka, ingest=IngestSettings(**options))


def run_worker(
    settings: Settings,
    keyring: Keyring,
    *,
    idle_exit_s: float = 4,
    max_event_bytes: int | None = None,
    metrics: IngestMetrics | None = None,
) -> WorkerStats:
    pipeline = Pipeline(
        ScrubbingAnonymiser(keyring),
        max_event_bytes=max_event_bytes or settings.ingest.max_event_bytes,
    )
    worker = IngestWorker(
        settings=settings,
        lake=Lake.in_data_dir(settings.data_dir),
        pipeline=pipeline,
        dead_letters=KafkaDeadLetters(settings.kafka),
        metrics=metrics,
    )
    return worker.run(threading.Event(), idle_exit_s=idle_exit_s)


def assert_exactly_once(data_dir: Path, events: list[dict[str, Any]]) -> None:
    """Every consented event of ``events`` is in the lake once, and nothing else is."""
    frame = lake_frame(data_dir)
    expected = {e["event_id"] for e in consented(events)}
    landed = frame["event_id"].to_list()
    lost = expected - set(landed)
    duplicated = len(landed) - len(set(landed))
    assert (len(lost), duplicated) == (0, 0), f"{len(lost)} lost, {duplicated} duplicated"
    assert set(landed) == expected


@pytest.mark.parametrize("in_subprocess", [True, False], ids=["helper-process", "inline"])
def test_worker_lands_every_event_once_with_pseudonymous_users(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring, in_subprocess: bool
) -> None:
    create_topics(kafka_settings)
    events = simulated(3000, seed=11)
    produce(kafka_settings.bootstrap_servers or "", kafka_settings.events_topic, encoded(events))
    settings = worker_settings(
        kafka_settings, tmp_path / "data", prepare_in_subprocess=in_subprocess
    )
    stats = run_worker(settings, keyring)

    assert_exactly_once(tmp_path / "data", events)
    landable = {e["event_id"] for e in consented(events)}
    assert stats.landed == len(landable)
    assert stats.without_consent > 0 and stats.duplicates > 0  # the simulator's users and resends
    assert stats.consumed == len(events)
    frame = lake_frame(tmp_path / "data")
    raw_users = {e["user_id"] for e in events}
    expected = {keyring.pseudonym(e["user_id"]) for e in consented(events)}
    assert set(frame["user_pseudonym"].to_list()) == expected
    assert set(frame["pseudonym_key_version"].to_list()) == {keyring.current}
    # The raw ids appear nowhere in the lake: no column, no prompt message.
    dump = json.dumps(frame.drop("occurred_at", "landed_at").to_dicts())
    assert not [user for user in raw_users if user in dump]
    # Files are named by partition and offsets, and cover each partition without gaps.
    lake = Lake.in_data_dir(tmp_path / "data")
    for partition in range(kafka_settings.partitions):
        files = lake.partition_files(kafka_settings.events_topic, partition)
        assert files, f"partition {partition} landed nothing"
        assert files[0].first_offset == 0
        for before, after in zip(files, files[1:], strict=False):
            assert after.first_offset == before.last_offset + 1


def test_planted_pii_and_secrets_never_reach_the_lake(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    create_topics(kafka_settings)
    simulation = simulate(SimulationConfig(events=4000, seed=12, pii_rate=0.2))
    events = list(simulation)
    planted = {r["value"] for r in simulation.truth if r["record"] == "planted"}
    assert len(planted) > 100
    produce(kafka_settings.bootstrap_servers or "", kafka_settings.events_topic, encoded(events))
    run_worker(worker_settings(kafka_settings, tmp_path / "data"), keyring)

    frame = lake_frame(tmp_path / "data")
    assert_exactly_once(tmp_path / "data", events)
    dump = json.dumps(frame.drop("occurred_at", "landed_at").to_dicts())
    assert [value for value in planted if value in dump] == []
    reported = frame.explode("scrubbed")["scrubbed"].drop_nulls().struct.field("kind")
    assert {"email", "phone"} <= set(reported.to_list())


def test_a_restarted_worker_resumes_from_the_lake_not_kafkas_offsets(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    create_topics(kafka_settings)
    first, second = simulated(1000, seed=1), simulated(1000, seed=2)
    bootstrap, topic = kafka_settings.bootstrap_servers or "", kafka_settings.events_topic
    settings = worker_settings(kafka_settings, tmp_path / "data")
    produce(bootstrap, topic, encoded(first))
    run_worker(settings, keyring)
    # A new consumer group has no committed offsets at all: only the lake says where to resume.
    settings = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"group_id": "another-group"})}
    )
    produce(bootstrap, topic, encoded(second))
    stats = run_worker(settings, keyring)
    assert stats.landed == len(
        {e["event_id"] for e in consented(second)} - {e["event_id"] for e in first}
    )
    assert_exactly_once(tmp_path / "data", first + second)


def test_poison_messages_go_to_the_dead_letter_topic_and_nothing_stalls(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    create_topics(kafka_settings)
    bootstrap, topic = kafka_settings.bootstrap_servers or "", kafka_settings.events_topic
    good = [make_event("rating", conversation_id=f"c{i % 7}") for i in range(300)]
    oversized = make_event("edit", conversation_id="c1", edited_text="z" * 5000)
    poison: list[tuple[bytes | None, bytes | None, str]] = [
        (b"c1", b"this is not json {", "not_json"),
        (b"c2", json.dumps({**make_event("rating"), "value": "meh"}).encode(), "contract"),
        (b"c3", json.dumps({"type": "rating", "email": "jane@example.com"}).encode(), "contract"),
        (b"c1", json.dumps(oversized).encode(), "oversize"),
        (b"c4", None, "not_json"),
    ]
    messages: list[tuple[bytes | None, bytes | None]] = []
    for i, event in enumerate(good):
        messages.append((event["conversation_id"].encode(), json.dumps(event).encode()))
        if i % 60 == 30:
            key, value, _ = poison[i // 60]
            messages.append((key, value))
    produce(bootstrap, topic, messages)

    settings = worker_settings(kafka_settings, tmp_path / "data")
    metrics = IngestMetrics()
    stats = run_worker(settings, keyring, max_event_bytes=4096, metrics=metrics)
    assert_exactly_once(tmp_path / "data", good)
    assert stats.dead_letters == len(poison)
    exposed = generate_latest(metrics.registry).decode()
    assert f"flywheel_ingest_events_landed_total {float(len(good))}" in exposed
    assert 'flywheel_ingest_dead_letters_total{error_type="contract"} 2.0' in exposed
    assert 'flywheel_ingest_dead_letters_total{error_type="not_json"} 2.0' in exposed
    assert 'flywheel_ingest_dead_letters_total{error_type="oversize"} 1.0' in exposed
    assert "flywheel_ingest_batch_seconds_count" in exposed
    assert 'flywheel_ingest_consumer_lag{partition="0"} 0.0' in exposed

    letters = list_dead_letters(kafka_settings)
    assert sorted(r.error_type for r in letters) == sorted(p[2] for p in poison)
    for record in letters:
        assert record.source_topic == topic
        assert record.source_offset >= 0
        assert record.reason
        assert "jane@example.com" not in record.reason
    contract = [r for r in letters if r.error_type == "contract"]
    assert any("value" in r.reason for r in contract)
    by_type = {r.error_type: r for r in letters}
    assert by_type["oversize"].value == json.dumps(oversized).encode()  # original bytes kept

    # After the fix (a larger limit) a replay lands the oversized event; a second replay is a no-op.
    assert replay(kafka_settings) == len(poison)
    assert replay(kafka_settings) == 0
    stats = run_worker(settings, keyring, max_event_bytes=64 * 1024)
    assert stats.landed == 1
    assert_exactly_once(tmp_path / "data", [*good, oversized])


def test_events_produced_by_kcat_land_like_any_other(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed (apt-get install kcat); .ci/run installs it")
    create_topics(kafka_settings)
    types = ["generation", "copy", "edit", "regenerate", "ab_choice", "rating"] * 5
    events = [make_event(t, conversation_id=f"conv-{i}") for i, t in enumerate(types)]
    lines = "".join(f"{e['conversation_id']}\t{json.dumps(e)}\n" for e in events)
    subprocess.run(
        [kcat, "-P", "-b", kafka_settings.bootstrap_servers or "", "-t",
         kafka_settings.events_topic, "-K", "\t"],
        input=lines.encode(), check=True, timeout=60,
    )  # fmt: skip
    run_worker(worker_settings(kafka_settings, tmp_path / "data"), keyring)
    assert_exactly_once(tmp_path / "data", events)
    frame = lake_frame(tmp_path / "data")
    assert sorted(frame["conversation_id"].to_list()) == sorted(
        e["conversation_id"] for e in events
    )


def test_broker_restart_in_the_middle_of_a_stream(own_broker: Path, tmp_path: Path,
                                                   keyring: Keyring) -> None:  # fmt: skip
    state = localkafka.read_state(own_broker)
    assert state is not None
    kafka = KafkaSettings(
        bootstrap_servers=state.bootstrap_servers, events_topic="restart.events",
        dead_letter_topic="restart.dlq", partitions=3,
    )  # fmt: skip
    create_topics(kafka)
    before, after = simulated(6000, seed=21), simulated(6000, seed=22)
    produce(state.bootstrap_servers, kafka.events_topic, encoded(before))
    settings = worker_settings(kafka, tmp_path / "data", batch_max_events=300, retry_max_s=2)
    stop = threading.Event()
    worker = IngestWorker(
        settings=settings,
        lake=Lake.in_data_dir(settings.data_dir),
        pipeline=Pipeline(PseudonymisingAnonymiser(keyring), max_event_bytes=64 * 1024),
        dead_letters=KafkaDeadLetters(kafka),
    )
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        wait_for_rows(tmp_path / "data", 1500, timeout_s=60)
        localkafka.stop(own_broker)
        time.sleep(3)
        localkafka.start(own_broker)
        produce(state.bootstrap_servers, kafka.events_topic, encoded(after))
        expected = len({e["event_id"] for e in consented(before + after)})
        wait_for_rows(tmp_path / "data", expected, timeout_s=120)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert_exactly_once(tmp_path / "data", before + after)


def wait_for_rows(data_dir: Path, rows: int, *, timeout_s: float) -> None:
    """Wait until the lake holds at least ``rows`` rows (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while len(lake_frame(data_dir)) < rows and time.monotonic() < deadline:
        time.sleep(0.2)


def test_two_workers_share_a_4_partition_topic_and_one_stops_halfway(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    kafka = kafka_settings.model_copy(update={"partitions": 4})
    events, key_file = topic_with_events(kafka, tmp_path, events=30_000, seed=31)
    env = worker_env(
        kafka, tmp_path / "data", key_file,
        FLYWHEEL_INGEST__GROUP_ID="two-workers", FLYWHEEL_INGEST__BATCH_MAX_EVENTS="500",
        FLYWHEEL_INGEST__SESSION_TIMEOUT_MS="6000",
    )  # fmt: skip
    log = tmp_path / "workers.log"
    metrics_port = localkafka.free_port()
    stopping = start_worker(env, log)
    staying = start_worker(
        {**env, "FLYWHEEL_INGEST__METRICS_PORT": str(metrics_port)}, log, "--idle-exit", "8"
    )
    wait_for_rows(tmp_path / "data", 8000, timeout_s=60)
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert "flywheel_ingest_events_landed_total" in scraped
    assert "flywheel_ingest_consumer_lag" in scraped
    stopping.send_signal(signal.SIGTERM)
    assert stopping.wait(timeout=60) == 0, log.read_text()[-3000:]
    assert staying.wait(timeout=180) == 0, log.read_text()[-3000:]
    assert_exactly_once(tmp_path / "data", events)
    landed = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(r.get("message") == "partition revoked" for r in landed)


def test_crash_test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """100,000 events; the worker is SIGKILLed at each landing step and at random moments."""
    events, key_file = topic_with_events(kafka_settings, tmp_path, events=100_000, seed=41)
    base = worker_env(
        kafka_settings, tmp_path / "data", key_file,
        FLYWHEEL_INGEST__GROUP_ID="crash-test", FLYWHEEL_INGEST__INSTANCE_ID="crash-worker-1",
        FLYWHEEL_INGEST__BATCH_MAX_EVENTS="2000",
    )  # fmt: skip
    log = tmp_path / "worker.log"
    rng = random.Random(41)
    kills = {"after_write": 0, "after_commit": 0, "after_rename": 0, "random": 0}

    # The exact moments first: after the file is written, after the Kafka commit (the moment
    # between commit and rename), and right after the rename.
    for point in ("after_write", "after_commit", "after_rename") * 2:
        process = start_worker({**base, "FLYWHEEL_FAULT_INJECTION": f"{point}:1"}, log)
        assert process.wait(timeout=120) == -signal.SIGKILL, log.read_text()[-3000:]
        kills[point] += 1
    # Then at random moments, mid-batch or not.
    while kills["random"] < 10:
        process = start_worker(base, log)
        time.sleep(rng.uniform(1.0, 4.0))
        if process.poll() is not None:
            break
        process.kill()
        process.wait()
        kills["random"] += 1
    final = start_worker(base, log, "--idle-exit", "6")
    assert final.wait(timeout=300) == 0, log.read_text()[-3000:]

    assert kills["random"] >= 10, kills
    assert_exactly_once(tmp_path / "data", events)
    # Half-written files of the killed runs were cleaned up.
    assert not list((tmp_path / "data" / "lake").rglob(".landing-*"))


def wait_until(condition: Callable[[], bool], *, timeout_s: float) -> bool:
    """Poll ``condition`` until it holds or the time is up; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def retries(metrics: IngestMetrics, action: str) -> float:
    value = metrics.registry.get_sample_value("flywheel_ingest_retries_total", {"action": action})
    return value or 0.0


def test_a_full_disk_is_waited_out_and_every_event_lands_once(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    """The lake on a real, full file system: the worker used to die of polars' ComputeError."""
    create_topics(kafka_settings)
    events = simulated(400, seed=51)
    produce(kafka_settings.bootstrap_servers or "", kafka_settings.events_topic, encoded(events))
    settings = worker_settings(kafka_settings, tmp_path / "data", retry_max_s=0.5)
    lake = Lake.in_data_dir(settings.data_dir)
    metrics = IngestMetrics()
    worker = IngestWorker(
        settings=settings, lake=lake,
        pipeline=Pipeline(PseudonymisingAnonymiser(keyring), max_event_bytes=64 * 1024),
        dead_letters=KafkaDeadLetters(kafka_settings), metrics=metrics,
    )  # fmt: skip
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:
            failures.append(exc)

    stop = threading.Event()
    # Today's folder only: the worker records the topic's id beside the day folders first.
    today = lake.root / f"landed_date={datetime.now(UTC):%Y-%m-%d}"
    with small_file_system(today, size_kib=256):
        ballast = fill(today)
        thread = threading.Thread(target=run)
        thread.start()
        try:
            assert wait_until(
                lambda: retries(metrics, "write") >= 2 or not thread.is_alive(), timeout_s=60
            )
            assert failures == [] and thread.is_alive(), failures
            assert len(lake_frame(settings.data_dir)) == 0
            ballast.unlink()
            expected = len({e["event_id"] for e in consented(events)})
            wait_for_rows(settings.data_dir, expected, timeout_s=60)
        finally:
            stop.set()
            thread.join(timeout=60)
        assert failures == []
        assert_exactly_once(settings.data_dir, events)
        assert not list(lake.root.rglob(".landing-*"))


class Running:
    """An ``IngestWorker`` run in a thread of the test, with what it raised."""

    def __init__(self, worker: IngestWorker) -> None:
        self.worker = worker
        self.stop = threading.Event()
        self.failures: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(self.stop)
        except BaseException as exc:
            self.failures.append(exc)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def make_worker(
    settings: Settings, keyring: Keyring, *, metrics: IngestMetrics | None = None,
    fault: Callable[[str], None] | None = None,
) -> IngestWorker:  # fmt: skip
    return IngestWorker(
        settings=settings, lake=Lake.in_data_dir(settings.data_dir),
        pipeline=Pipeline(PseudonymisingAnonymiser(keyring), max_event_bytes=64 * 1024),
        dead_letters=KafkaDeadLetters(settings.kafka), metrics=metrics, fault=fault,
    )  # fmt: skip


def test_a_worker_stuck_between_commit_and_rename_gives_the_partition_up(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    """The first worker commits, then stalls before the rename past max.poll.interval.ms; the
    group gives the partition to the second, which removes the stalled worker's temporary file.
    The first used to retry the rename forever (its lag frozen); now it gives the partition up."""
    kafka = kafka_settings.model_copy(update={"partitions": 1})
    create_topics(kafka)
    events = simulated(300, seed=61)
    produce(kafka.bootstrap_servers or "", kafka.events_topic, encoded(events))
    settings = worker_settings(
        kafka, tmp_path / "data", batch_max_events=1000, session_timeout_ms=6000,
        max_poll_interval_ms=6000, retry_max_s=0.2,
    )  # fmt: skip
    release = threading.Event()
    stalled = threading.Event()

    def stall_after_the_first_commit(point: str) -> None:
        if point == "after_commit" and not stalled.is_set():
            stalled.set()
            assert release.wait(timeout=120)

    first_metrics = IngestMetrics()
    first = Running(make_worker(settings, keyring, metrics=first_metrics,
                                fault=stall_after_the_first_commit))  # fmt: skip
    second: Running | None = None
    try:
        assert wait_until(stalled.is_set, timeout_s=60)
        second = Running(make_worker(settings, keyring))
        expected = len({e["event_id"] for e in consented(events)})
        wait_for_rows(settings.data_dir, expected, timeout_s=90)
        release.set()
        assert wait_until(
            lambda: (
                first_metrics.registry.get_sample_value("flywheel_ingest_fenced_batches_total")
                == 1.0
                or not first.thread.is_alive()
            ),
            timeout_s=30,
        )
        assert first.failures == []
        assert retries(first_metrics, "rename") == 0
        exposed = generate_latest(first_metrics.registry).decode()
        assert 'flywheel_ingest_consumer_lag{partition="0"}' not in exposed
    finally:
        release.set()
        first.finish()
        if second is not None:
            second.finish()
    assert first.failures == [] and second.failures == []
    assert_exactly_once(settings.data_dir, events)


def test_a_worker_fenced_by_a_duplicate_instance_id_stops_with_one_line(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    """Two workers given the same FLYWHEEL_INGEST__INSTANCE_ID: the fenced one used to idle
    forever, reading nothing."""
    create_topics(kafka_settings)
    settings = worker_settings(kafka_settings, tmp_path / "data", instance_id="ingest-1")
    first = Running(make_worker(settings, keyring))
    second: Running | None = None
    try:
        assert wait_until(lambda: first.worker._ever_assigned, timeout_s=60)
        second = Running(make_worker(settings, keyring))
        first.thread.join(timeout=60)
        assert not first.thread.is_alive(), "the fenced worker is still running"
    finally:
        first.finish()
        if second is not None:
            second.finish()
    [error] = first.failures
    assert isinstance(error, KafkaError)
    assert "FLYWHEEL_INGEST__INSTANCE_ID=ingest-1" in str(error)
    assert "\n" not in str(error)


def recreate_topic(kafka: KafkaSettings) -> None:
    """Delete the events topic and create it again under the same name (a new topic id)."""
    admin = admin_client(kafka)
    try:
        admin.delete_topics([kafka.events_topic])
        assert wait_until(lambda: kafka.events_topic not in admin.list_topics(), timeout_s=60)
    finally:
        admin.close()
    assert wait_until(lambda: create_topics(kafka)[kafka.events_topic] == "created", timeout_s=60)


def test_a_topic_created_again_stops_the_worker_until_accepted(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    """The lake landed offsets 0 to 199 of the old topic; the new one holds 0 to 49. The worker
    used to seek to 200, be reset to 0, and land the new topic's events under file names of the
    old topic's (and skip, later, the new offsets the old files covered)."""
    kafka = kafka_settings.model_copy(update={"partitions": 1})
    create_topics(kafka)
    bootstrap, topic = kafka.bootstrap_servers or "", kafka.events_topic
    old, new = simulated(200, seed=71), simulated(50, seed=72)
    settings = worker_settings(kafka, tmp_path / "data")
    produce(bootstrap, topic, encoded(old))
    run_worker(settings, keyring)
    recreate_topic(kafka)
    produce(bootstrap, topic, encoded(new))

    with pytest.raises(KafkaError) as stopped:
        run_worker(settings, keyring)
    assert "topic id is" in str(stopped.value) and "--accept-topic" in str(stopped.value)
    assert "\n" not in str(stopped.value)
    assert_exactly_once(settings.data_dir, old)

    worker = make_worker(settings, keyring)
    worker.accept_topic = True
    worker.run(threading.Event(), idle_exit_s=4)
    assert_exactly_once(settings.data_dir, old + new)
    lake = Lake.in_data_dir(settings.data_dir)
    assert [r.lake_topic for r in lake.topic_records(topic)] == [topic, f"{topic}~2"]
    # Accepted once: the next run lands on without complaint.
    run_worker(settings, keyring)


def test_a_lake_without_topic_ids_still_sees_a_topic_created_again(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    """A lake landed before topic ids were recorded: the partition's end is behind the lake."""
    kafka = kafka_settings.model_copy(update={"partitions": 1})
    create_topics(kafka)
    bootstrap, topic = kafka.bootstrap_servers or "", kafka.events_topic
    settings = worker_settings(kafka, tmp_path / "data")
    old = simulated(200, seed=73)
    produce(bootstrap, topic, encoded(old))
    run_worker(settings, keyring)
    (Lake.in_data_dir(settings.data_dir).root / TOPICS_FILE).unlink(missing_ok=True)
    recreate_topic(kafka)
    produce(bootstrap, topic, encoded(simulated(50, seed=74)))

    with pytest.raises(KafkaError) as stopped:
        run_worker(settings, keyring)
    assert "partition 0 ends at offset 50, the lake landed it up to 199" in str(stopped.value)
    assert_exactly_once(settings.data_dir, old)


def test_messages_deleted_before_they_landed_stop_the_worker(
    kafka_settings: KafkaSettings, tmp_path: Path, keyring: Keyring
) -> None:
    """Retention (here: delete-records) moved the log start past the lake's resume point; the
    worker used to jump over the gap without a word."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    kafka = kafka_settings.model_copy(update={"partitions": 1})
    create_topics(kafka)
    bootstrap, topic = kafka.bootstrap_servers or "", kafka.events_topic
    settings = worker_settings(kafka, tmp_path / "data")
    first = simulated(100, seed=75)
    produce(bootstrap, topic, encoded(first))
    run_worker(settings, keyring)
    produce(bootstrap, topic, encoded(simulated(100, seed=76)))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 0, 150)]).values():
        future.result(timeout=30)

    with pytest.raises(KafkaError) as stopped:
        run_worker(settings, keyring)
    assert "offsets 100 to 149 were deleted before they landed" in str(stopped.value)
    assert_exactly_once(settings.data_dir, first)
