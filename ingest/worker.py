"""The ingest worker: a Kafka consumer-group member that lands micro-batches in the lake.

Exactly once, without transactions, the way Kafka Connect's HDFS and S3 sinks do it: the lake
is the source of truth for progress. Each landed file is named by (topic, partition, first
offset, last offset), so on every partition assignment the worker seeks to one past the highest
landed offset of that partition, whatever Kafka's committed offsets say.

Landing one partition's batch, in this order:

1. prepare (``ingest.prepare``, in a helper process by default): validate, drop duplicates,
   anonymise, write the Parquet file under a temporary name and fsync it;
2. send the batch's dead letters and wait for the broker's ack;
3. commit the next offset to Kafka: this is the fence. A worker that lost the partition in a
   rebalance (stuck, or a zombie after a network split) gets ``CommitFailedError`` here and
   throws its file away instead of landing a range the new owner lands too;
4. rename the file to its final name (the commit of record) and fsync the folder.

A crash before 4 leaves no file: the next owner re-reads the batch from Kafka. A crash after 4
leaves the file: the next owner seeks past it. Either way nothing is lost or landed twice.
Kafka's committed offsets are also what lag monitoring reads.

While the helper prepares batch N, the main process keeps polling; batches finish (steps 2-4)
in the order they were read, at most ``MAX_IN_FLIGHT`` at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from flywheel import kafka
from flywheel.errors import FlywheelError, TransientError
from flywheel.settings import Settings
from ingest.deadletters import DeadLetterSink
from ingest.metrics import IngestMetrics
from ingest.pipeline import Pipeline
from ingest.prepare import (
    BatchPreparer,
    InlinePreparer,
    Prepared,
    Preparer,
    ProcessPreparer,
    Record,
)
from warehouse.lake import Lake

log = logging.getLogger(__name__)

FaultHook = Callable[[str], None]
"""Called at named points of landing (``after_write``, ``after_commit``, ``after_rename``), so
crash tests can kill the process exactly there."""

MAX_IN_FLIGHT = 2
"""Batches handed to the preparer and not finished yet: one being prepared, one queued."""


@dataclass
class _Buffer:
    records: list[Record] = field(default_factory=list)
    size: int = 0
    since: float = 0.0


@dataclass
class _InFlight:
    tp: Any
    records: list[Record]
    future: Future[Prepared]


@dataclass
class WorkerStats:
    """Running totals, for the CLI's progress line."""

    landed: int = 0
    files: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    without_consent: int = 0
    lag: int = 0

    @property
    def consumed(self) -> int:
        """Messages accounted for: landed, dead-lettered, or dropped."""
        return self.landed + self.dead_letters + self.duplicates + self.without_consent


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
        self._in_flight: deque[_InFlight] = deque()
        self._consumer: Any = None
        self._preparer: Preparer | None = None
        self._stop = threading.Event()
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
                worker._on_lost(lost)

        return Listener()

    @property
    def preparer(self) -> Preparer:
        """The preparer, started on first use."""
        assert self._preparer is not None, "run() starts the preparer"
        return self._preparer

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
            self.preparer.reset(tp.partition, recent)
            log.info(
                "partition assigned",
                extra={"fields": {
                    "topic": self.topic, "partition": tp.partition,
                    "seek_to": landed.get(tp.partition, -1) + 1,
                    "dedupe_ids": len(recent), "stale_temp_files": removed,
                }},
            )  # fmt: skip

    def _on_revoked(self, revoked: Any) -> None:
        # Still a member of the old generation: batches already read can land (commit works).
        self._finish_in_flight(until_empty=True)
        self._drop(revoked, reason="partition revoked")

    def _on_lost(self, lost: Any) -> None:
        # No longer a member: nothing of these partitions may land (the commit would fail).
        self._discard_in_flight(lost)
        self._drop(lost, reason="partition lost")

    def _drop(self, partitions: Any, *, reason: str) -> None:
        """Forget unlanded buffers: the next owner re-reads them from the landed offset."""
        for tp in partitions:
            dropped = self._buffers.pop(tp, None)
            self.preparer.forget(tp.partition)
            log.info(
                reason,
                extra={"fields": {
                    "topic": self.topic, "partition": tp.partition,
                    "dropped_unlanded": len(dropped.records) if dropped else 0,
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
        self._stop = stop
        preparer = BatchPreparer(
            self.pipeline, self.lake, self.topic, self.settings.ingest.dedupe_window
        )
        if self.settings.ingest.prepare_in_subprocess:
            self._preparer = ProcessPreparer(preparer)
        else:
            self._preparer = InlinePreparer(preparer)
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
                    if not buffer.records:
                        buffer.since = now
                    for record in records:
                        buffer.records.append((record.offset, record.key, record.value))
                        buffer.size += len(record.value or b"")
                    self._last_activity = now
                for tp in list(self._buffers):
                    buffer = self._buffers[tp]
                    if buffer.records and (
                        len(buffer.records) >= ingest.batch_max_events
                        or buffer.size >= ingest.batch_max_bytes
                        or (now - buffer.since) * 1000 >= ingest.batch_max_wait_ms
                    ):
                        self._submit(tp)
                self._finish_in_flight(until_empty=False)
                self._update_lag()
                if on_progress is not None:
                    on_progress(self.stats)
                idle = not self._in_flight and not any(b.records for b in self._buffers.values())
                if idle_exit_s is not None and idle:
                    if time.monotonic() - self._last_activity >= idle_exit_s:
                        break
            # Finish what was read: SIGTERM lands the current batches, then leaves the group.
            self._stop = threading.Event()
            for tp in list(self._buffers):
                if self._buffers[tp].records:
                    self._submit(tp)
            self._finish_in_flight(until_empty=True)
            if on_progress is not None:
                on_progress(self.stats)
        finally:
            self._consumer.close(autocommit=False)
            self.preparer.close()
            self.dead_letters.close()
        return self.stats

    def _poll_timeout_ms(self) -> int:
        if self._in_flight:
            return 1  # a batch is being prepared: come back soon to finish it
        waits = [
            self.settings.ingest.batch_max_wait_ms - (time.monotonic() - b.since) * 1000
            for b in self._buffers.values()
            if b.records
        ]
        return int(max(1, min(waits, default=500)))

    def _retry_pause(self, action: str, error: FlywheelError, attempt: int = 1) -> None:
        pause = min(self.settings.ingest.retry_max_s, 0.2 * 2 ** min(attempt, 10))
        log.warning(
            f"{action} failed; retrying", extra={"fields": {"error": str(error), "pause_s": pause}}
        )
        self.metrics.retries.labels(action).inc()
        time.sleep(pause)

    def _retrying(self, action: str, fn: Callable[[], Any]) -> Any:
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
            if self._stop.is_set():
                raise error
            self._retry_pause(action, error, attempt)

    # -- landing -----------------------------------------------------------------------------

    def _submit(self, tp: Any) -> None:
        buffer = self._buffers.pop(tp)
        future = self.preparer.submit(tp.partition, buffer.records)
        self._in_flight.append(_InFlight(tp, buffer.records, future))
        if len(self._in_flight) > MAX_IN_FLIGHT:
            self._finish_in_flight(until_empty=False, at_least_one=True)

    def _finish_in_flight(self, *, until_empty: bool, at_least_one: bool = False) -> None:
        """Land prepared batches in the order they were read."""
        while self._in_flight:
            head = self._in_flight[0]
            if not (until_empty or at_least_one or head.future.done()):
                return
            at_least_one = False
            prepared = self._await(head)
            self._in_flight.popleft()
            self._finish(head.tp, prepared)

    def _await(self, job: _InFlight) -> Prepared:
        """The prepared batch; a transient failure (disk full) is retried by preparing again."""
        attempt = 0
        while True:
            try:
                return job.future.result()
            except (TransientError, OSError) as exc:
                attempt += 1
                error = (
                    exc
                    if isinstance(exc, TransientError)
                    else TransientError(f"{type(exc).__name__} (errno {exc.errno})")
                )
                if self._stop.is_set():
                    raise error from None
                self._retry_pause("write", error, attempt)
                job.future = self.preparer.submit(job.tp.partition, job.records)

    def _discard_in_flight(self, partitions: Any) -> None:
        """Throw away prepared batches of partitions this worker no longer owns."""
        lost = {tp.partition for tp in partitions}
        keep: deque[_InFlight] = deque()
        for job in self._in_flight:
            if job.tp.partition not in lost:
                keep.append(job)
                continue
            try:
                job.future.result().temporary.unlink(missing_ok=True)
            except Exception:
                pass  # nothing was written, or it is gone already
            self.metrics.fenced.inc()
        self._in_flight = keep

    def _finish(self, tp: Any, prepared: Prepared) -> None:
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata

        self.fault("after_write")
        self._retrying("dead-letter", lambda: self.dead_letters.send(prepared.dead_letters))

        def commit() -> None:
            try:
                self._consumer.commit({tp: OffsetAndMetadata(prepared.last_offset + 1, "", -1)})
            except CommitFailedError:
                raise
            except Exception as exc:
                raise kafka.translate(exc, action="commit", topic=self.topic) from None

        try:
            self._retrying("commit", commit)
        except CommitFailedError:
            # Fenced: the partition belongs to another worker now, which re-reads this range.
            prepared.temporary.unlink(missing_ok=True)
            self.metrics.fenced.inc()
            self._on_lost([tp])
            log.warning(
                "lost the partition before landing; batch discarded",
                extra={"fields": {"partition": tp.partition, "first": prepared.first_offset}},
            )
            return
        self.fault("after_commit")
        self._retrying("rename", lambda: self.lake.publish(prepared.temporary, prepared.final))
        self.fault("after_rename")

        landed = len(prepared.event_ids)
        self.stats.landed += landed
        self.stats.files += 1
        self.stats.dead_letters += len(prepared.dead_letters)
        self.stats.duplicates += prepared.duplicates
        self.stats.without_consent += prepared.without_consent
        self.metrics.landed.inc(landed)
        self.metrics.duplicates.inc(prepared.duplicates)
        self.metrics.without_consent.inc(prepared.without_consent)
        for letter in prepared.dead_letters:
            self.metrics.dead_letters.labels(letter.error_type).inc()
        self.metrics.batch_seconds.observe(prepared.seconds)
        log.info(
            "landed batch",
            extra={"fields": {
                "partition": tp.partition, "first": prepared.first_offset,
                "last": prepared.last_offset, "events": landed,
                "dead_letters": len(prepared.dead_letters), "duplicates": prepared.duplicates,
                "without_consent": prepared.without_consent, "file": prepared.final.name,
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
            buffered = len(self._buffers[tp].records) if tp in self._buffers else 0
            lag = max(0, highwater - position + buffered)
            self.metrics.lag.labels(str(tp.partition)).set(lag)
            total += lag
        self.stats.lag = total
