"""The dead-letter topic: poison messages with their original bytes, the reason and the source.

Each dead letter keeps the original key and value, and headers naming the error type, the
reason (field paths and rules, never event text), and the source topic, partition and offset.
A worker sends a batch's dead letters and waits for the broker's ack before it lands the batch;
a crash in between re-sends them, so the topic may hold one twice: ``list_dead_letters`` shows
each source offset once, and ``replay`` re-produces each source offset once per replay group.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from flywheel import kafka
from flywheel.errors import FlywheelError, TransientError
from flywheel.settings import KafkaSettings
from ingest.pipeline import DeadLetter

HEADER_PREFIX = "flywheel-"


class DeadLetterSink(Protocol):
    """Where a worker sends messages that can never land."""

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Return once every dead letter is durably stored."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemoryDeadLetters:
    """Keeps dead letters in a list (the twin for unit tests and embedded mode)."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Append them."""
        self.letters.extend(letters)

    def close(self) -> None:
        """Nothing to release."""


def headers_of(letter: DeadLetter, *, now: datetime | None = None) -> list[tuple[str, bytes]]:
    """The Kafka headers that describe a dead letter."""
    source = letter.message
    fields = {
        "error-type": letter.error_type,
        "reason": letter.reason,
        "source-topic": source.topic,
        "source-partition": str(source.partition),
        "source-offset": str(source.offset),
        "failed-at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
    }
    return [(HEADER_PREFIX + name, value.encode()) for name, value in fields.items()]


class KafkaDeadLetters:
    """Produces dead letters to the dead-letter topic with a durable producer."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: Any = None

    def _get_producer(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer

            config = kafka.producer_config(self.settings, client_suffix="dead-letters")
            try:
                self._producer = KafkaProducer(**config)
            except Exception as exc:
                raise kafka.connect_error(exc, self.settings) from None
            kafka.check_durable(self._producer)
        return self._producer

    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Produce every dead letter and wait for the broker's acks."""
        if not letters:
            return
        producer = self._get_producer()
        topic = self.settings.dead_letter_topic
        try:
            futures = [
                producer.send(
                    topic,
                    key=letter.message.key,
                    value=letter.message.value or b"",
                    headers=headers_of(letter),
                )
                for letter in letters
            ]
            for future in futures:
                future.get(timeout=self.settings.produce_timeout_s)
        except Exception as exc:
            # Even a permanent failure is retried: a poison message must stall, never vanish.
            raise TransientError(
                str(kafka.translate(exc, action="dead-letter", topic=topic))
            ) from None

    def close(self) -> None:
        """Flush and close the producer."""
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None


@dataclass(frozen=True)
class DeadLetterRecord:
    """One dead letter read back from the topic."""

    offset: int
    error_type: str
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    failed_at: str
    key: bytes | None
    value: bytes

    @property
    def source(self) -> tuple[str, int, int]:
        """Where the message came from: (topic, partition, offset)."""
        return (self.source_topic, self.source_partition, self.source_offset)


def _record(message: Any) -> DeadLetterRecord:
    headers: dict[str, str] = {name: value.decode() for name, value in message.headers or []}

    def header(name: str) -> str:
        return headers.get(HEADER_PREFIX + name, "")

    return DeadLetterRecord(
        offset=message.offset,
        error_type=header("error-type"),
        reason=header("reason"),
        source_topic=header("source-topic"),
        source_partition=int(header("source-partition") or -1),
        source_offset=int(header("source-offset") or -1),
        failed_at=header("failed-at"),
        key=message.key,
        value=message.value or b"",
    )


def _read_to_end(consumer: Any, topic: str, timeout_s: float) -> list[Any]:
    """Poll an assigned consumer until it reached the end offsets it saw at the start."""
    from kafka import TopicPartition

    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    ends = consumer.end_offsets(partitions)
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        if time.monotonic() > deadline:
            raise TransientError(f"reading {topic} did not finish within {timeout_s:.0f}s")
        for batch in consumer.poll(timeout_ms=500).values():
            messages.extend(batch)
    return messages


def _consumer(settings: KafkaSettings, group_id: str | None) -> Any:
    from kafka import KafkaConsumer

    config = kafka.consumer_config(settings, client_suffix="dead-letters", group_id=group_id)
    try:
        return KafkaConsumer(**config)
    except Exception as exc:
        raise kafka.connect_error(exc, settings) from None


def list_dead_letters(settings: KafkaSettings, *, timeout_s: float = 60) -> list[DeadLetterRecord]:
    """Every dead letter in the topic, each source offset once (the first copy)."""
    from kafka import TopicPartition

    consumer = _consumer(settings, None)
    try:
        topic = settings.dead_letter_topic
        if not consumer.partitions_for_topic(topic):
            raise FlywheelError(
                f"the dead-letter topic {topic} does not exist (flywheel kafka init)"
            )
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records: dict[tuple[str, int, int], DeadLetterRecord] = {}
        for message in _read_to_end(consumer, topic, timeout_s):
            record = _record(message)
            records.setdefault(record.source, record)
        return sorted(records.values(), key=lambda r: r.offset)
    finally:
        consumer.close()


def replay(
    settings: KafkaSettings,
    *,
    group_id: str = "flywheel-dead-letter-replay",
    select: Callable[[DeadLetterRecord], bool] | None = None,
    timeout_s: float = 60,
) -> int:
    """Re-produce dead letters (not yet replayed by ``group_id``) to the events topic.

    Their original bytes go back to the events topic with their original key, so after a fix
    (a contract change, a raised limit) the workers validate them again. The replay group's
    offsets are committed after the broker acknowledged the re-produced messages, so a second
    replay does not send them again (a filtered replay, with ``select``, commits nothing: it may
    send some again later, and the workers drop those by event id). Returns how many were sent.
    """
    from kafka import KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = _consumer(settings, group_id)
    try:
        producer = KafkaProducer(**kafka.producer_config(settings, client_suffix="replay"))
    except Exception as exc:
        consumer.close()
        raise kafka.connect_error(exc, settings) from None
    kafka.check_durable(producer)
    try:
        topic = settings.dead_letter_topic
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            raise FlywheelError(
                f"the dead-letter topic {topic} does not exist (flywheel kafka init)"
            )
        consumer.assign(partitions)
        committed = {tp: consumer.committed(tp) for tp in partitions}
        for tp, offset in committed.items():
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        seen: set[tuple[str, int, int]] = set()
        futures = []
        for message in _read_to_end(consumer, topic, timeout_s):
            record = _record(message)
            if record.source in seen or (select is not None and not select(record)):
                continue
            seen.add(record.source)
            futures.append(producer.send(settings.events_topic, key=record.key, value=record.value))
        for future in futures:
            future.get(timeout=settings.produce_timeout_s)
        if select is None:
            # Only a full replay moves the group on; a filtered one may be followed by another.
            consumer.commit(
                {tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in partitions}
            )
        return len(futures)
    except FlywheelError:
        raise
    except Exception as exc:
        raise kafka.translate(
            exc, action="replay dead letters", topic=settings.events_topic
        ) from None
    finally:
        producer.close(timeout=5)
        consumer.close()
