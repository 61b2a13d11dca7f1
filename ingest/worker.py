"""The ingest worker: a Kafka consumer-group member that lands micro-batches in the lake.

Exactly once, without transactions, the way Kafka Connect's HDFS and S3 sinks do it: the lake
is the source of truth for progress. Each landed file is named by (topic, partition, first
offset, last offset), so on every partition assignment the worker seeks to one past the highest
landed offset of that partition, whatever Kafka's committed offsets say.

Before seeking, the worker checks that the topic is the one the lake landed (its Kafka topic id)
and that each partition's log still holds the resume point (``_checked_topic``); otherwise it
stops and says how to accept the topic as it is now.

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

The consumer is confluent-kafka (librdkafka): it fetches in its own native threads and hands
over messages for about a third of kafka-python's CPU per message, which was most of a worker's
own cost of reading. The producers (the API's, dead letters, replay) stay kafka-python.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flywheel import kafka
from flywheel.errors import FlywheelError, KafkaAuthError, KafkaError, TransientError
from flywheel.settings import Settings
from ingest.deadletters import DeadLetterSink
from ingest.metrics import IngestMetrics
from ingest.pipeline import Pipeline, rename_batch
from ingest.prepare import (
    BatchPreparer,
    InlinePreparer,
    Prepared,
    Preparer,
    ProcessPreparer,
    Record,
)
from warehouse.lake import Lake, TopicRecord

log = logging.getLogger(__name__)

FaultHook = Callable[[str], None]
"""Called at named points of landing (``after_write``, ``after_commit``, ``after_rename``), so
crash tests can kill the process exactly there."""

_T = TypeVar("_T")

MAX_IN_FLIGHT = 2
"""Batches handed to the preparer and not finished yet: one being prepared, one queued."""

# Commit errors that mean "this member no longer owns the partition": the group moved on
# (a rebalance, a newer generation, a static member fenced) or the assignment was lost.
_FENCED_CODES = frozenset(
    {
        "ILLEGAL_GENERATION",
        "UNKNOWN_MEMBER_ID",
        "REBALANCE_IN_PROGRESS",
        "FENCED_INSTANCE_ID",
        "STALE_MEMBER_EPOCH",
        "FENCED_MEMBER_EPOCH",
        "_ASSIGNMENT_LOST",
        "_STATE",
    }
)


class CommitFencedError(Exception):
    """The commit was refused because the partition belongs to another member now."""


class _TemporaryGone(Exception):
    """A committed batch's temporary file vanished before its rename."""


@dataclass
class _Buffer:
    records: list[Record] = field(default_factory=list)
    size: int = 0
    since: float = 0.0


@dataclass
class _InFlight:
    partition: int
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
    suppressed: int = 0
    """Events of erased users dropped before landing."""
    lag: int = 0
    read: int = 0
    """Messages read from Kafka so far (a range read again after a rebalance counts again)."""

    @property
    def consumed(self) -> int:
        """Messages accounted for: landed, dead-lettered, or dropped."""
        return (
            self.landed + self.dead_letters + self.duplicates + self.without_consent
            + self.suppressed
        )  # fmt: skip


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
        accept_topic: bool = False,
        commit_landed: Callable[[], object] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = settings.kafka.events_topic
        self.accept_topic = accept_topic
        """Land the topic as it is now when it is not where the lake left it (see
        ``_checked_topic``), instead of stopping."""
        self.lake = lake
        self.pipeline = pipeline
        self.dead_letters = dead_letters
        self.metrics = metrics or IngestMetrics()
        self.fault = fault or (lambda point: None)
        self.commit_landed = commit_landed
        """Commits the landed files to the lake's table (``warehouse.table.LakeTable.commit``),
        every ``lake.commit_interval_s`` and once more before the worker stops; None: never
        (the transforms commit before they read)."""
        self._next_table_commit = 0.0
        self.stats = WorkerStats()
        self._buffers: dict[int, _Buffer] = {}
        self._in_flight: deque[_InFlight] = deque()
        self._owned: set[int] = set()
        self._consumer: Any = None
        self._preparer: Preparer | None = None
        self._stop = threading.Event()
        self._closing = False
        self._last_activity = time.monotonic()
        self._ever_assigned = False
        """Whether the group ever gave this worker a partition (the broker answered)."""
        self._fatal: FlywheelError | None = None
        self._unreachable = False  # librdkafka reported a broker it could not connect to
        """Why the consumer can no longer be used (a fatal client error), once it happened."""

    # -- Kafka -------------------------------------------------------------------------------

    def _make_consumer(self) -> Any:
        from confluent_kafka import Consumer

        kafka_settings, ingest = self.settings.kafka, self.settings.ingest
        config: dict[str, Any] = {
            "bootstrap.servers": kafka_settings.bootstrap_servers or "",
            "client.id": f"{kafka_settings.client_id}-ingest",
            "group.id": ingest.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": ingest.session_timeout_ms,
            "max.poll.interval.ms": ingest.max_poll_interval_ms,
            "socket.timeout.ms": max(kafka_settings.request_timeout_ms, 30_000),
            **kafka.security_config(kafka_settings, client="librdkafka"),
            # librdkafka logs through this logger instead of printing to stderr.
            "logger": logging.getLogger("ingest.kafka"),
            "error_cb": self._on_client_error,
        }
        if ingest.instance_id is not None:
            config["group.instance.id"] = ingest.instance_id
        try:
            return Consumer(config)
        except Exception as exc:
            raise kafka.translate(exc, action="connect") from None

    def _on_client_error(self, error: Any) -> None:
        if error.fatal():
            # The consumer is unusable from now on (it reads nothing and never rejoins): the
            # loop ends the run with this reason instead of idling.
            self._fatal = self._fatal or KafkaError(self._fatal_reason(error.name(), error.str()))
        elif error.name() in kafka.REFUSED_ERRORS:
            # librdkafka retries a refused sign-in or an untrusted certificate for ever, and the
            # worker would read nothing: the settings must change, so the run ends with that.
            self._fatal = self._fatal or kafka.refused(
                error.name(), error.str(), self.settings.kafka
            )
        elif error.name() in kafka.UNREACHABLE_ERRORS:
            self._unreachable = True
        # librdkafka reconnects by itself; the others are reports (a broker away), not failures.
        log.warning(
            "Kafka client error", extra={"fields": {"error": error.name(), "detail": error.str()}}
        )

    def _fatal_reason(self, name: str, detail: str) -> str:
        """The one line a fatal client error ends the run with."""
        instance = self.settings.ingest.instance_id
        if instance is not None and "FENCED" in f"{name} {detail}".upper():
            return (
                f"this worker was fenced out of consumer group {self.settings.ingest.group_id}: "
                f"another worker joined with the same FLYWHEEL_INGEST__INSTANCE_ID={instance}; "
                "give every worker its own instance id, then start this one again"
            )
        return (
            f"the Kafka consumer failed for good ({name}: {detail[:200]}); start the worker again"
        )

    def _tp(self, partition: int, offset: int | None = None) -> Any:
        from confluent_kafka import TopicPartition

        if offset is None:
            return TopicPartition(self.topic, partition)
        return TopicPartition(self.topic, partition, offset)

    @property
    def preparer(self) -> Preparer:
        """The preparer, started on first use."""
        assert self._preparer is not None, "run() starts the preparer"
        return self._preparer

    def _on_assigned(self, consumer: Any, assigned: list[Any]) -> None:
        from confluent_kafka import OFFSET_BEGINNING

        self._last_activity = time.monotonic()
        self._ever_assigned = True
        try:
            lake_topic = self._checked_topic(consumer, assigned).lake_topic
        except FlywheelError as exc:
            # librdkafka would only log an exception raised in this callback: the loop ends
            # the run with it, and nothing is assigned, so nothing is read.
            self._fatal = exc
            return
        landed = self.lake.landed_offsets(lake_topic)
        for tp in assigned:
            removed = self.lake.remove_temporary_files(lake_topic, tp.partition)
            tp.offset = landed[tp.partition] + 1 if tp.partition in landed else OFFSET_BEGINNING
            recent = self.lake.recent_event_ids(
                lake_topic, tp.partition, limit=self.settings.ingest.dedupe_window
            )
            self.preparer.reset(tp.partition, recent, lake_topic)
            self._buffers.pop(tp.partition, None)
            self._owned.add(tp.partition)
            log.info(
                "partition assigned",
                extra={"fields": {
                    "topic": self.topic, "partition": tp.partition,
                    "seek_to": landed.get(tp.partition, -1) + 1,
                    "dedupe_ids": len(recent), "stale_temp_files": removed,
                }},
            )  # fmt: skip
        # Starting positions come from the lake, never from Kafka's committed offsets.
        consumer.assign(assigned)

    def _checked_topic(self, consumer: Any, assigned: list[Any]) -> TopicRecord:
        """Where the topic lands in the lake, once Kafka's topic is the one the lake landed
        (its topic id) and every assigned partition's log still holds the lake's resume point.

        Otherwise seeking to the lake's offsets would land the wrong messages: on a topic
        deleted and created again, or a log truncated, Kafka resets the position to the start
        (landing again what landed, then skipping what the new offsets overlap); on a log whose
        start passed the resume point, what was deleted before landing is skipped silently.
        """
        topic_id = self._retrying("describe topic", self._topic_id)
        records = self.lake.topic_records(self.topic)
        if records:
            record = records[-1]
        else:
            # The first landing, or a lake from before topic ids were recorded: this topic is
            # the one from now on (the offsets below are still checked).
            record = self._retrying(
                "record topic", functools.partial(self.lake.record_topic, self.topic, topic_id)
            )
            log.info(
                "recorded the topic's id in the lake",
                extra={"fields": {"topic": self.topic, "topic_id": topic_id}},
            )
        problem = None
        if record.topic_id != topic_id:
            problem = (
                f"its topic id is {topic_id}, the lake's files came from {record.topic_id} (the "
                "topic was deleted and created again)"
            )
        else:
            landed = self.lake.landed_offsets(record.lake_topic)
            for tp in assigned:
                if tp.partition not in landed:
                    continue
                resume = landed[tp.partition] + 1
                low, high = self._retrying(
                    "watermarks", functools.partial(self._watermarks, consumer, tp.partition)
                )
                if resume > high:
                    problem = (
                        f"partition {tp.partition} ends at offset {high}, the lake landed it up "
                        f"to {resume - 1} (the topic was created again or its log truncated)"
                    )
                elif low > resume:
                    problem = (
                        f"partition {tp.partition} starts at offset {low}, the lake landed it up "
                        f"to {resume - 1}: offsets {resume} to {low - 1} were deleted before "
                        "they landed"
                    )
                if problem is not None:
                    break
        if problem is None:
            return record
        if not self.accept_topic:
            raise KafkaError(
                f"topic {self.topic} is not where the lake left it: {problem}; nothing was read. "
                "Once that is understood, run `flywheel ingest --accept-topic` once: it lands "
                "the topic as it is now from its first offset, under a name of its own beside "
                "the old files (docs/architecture.md, 'A topic created again')"
            )
        record = self._retrying(
            "record topic", functools.partial(self.lake.record_topic, self.topic, topic_id)
        )
        log.warning(
            "accepted the topic as it is now; it lands from its first offset under a new name",
            extra={"fields": {
                "topic": self.topic, "topic_id": topic_id, "lake_topic": record.lake_topic,
                "problem": problem,
            }},
        )  # fmt: skip
        return record

    def _watermarks(self, consumer: Any, partition: int) -> tuple[int, int]:
        """A partition's log start and end offsets, from the broker."""
        from confluent_kafka import KafkaException

        try:
            low, high = consumer.get_watermark_offsets(self._tp(partition), timeout=10)
        except KafkaException as exc:
            raise kafka.translate(exc, action="read offsets", topic=self.topic) from None
        return int(low), int(high)

    def _topic_id(self) -> str:
        """Kafka's id of the events topic (a topic created again under the same name has a new
        one)."""
        from confluent_kafka import KafkaException, TopicCollection
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap_servers or "",
                **kafka.security_config(self.settings.kafka, client="librdkafka"),
            }
        )
        try:
            described = admin.describe_topics(TopicCollection([self.topic]), request_timeout=10)
            return str(described[self.topic].result().topic_id)
        except KafkaException as exc:
            raise kafka.translate(exc, action="describe", topic=self.topic) from None

    def _on_revoked(self, consumer: Any, revoked: list[Any]) -> None:
        partitions = [tp.partition for tp in revoked]
        if self._closing:
            # Leaving after a failure: nothing more lands; the next owner re-reads.
            self._discard_in_flight(partitions)
        else:
            # Still a member of the old generation: batches already read can land (commit works).
            self._finish_in_flight(until_empty=True)
        self._drop(partitions, reason="partition revoked")

    def _on_lost(self, consumer: Any, lost: list[Any]) -> None:
        # No longer a member: nothing of these partitions may land (the commit would fail).
        partitions = [tp.partition for tp in lost]
        self._discard_in_flight(partitions)
        self._drop(partitions, reason="partition lost")

    def _drop(self, partitions: list[int], *, reason: str) -> None:
        """Forget unlanded buffers: the next owner re-reads them from the landed offset."""
        for partition in partitions:
            dropped = self._buffers.pop(partition, None)
            self._owned.discard(partition)
            self.preparer.forget(partition)
            if not self._closing:
                # Its lag is the new owner's to report; a frozen value here would be stale.
                with contextlib.suppress(KeyError):
                    self.metrics.lag.remove(str(partition))
            log.info(
                reason,
                extra={"fields": {
                    "topic": self.topic, "partition": partition,
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
        self._closing = False
        preparer = BatchPreparer(
            self.pipeline, self.lake, self.topic, self.settings.ingest.dedupe_window
        )
        if self.settings.ingest.prepare_in_subprocess:
            self._preparer = ProcessPreparer(preparer)
        else:
            self._preparer = InlinePreparer(preparer)
        self._consumer = self._make_consumer()
        self._consumer.subscribe(
            [self.topic], on_assign=self._on_assigned, on_revoke=self._on_revoked,
            on_lost=self._on_lost,
        )  # fmt: skip
        self._last_activity = time.monotonic()
        ingest = self.settings.ingest
        try:
            while not stop.is_set():
                try:
                    polled = self._consumer.consume(
                        num_messages=ingest.batch_max_events, timeout=self._poll_timeout_ms() / 1000
                    )
                except FlywheelError:
                    raise
                except Exception as exc:
                    error = kafka.translate(exc, action="poll", topic=self.topic)
                    if isinstance(error, KafkaAuthError):
                        raise error from None  # only new settings can help
                    self._retry_pause("poll", error)
                    continue
                if self._fatal is not None:
                    raise self._fatal
                now = time.monotonic()
                self._buffer(polled, now)
                for partition in list(self._buffers):
                    # Landing one batch can drop others (a fenced commit forgets its partition).
                    buffer = self._buffers.get(partition)
                    if (
                        buffer is not None
                        and buffer.records
                        and (
                            len(buffer.records) >= ingest.batch_max_events
                            or buffer.size >= ingest.batch_max_bytes
                            or (now - buffer.since) * 1000 >= ingest.batch_max_wait_ms
                        )
                    ):
                        self._submit(partition)
                self._finish_in_flight(until_empty=False)
                self._commit_table(now)
                self._update_lag()
                if on_progress is not None:
                    on_progress(self.stats)
                idle = not self._in_flight and not any(b.records for b in self._buffers.values())
                if idle_exit_s is not None and idle:
                    if time.monotonic() - self._last_activity >= idle_exit_s:
                        if not self._ever_assigned:
                            # No broker answered: try again later (exit 4, as `kafka init`);
                            # a broker answered but gave nothing: a topic or group to fix.
                            failure = TransientError if self._unreachable else KafkaError
                            raise failure(self._never_assigned(idle_exit_s))
                        break
            # Finish what was read: SIGTERM lands the current batches, then leaves the group.
            self._stop = threading.Event()
            for partition in list(self._buffers):
                if partition in self._buffers and self._buffers[partition].records:
                    self._submit(partition)
            self._finish_in_flight(until_empty=True)
            self._commit_table(None)
            if on_progress is not None:
                on_progress(self.stats)
        finally:
            self._closing = True
            try:
                self._consumer.close()
            finally:
                self.preparer.close()
                self.dead_letters.close()
        return self.stats

    def _commit_table(self, now: float | None) -> None:
        """Commit the landed files to the lake's table when the interval is up (``now`` None:
        at once). A failed commit is logged and tried again at the next interval: the files
        stay landed, and the worker's resume point is the lake, not the table."""
        if self.commit_landed is None or (now is not None and now < self._next_table_commit):
            return
        self._next_table_commit = time.monotonic() + self.settings.lake.commit_interval_s
        try:
            self.commit_landed()
        except FlywheelError as exc:
            log.warning(
                "could not commit the landed files to the lake's table; trying again later",
                extra={"fields": {"error": type(exc).__name__, "reason": str(exc)}},
            )

    def _never_assigned(self, waited_s: float) -> str:
        """Why a batch run (``idle_exit_s``) that never got a partition landed nothing."""
        return (
            f"no partition of {self.topic} was assigned to this worker in {waited_s:g} s, so "
            f"nothing was read: is Kafka reachable at {self.settings.kafka.bootstrap_servers} "
            "(FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS), and does the topic exist (`flywheel kafka "
            "init`)? A group with more workers than partitions also leaves some without one"
        )

    def _buffer(self, messages: list[Any], now: float) -> None:
        """Append consumed messages to their partition's buffer."""
        buffers, owned = self._buffers, self._owned
        for message in messages:
            error = message.error()
            if error is not None:
                self._message_error(error)
                continue
            partition = message.partition()
            if partition not in owned:
                continue  # fenced out; the partition is re-read from the lake once reassigned
            buffer = buffers.get(partition)
            if buffer is None:
                buffer = buffers[partition] = _Buffer(since=now)
            elif not buffer.records:
                buffer.since = now
            value = message.value()
            buffer.records.append((message.offset(), message.key(), value))
            buffer.size += len(value) if value is not None else 0
        if messages:
            self._last_activity = now
            self.stats.read += len(messages)

    def _message_error(self, error: Any) -> None:
        from confluent_kafka import KafkaError as ClientError
        from confluent_kafka import KafkaException

        if error.code() == ClientError._PARTITION_EOF:
            return
        if error.code() == ClientError._FATAL:
            # The consumer is unusable (a fenced static member); it would read nothing forever.
            raise KafkaError(self._fatal_reason(error.name(), error.str()))
        if error.fatal():
            raise kafka.translate(KafkaException(error), action="poll", topic=self.topic)
        log.warning(
            "Kafka consumer error; continuing",
            extra={"fields": {"error": error.name(), "detail": error.str()}},
        )

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

    def _retrying(self, action: str, fn: Callable[[], _T]) -> _T:
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

    def _submit(self, partition: int) -> None:
        buffer = self._buffers.pop(partition)
        future = self.preparer.submit(partition, buffer.records)
        self._in_flight.append(_InFlight(partition, buffer.records, future))
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
            self._finish(head.partition, prepared)

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
                job.future = self.preparer.submit(job.partition, job.records)

    def _discard_in_flight(self, partitions: list[int]) -> None:
        """Throw away prepared batches of partitions this worker no longer owns."""
        lost = set(partitions)
        keep: deque[_InFlight] = deque()
        for job in self._in_flight:
            if job.partition not in lost:
                keep.append(job)
                continue
            try:
                job.future.result().temporary.unlink(missing_ok=True)
            except Exception:
                pass  # nothing was written, or it is gone already
            self.metrics.fenced.inc()
        self._in_flight = keep

    def _commit(self, partition: int, next_offset: int) -> None:
        """Commit one partition's next offset, synchronously; ``CommitFencedError`` if fenced."""
        from confluent_kafka import KafkaException

        try:
            results = self._consumer.commit(
                offsets=[self._tp(partition, next_offset)], asynchronous=False
            )
            errors = [tp.error for tp in results or () if tp.error is not None]
            if errors:
                raise KafkaException(errors[0])
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if error is not None and hasattr(error, "name") and error.name() in _FENCED_CODES:
                raise CommitFencedError(error.name()) from None
            raise kafka.translate(exc, action="commit", topic=self.topic) from None

    def _finish(self, partition: int, prepared: Prepared) -> None:
        self.fault("after_write")
        self._retrying("dead-letter", lambda: self.dead_letters.send(prepared.dead_letters))
        try:
            self._retrying("commit", lambda: self._commit(partition, prepared.last_offset + 1))
        except CommitFencedError as fenced:
            # The partition belongs to another worker now, which re-reads this range.
            self._give_up(partition, prepared, reason="lost the partition before landing")
            if str(fenced) == "FENCED_INSTANCE_ID" and self._fatal is None:
                self._fatal = KafkaError(self._fatal_reason(str(fenced), "static member fenced"))
            return
        self.fault("after_commit")
        try:
            late = self._retrying("rename", self._publisher(prepared))
        except _TemporaryGone:
            # Only a partition's new owner removes its temporary files (on assignment): this
            # worker lost it while stuck between commit and rename, and the owner re-reads the
            # range from the lake. Retrying would never end.
            self._give_up(partition, prepared, reason="the partition's new owner removed the batch")
            return
        self.fault("after_rename")

        suppressed = prepared.suppressed + late
        landed = len(prepared.event_ids) - suppressed
        self.stats.landed += landed
        self.stats.files += 1
        self.stats.dead_letters += len(prepared.dead_letters)
        self.stats.duplicates += prepared.duplicates
        self.stats.without_consent += prepared.without_consent
        self.stats.suppressed += suppressed
        self.metrics.landed.inc(landed)
        self.metrics.duplicates.inc(prepared.duplicates)
        self.metrics.without_consent.inc(prepared.without_consent)
        self.metrics.suppressed.inc(suppressed)
        for letter in prepared.dead_letters:
            self.metrics.dead_letters.labels(letter.error_type).inc()
        self.metrics.batch_seconds.observe(prepared.seconds)
        log.info(
            "landed batch",
            extra={"fields": {
                "partition": partition, "first": prepared.first_offset,
                "last": prepared.last_offset, "events": landed,
                "dead_letters": len(prepared.dead_letters), "duplicates": prepared.duplicates,
                "without_consent": prepared.without_consent, "suppressed": suppressed,
                "file": prepared.final.name,
            }},
        )  # fmt: skip

    def _publisher(self, prepared: Prepared) -> Callable[[], int]:
        """The rename of a batch and the sync of its folder, as one retried step whose retries
        do not rename twice. The batch lands without users an erasure listed while it waited for
        its commit (``rename_batch``); the step returns how many events that removed."""
        renamed = False
        removed = 0

        def publish() -> int:
            nonlocal renamed, removed
            if not renamed:
                try:
                    removed = rename_batch(self.lake, self.pipeline.suppression,
                                           prepared.temporary, prepared.final,
                                           prepared.users)  # fmt: skip
                except FileNotFoundError:
                    if prepared.temporary.exists():
                        raise  # the folder, not the batch: retried like any other OSError
                    raise _TemporaryGone() from None
                renamed = True
            self.lake.sync_landed(prepared.final)
            return removed

        return publish

    def _give_up(self, partition: int, prepared: Prepared, *, reason: str) -> None:
        """Discard a batch of a partition this worker no longer owns, and stop reading it."""
        prepared.temporary.unlink(missing_ok=True)
        self.metrics.fenced.inc()
        self._on_lost(self._consumer, [self._tp(partition)])
        log.warning(
            f"{reason}; batch discarded, partition given up",
            extra={"fields": {
                "partition": partition, "first": prepared.first_offset,
                "last": prepared.last_offset,
            }},
        )  # fmt: skip

    def _update_lag(self) -> None:
        owned = sorted(self._owned)
        if not owned:
            self.stats.lag = 0
            return
        try:
            positions = self._consumer.position([self._tp(p) for p in owned])
        except Exception:
            return
        total = 0
        for tp in positions:
            if tp.offset < 0:
                continue  # nothing consumed since the assignment yet
            try:
                _, highwater = self._consumer.get_watermark_offsets(tp, cached=True)
            except Exception:
                continue
            if highwater is None or highwater < 0:
                continue
            buffer = self._buffers.get(tp.partition)
            lag = max(0, highwater - tp.offset + (len(buffer.records) if buffer else 0))
            self.metrics.lag.labels(str(tp.partition)).set(lag)
            total += lag
        self.stats.lag = total
