"""Embedded mode: the API's sink runs the ingest pipeline in-process, with no Kafka at all.

Each accepted request becomes one micro-batch of the pseudo-topic ``embedded`` (partition 0):
validated again, deduplicated, anonymised and landed in the lake before the API answers 202.
Everything downstream of the lake is the same as with Kafka. Offsets are the lake's own
sequence, so a restart continues where the lake ends. One process only: two processes serving
the same data dir in embedded mode would race for offsets.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from api.sink import EncodedEvent
from flywheel.errors import FlywheelError, SinkUnavailableError
from flywheel.settings import Settings
from ingest.keys import Keyring
from ingest.pipeline import DedupeWindow, Pipeline, RawMessage, build_pipeline
from warehouse.lake import Lake

EMBEDDED_TOPIC = "embedded"


class EmbeddedSink:
    """An ``EventSink`` that lands events in the lake itself."""

    def __init__(self, *, lake: Lake, pipeline: Pipeline, dedupe_window: int) -> None:
        self.lake = lake
        self.pipeline = pipeline
        self.dedupe_window = dedupe_window
        self._lock = threading.Lock()
        self._next_offset: int | None = None
        self._window = DedupeWindow(dedupe_window)
        self.landed = 0
        self.duplicates = 0
        self.without_consent = 0
        self.suppressed = 0

    def _start(self) -> int:
        if self._next_offset is None:
            self.lake.remove_temporary_files(EMBEDDED_TOPIC, 0)
            self._next_offset = self.lake.landed_offsets(EMBEDDED_TOPIC).get(0, -1) + 1
            recent = self.lake.recent_event_ids(EMBEDDED_TOPIC, 0, limit=self.dedupe_window)
            self._window = DedupeWindow(self.dedupe_window, recent)
        return self._next_offset

    def land(self, events: Sequence[EncodedEvent]) -> int:
        """Validate, anonymise and land the events as one batch; returns how many landed."""
        with self._lock:
            try:
                first = self._start()
            except OSError as exc:
                raise SinkUnavailableError(
                    f"could not read the lake ({type(exc).__name__}, errno {exc.errno})"
                ) from None
            messages = [
                RawMessage(EMBEDDED_TOPIC, 0, first + i, event.key, event.value)
                for i, event in enumerate(events)
            ]
            batch = self.pipeline.process(messages, self._window)
            if batch.dead_letters:
                # The API validated these with the same contract; this is a bug, not bad input.
                raise FlywheelError(
                    f"{len(batch.dead_letters)} events passed the API but not the pipeline"
                )
            self.duplicates += batch.duplicates
            self.without_consent += batch.without_consent
            if not batch.kept:
                return 0  # nothing new: the lake's own offsets need no file to move on
            try:
                self.lake.land(
                    self.pipeline.frame(batch), topic=EMBEDDED_TOPIC, partition=0,
                    first_offset=batch.first_offset, last_offset=batch.last_offset,
                )  # fmt: skip
            except OSError as exc:
                raise SinkUnavailableError(
                    f"could not write the lake ({type(exc).__name__}, errno {exc.errno})"
                ) from None
            self._next_offset = batch.last_offset + 1
            for event_id in batch.event_ids:
                self._window.add(event_id)
            self.suppressed += batch.suppressed
            self.landed += len(batch.kept) - batch.suppressed
            return len(batch.kept) - batch.suppressed

    async def publish(self, events: Sequence[EncodedEvent]) -> None:
        """Land the events before returning (in a thread: Parquet writing blocks)."""
        await asyncio.to_thread(self.land, events)

    async def ready(self) -> bool:
        """The lake is local; ready whenever its folder can be created."""
        try:
            self.lake.root.mkdir(parents=True, exist_ok=True)
            return True
        except OSError:
            return False

    def close(self) -> None:
        """Nothing to release."""


def embedded_sink(settings: Settings, keyring: Keyring) -> EmbeddedSink:
    """The embedded sink of a configuration: the data dir's lake, the configured pipeline."""
    return EmbeddedSink(
        lake=Lake.in_data_dir(settings.data_dir),
        pipeline=build_pipeline(settings, keyring),
        dedupe_window=settings.ingest.dedupe_window,
    )
