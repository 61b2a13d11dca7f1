"""The ingest worker: a Kafka consumer-group member that lands micro-batches in the lake.

Exactly once, without transactions, the way Kafka Connect's HDFS and S3 sinks do it: the lake
is the source of truth for progress. Each landed file is named by (topic, partition, first
offset, last offset), so on every partition assignment the worker seeks to one past the highest
landed offset of that partition, whatever Kafka's committed offsets say.

Landing one partition's batch, in this order:

1. validate, drop duplicates (a window of recent event ids), anonymise;
2. send the batch's dead letters and wait for the broker's ack;
3. write the Parquet file under a temporary name and fsync it;
4. commit the next offset to Kafka: this is the fence. A worker that lost the partition in a
   rebalance (stuck, or a zombie after a network split) gets ``CommitFailedError`` here and
   throws its file away instead of landing a range the new owner lands too;
5. rename the file to its final name (the commit of record) and fsync the folder.

A crash before 5 leaves no file: the next owner re-reads the batch from Kafka. A crash after 5
leaves the file: the next owner seeks past it. Either way nothing is lost or landed twice.
Kafka's committed offsets are also what lag monitoring reads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flywheel import kafka
from flywheel.errors import FlywheelError, TransientError
from flywheel.settings import Settings
from ingest.deadletters import DeadLetterSink
from ingest.metrics import IngestMetrics
from ingest.pipeline import DedupeWindow, Pipeline, RawMessage
from warehouse.lake import Lake

log = logging.getLogger(__name__)

FaultHook = Callable[[str], None]
"""Called at named points of landing (``after_write``, ``after_commit``, ``after_rename``), so
crash tests can kill the process exactly there."""


@dataclass
class _Buffer:
    messages: list[RawMessage] = field(default_factory=list)
    size: int = 0
    since: float = 0.0


@dataclass
class WorkerStats:
    """Running totals, for the CLI's progress line."""

    landed: int = 0
    files: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    lag: int = 0


class IngestWorker:
    """Consumes the events topic and lands anonymised micro-batches in the lake."""

    def __init__(
        self,
        *,
        settings: Settings,
        lake: Lake,
        pipeline: Pipeline,
        dead_letters: DeadLetterSink,
        metrics: IngestMetrics | None = None,
        fault: FaultHook | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.kafka.events_topic
        self.lake = lake
        self.pipeline = pipeline
        self.dead_letters = dead_letters
        self.metrics = metrics or IngestMetrics()
        self.fault = fault or (lambda point: None)
        self.stats = WorkerStats()
        self._buffers: dict[Any, _Buffer] = {}
        self._windows: dict[Any, DedupeWindow] = {}
        self._consumer: Any = None
        self._last_activity = time.monotonic()

    # -- Kafka -------------------------------------------------------------------------------

    def _make_consumer(self) -> Any:
        from kafka import KafkaConsumer

        kafka_settings, ingest = self.settings.kafka, self.settings.ingest
        try:
            return KafkaConsumer(
                bootstrap_servers=(kafka_settings.bootstrap_servers or "").split(","),
                client_id=f"{kafka_settings.client_id}-ingest",
                group_id=ingest.group_id,
                group_instance_id=ingest.instance_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=ingest.batch_max_events,
                session_timeout_ms=ingest.session_timeout_ms,
                max_poll_interval_ms=ingest.max_poll_interval_ms,
                request_timeout_ms=max(kafka_settings.request_timeout_ms, 30_000),
            )
        except Exception as exc:
            raise kafka.translate(exc, action="connect") from None

    def _listener(self) -> Any:
        from kafka import ConsumerRebalanceListener

        worker = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                worker._on_revoked(revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                worker._on_assigned(assigned)

            def on_partitions_lost(self, lost: Any) -> None:
                worker._on_revoked(lost)

        return Listener()

    def _on_assigned(self, assigned: Any) -> None:
        self._last_activity = time.monotonic()
        landed = self.lake.landed_offsets(self.topic)
        for tp in assigned:
            removed = self.lake.remove_temporary_files(self.topic, tp.partition)
            if tp.partition in landed:
                self._consumer.seek(tp, landed[tp.partition] + 1)
            else:
                self._consumer.seek_to_beginning(tp)
            recent = self.lake.recent_event_ids(
                self.topic, tp.partition, limit=self.settings.ingest.dedupe_window
            )
            self._windows[tp] = DedupeWindow(self.settings.ingest.dedupe_window, recent)
            log.info(
                "partition assigned",
                extra={"fields": {
                    "topic": self.topic, "partition": tp.partition,
                    "seek_to": landed.get(tp.partition, -1) + 1,
                    "dedupe_ids": len(recent), "stale_temp_files": removed,
                }},
            )  # fmt: skip

    def _on_revoked(self, revoked: Any) -> None:
        # Unlanded buffers are dropped: the next owner re-reads them from the landed offset.
        for tp in revoked:
            dropped = self._buffers.pop(tp, None)
            self._windows.pop(tp, None)
            log.info(
                "partition revoked",
                extra={"fields": {
                    "topic": self.topic, "partition": tp.partition,
                    "dropped_unlanded": len(dropped.messages) if dropped else 0,
                }},
            )  # fmt: skip

    # -- the loop ----------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        *,
        idle_exit_s: float | None = None,
        on_progress: Callable[[WorkerStats], None] | None = None,
    ) -> WorkerStats:
        """Consume and land until ``stop`` is set, or until nothing arrived for ``idle_exit_s``
        since the last message or partition assignment."""
        self._consumer = self._make_consumer()
        self._consumer.subscribe([self.topic], listener=self._listener())
        self._last_activity = time.monotonic()
        ingest = self.settings.ingest
        try:
            while not stop.is_set():
                try:
                    polled = self._consumer.poll(timeout_ms=self._poll_timeout_ms())
                except Exception as exc:
                    self._retry_pause("poll", kafka.translate(exc, action="poll", topic=self.topic))
                    continue
                now = time.monotonic()
                for tp, records in polled.items():
                    buffer = self._buffers.setdefault(tp, _Buffer(since=now))
                    if not buffer.messages:
                        buffer.since = now
                    for record in records:
                        buffer.messages.append(
                            RawMessage(self.topic, tp.partition, record.offset, record.key,
                                       record.value)
                        )  # fmt: skip
                        buffer.size += len(record.value or b"")
                    self._last_activity = now
                for tp in list(self._buffers):
                    buffer = self._buffers[tp]
                    if buffer.messages and (
                        len(buffer.messages) >= ingest.batch_max_events
                        or buffer.size >= ingest.batch_max_bytes
                        or (now - buffer.since) * 1000 >= ingest.batch_max_wait_ms
                    ):
                        self._land(tp, stop)
                self._update_lag()
                if on_progress is not None:
                    on_progress(self.stats)
                if idle_exit_s is not None and not any(b.messages for b in self._buffers.values()):
                    if time.monotonic() - self._last_activity >= idle_exit_s:
                        break
            # Finish what was read: SIGTERM lands the current batches, then leaves the group.
            for tp in list(self._buffers):
                if self._buffers[tp].messages:
                    self._land(tp, threading.Event())
        finally:
            self._consumer.close(autocommit=False)
            self.dead_letters.close()
        return self.stats

    def _poll_timeout_ms(self) -> int:
        waits = [
            self.settings.ingest.batch_max_wait_ms - (time.monotonic() - b.since) * 1000
            for b in self._buffers.values()
            if b.messages
        ]
        return int(max(1, min(waits, default=500)))

    def _retry_pause(self, action: str, error: FlywheelError, attempt: int = 1) -> None:
        pause = min(self.settings.ingest.retry_max_s, 0.2 * 2 ** min(attempt, 10))
        log.warning(
            f"{action} failed; retrying", extra={"fields": {"error": str(error), "pause_s": pause}}
        )
        self.metrics.retries.labels(action).inc()
        time.sleep(pause)

    def _retrying(self, action: str, stop: threading.Event, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` until it succeeds, retrying transient failures (never dead-lettering)."""
        attempt = 0
        while True:
            try:
                return fn()
            except TransientError as exc:
                error: FlywheelError = exc
            except OSError as exc:  # disk full, permissions flapping on network storage
                error = TransientError(f"{type(exc).__name__} (errno {exc.errno})")
            attempt += 1
            if stop.is_set():
                raise error
            self._retry_pause(action, error, attempt)

    def _land(self, tp: Any, stop: threading.Event) -> None:
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata

        buffer = self._buffers.pop(tp)
        window = self._windows.setdefault(tp, DedupeWindow(self.settings.ingest.dedupe_window))
        started = time.perf_counter()
        batch = self.pipeline.process(buffer.messages, window)
        frame = self.pipeline.frame(batch)
        self._retrying("dead-letter", stop, lambda: self.dead_letters.send(batch.dead_letters))
        temporary, final = self._retrying(
            "write",
            stop,
            lambda: self.lake.write_temporary(
                frame, topic=self.topic, partition=tp.partition,
                first_offset=batch.first_offset, last_offset=batch.last_offset,
            ),
        )  # fmt: skip
        self.fault("after_write")

        def commit() -> None:
            try:
                self._consumer.commit({tp: OffsetAndMetadata(batch.last_offset + 1, "", -1)})
            except CommitFailedError:
                raise
            except Exception as exc:
                raise kafka.translate(exc, action="commit", topic=self.topic) from None

        try:
            self._retrying("commit", stop, commit)
        except CommitFailedError:
            # Fenced: the partition belongs to another worker now, which re-reads this range.
            temporary.unlink(missing_ok=True)
            self._on_revoked([tp])
            self.metrics.fenced.inc()
            log.warning(
                "lost the partition before landing; batch discarded",
                extra={"fields": {"partition": tp.partition, "first": batch.first_offset}},
            )
            return
        self.fault("after_commit")
        self._retrying("rename", stop, lambda: self.lake.publish(temporary, final))
        self.fault("after_rename")

        for event_id in batch.event_ids:
            window.add(event_id)
        self.stats.landed += len(batch.kept)
        self.stats.files += 1
        self.stats.dead_letters += len(batch.dead_letters)
        self.stats.duplicates += batch.duplicates
        self.metrics.landed.inc(len(batch.kept))
        self.metrics.duplicates.inc(batch.duplicates)
        for letter in batch.dead_letters:
            self.metrics.dead_letters.labels(letter.error_type).inc()
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        log.info(
            "landed batch",
            extra={"fields": {
                "partition": tp.partition, "first": batch.first_offset, "last": batch.last_offset,
                "events": len(batch.kept), "dead_letters": len(batch.dead_letters),
                "duplicates": batch.duplicates, "file": final.name,
            }},
        )  # fmt: skip

    def _update_lag(self) -> None:
        total = 0
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = self._consumer.position(tp, timeout_ms=0)
            except Exception:
                continue
            if position is None:
                continue
            buffered = len(self._buffers[tp].messages) if tp in self._buffers else 0
            lag = max(0, highwater - position + buffered)
            self.metrics.lag.labels(str(tp.partition)).set(lag)
            total += lag
        self.stats.lag = total
