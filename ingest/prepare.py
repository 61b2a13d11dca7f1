"""Preparing a batch for landing: validate, dedupe, anonymise, write the temporary file.

This is the CPU-heavy half of landing, and it needs neither the Kafka consumer nor the commit.
``InlinePreparer`` (the default) runs it in the calling thread. ``ProcessPreparer``
(``FLYWHEEL_INGEST__PREPARE_IN_SUBPROCESS=true``) runs it in a helper process, so the main
process keeps reading while the previous batch is validated and written. That paid while the
worker read with kafka-python (reading was CPU-bound Python); with the native client, reading
costs little, and on two cores shared with the broker the records' trip to the helper and its
start-up cost more than the overlap gains (docs/benchmarks.md).

The preparer keeps each partition's dedupe window; the worker resets it on every assignment
(rebuilt from the lake) and drops it on revocation. Jobs run in submission order.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ingest.pipeline import DeadLetter, DedupeWindow, Pipeline, RawMessage, frame_users
from warehouse.lake import Lake

Record = tuple[int, bytes | None, bytes | None]
"""(offset, key, value) of one consumed message."""


@dataclass(frozen=True)
class Prepared:
    """A batch written under its temporary name, ready for the commit and the rename."""

    partition: int
    first_offset: int
    last_offset: int
    temporary: Path
    final: Path
    event_ids: list[str]
    dead_letters: list[DeadLetter]
    duplicates: int
    without_consent: int
    suppressed: int
    seconds: float
    users: frozenset[str]
    """The pseudonyms of the written events (checked again against erasures as it lands)."""


class BatchPreparer:
    """Does the preparing, wherever it runs; holds the dedupe windows."""

    def __init__(self, pipeline: Pipeline, lake: Lake, topic: str, window_size: int) -> None:
        self.pipeline = pipeline
        self.lake = lake
        self.topic = topic
        self.window_size = window_size
        self.windows: dict[int, DedupeWindow] = {}
        self.lake_topics: dict[int, str] = {}
        """The name each partition's files take in the lake (see ``warehouse.lake.TopicRecord``)."""

    def reset(self, partition: int, ids: Sequence[str], lake_topic: str | None = None) -> None:
        """Start a partition's window from these ids (the lake's newest), and name its files
        after ``lake_topic`` (default: the topic)."""
        self.windows[partition] = DedupeWindow(self.window_size, ids)
        self.lake_topics[partition] = lake_topic or self.topic

    def forget(self, partition: int) -> None:
        """Drop a partition's window (it moved to another worker)."""
        self.windows.pop(partition, None)

    def prepare(self, partition: int, records: Sequence[Record]) -> Prepared:
        """Validate, dedupe, anonymise and write one partition's batch under a temporary name."""
        started = time.perf_counter()
        messages = [RawMessage(self.topic, partition, o, k, v) for o, k, v in records]
        window = self.windows.setdefault(partition, DedupeWindow(self.window_size))
        batch = self.pipeline.process(messages, window)
        frame = self.pipeline.frame_or_dead_letter(batch)
        temporary, final = self.lake.write_temporary(
            frame,
            topic=self.lake_topics.get(partition, self.topic), partition=partition,
            first_offset=batch.first_offset, last_offset=batch.last_offset,
        )  # fmt: skip
        # Remembered once written; if the worker then loses the partition, the window is
        # rebuilt from the lake on the next assignment anyway.
        for event_id in batch.event_ids:
            window.add(event_id)
        return Prepared(
            partition=partition,
            first_offset=batch.first_offset,
            last_offset=batch.last_offset,
            temporary=temporary,
            final=final,
            event_ids=batch.event_ids,
            dead_letters=batch.dead_letters,
            duplicates=batch.duplicates,
            without_consent=batch.without_consent,
            suppressed=batch.suppressed,
            seconds=time.perf_counter() - started,
            users=frame_users(frame),
        )


class Preparer(Protocol):
    """Runs ``BatchPreparer`` jobs in submission order."""

    def reset(self, partition: int, ids: Sequence[str], lake_topic: str | None = None) -> None:
        """Queue a window reset for a partition."""
        ...

    def forget(self, partition: int) -> None:
        """Queue dropping a partition's window."""
        ...

    def submit(self, partition: int, records: Sequence[Record]) -> Future[Prepared]:
        """Queue preparing a batch."""
        ...

    def close(self) -> None:
        """Stop (after the queued jobs)."""
        ...


class InlinePreparer:
    """Prepares in the calling thread; ``submit`` returns a finished future."""

    def __init__(self, preparer: BatchPreparer) -> None:
        self.preparer = preparer

    def reset(self, partition: int, ids: Sequence[str], lake_topic: str | None = None) -> None:
        """Reset now."""
        self.preparer.reset(partition, ids, lake_topic)

    def forget(self, partition: int) -> None:
        """Forget now."""
        self.preparer.forget(partition)

    def submit(self, partition: int, records: Sequence[Record]) -> Future[Prepared]:
        """Prepare now."""
        future: Future[Prepared] = Future()
        try:
            future.set_result(self.preparer.prepare(partition, records))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        """Nothing to stop."""


_child: BatchPreparer | None = None


def _start_child(preparer: BatchPreparer) -> None:
    global _child
    _child = preparer


def _child_reset(partition: int, ids: Sequence[str], lake_topic: str | None) -> None:
    assert _child is not None
    _child.reset(partition, ids, lake_topic)


def _child_forget(partition: int) -> None:
    assert _child is not None
    _child.forget(partition)


def _child_prepare(partition: int, records: Sequence[Record]) -> Prepared:
    assert _child is not None
    return _child.prepare(partition, records)


class ProcessPreparer:
    """Prepares in one helper process (spawned: the parent runs kafka-python's threads)."""

    def __init__(self, preparer: BatchPreparer) -> None:
        import multiprocessing

        self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_child,
            initargs=(preparer,),
        )

    def reset(self, partition: int, ids: Sequence[str], lake_topic: str | None = None) -> None:
        """Queue a window reset (runs before any later batch of the partition)."""
        self.executor.submit(_child_reset, partition, list(ids), lake_topic)

    def forget(self, partition: int) -> None:
        """Queue dropping a window."""
        self.executor.submit(_child_forget, partition)

    def submit(self, partition: int, records: Sequence[Record]) -> Future[Prepared]:
        """Queue preparing a batch in the helper process."""
        return self.executor.submit(_child_prepare, partition, list(records))

    def close(self) -> None:
        """Finish the queued jobs and stop the helper process."""
        self.executor.shutdown(wait=True, cancel_futures=False)
