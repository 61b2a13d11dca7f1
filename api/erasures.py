"""Erasure requests finished in the background of an API process.

``POST /v1/privacy/erasure`` logs the request and suppresses the users (``begin_erasure``, a
moment), then hands the rest (rewriting lake files, warehouse rows, dataset versions: minutes on a
large lake) to this queue and answers 202. The queue runs one request at a time in a thread of its
own; across processes (``serve --workers N``, a ``flywheel erase`` at the same time) the erasure
lock in ``privacy.requests`` keeps them one at a time.

What finishes a request walks the lake, the warehouse and the datasets, so it belongs to the
shell, which the API never imports: the composition root passes it in (``ErasureRunner``, as it
passes the event sink). An app built without one refuses erasure requests with 503.

As it starts, the app resumes the requests the log shows unfinished (a crash or a restart cut
them off, or they failed: the warehouse was busy, say), so that a request the API accepted is
finished without anyone sending it again. Every process of ``serve --workers N`` does so; the
first one to take the lock finishes a request and the others find it completed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from api.metrics import ApiMetrics
from flywheel.errors import ConfigError, ExportBusyError, FlywheelError, WarehouseBusyError
from flywheel.settings import Settings
from privacy.keys import Keyring, keyring_for
from privacy.requests import ErasureRecord, note_retry, unfinished_erasures

log = logging.getLogger(__name__)

BUSY_RETRIES_S = (30.0, 60.0, 120.0, 300.0, *(600.0,) * 10)
"""Pauses before trying a request again while the warehouse or a dataset is busy: about two
hours in all, then it stays failed until the API next starts."""
NO_RUNNER = "this API process cannot finish erasure requests (create_app got no erasure runner)"


class ErasureRunner(Protocol):
    """Finishes a request ``begin_erasure`` logged (``flywheel.shell.erasure.finish_erasure``):
    None if another process completed it meanwhile."""

    def __call__(
        self, settings: Settings, record: ErasureRecord, keyring: Keyring, *, resumed: bool = ...
    ) -> ErasureRecord | None: ...


class ErasureQueue:
    """Finishes erasure requests one at a time, in a background thread."""

    def __init__(
        self,
        settings: Settings,
        metrics: ApiMetrics,
        run: ErasureRunner | None,
        *,
        busy_retries_s: Sequence[float] = BUSY_RETRIES_S,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._run = run
        self._busy_retries_s = tuple(busy_retries_s)
        self._closing = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="erasure")

    def start(self) -> None:
        """Accept requests again after ``close`` (an app's lifespan may run more than once, as
        test clients do); a no-op on a queue that was never closed."""
        if self._closing.is_set():
            self._closing = threading.Event()
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="erasure")

    @property
    def finishes(self) -> bool:
        """Whether this queue was given what finishes requests (else the API refuses them)."""
        return self._run is not None

    def submit(
        self, record: ErasureRecord, keyring: Keyring, *, resumed: bool = False
    ) -> Future[None]:
        """Finish ``record`` (which ``begin_erasure`` logged) after those queued before it."""
        return self._executor.submit(self._finish, record, keyring, resumed)

    def resume_unfinished(self) -> list[str]:
        """Queue the requests the log shows unfinished; their ids (none without a key file or a
        runner: the API then refuses erasures with 503 as well)."""
        if self._settings.privacy.hmac_key_file is None or self._run is None:
            return []
        unfinished = unfinished_erasures(self._settings.data_dir)
        if not unfinished:
            return []
        try:
            keyring = keyring_for(self._settings)
        except FlywheelError as exc:
            log.error("unfinished erasures not resumed", extra={"fields": {"error": str(exc)}})
            return []
        for record in unfinished:
            self.submit(record, keyring, resumed=True)
        return [record.request for record in unfinished]

    def close(self) -> None:
        """Let the request being finished end (each step is atomic, but a rewrite cut off is
        redone from the start); those still queued stay unfinished in the log, and the next
        start resumes them."""
        self._closing.set()  # a request waiting to retry stops waiting (and stays unfinished)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _finish(self, record: ErasureRecord, keyring: Keyring, resumed: bool) -> None:
        fields = {"request": record.request, "resumed": resumed}
        log.info("erasure started", extra={"fields": fields})
        started = time.perf_counter()
        try:
            finished = self._finish_when_free(record, keyring, resumed=resumed)
        except FlywheelError as exc:  # logged as failed; resumed at the next start
            log.warning("erasure failed", extra={"fields": {**fields, "error": str(exc)}})
            outcome = "failed"
        except Exception:  # a bug: logged as failed, the stack goes to the service's log
            log.exception("erasure failed", extra={"fields": fields})
            outcome = "failed"
        else:
            if finished is None:  # another process (of serve --workers N) completed it
                log.info("erasure completed elsewhere", extra={"fields": fields})
                return
            outcome = "completed"
            log.info("erasure completed", extra={"fields": fields})
        self._metrics.erasure_seconds.observe(time.perf_counter() - started)
        self._metrics.erasures.labels(outcome).inc()

    def _finish_when_free(
        self, record: ErasureRecord, keyring: Keyring, *, resumed: bool
    ) -> ErasureRecord | None:
        """``finish_erasure``, tried again after a pause while a transform run or an export
        holds the warehouse or a dataset (they are scheduled every few minutes; the lake step
        before is done and stays done). Each try is in the erasure log."""
        if self._run is None:
            raise ConfigError(NO_RUNNER)
        pauses = iter(self._busy_retries_s)
        while True:
            try:
                return self._run(self._settings, record, keyring, resumed=resumed)
            except (WarehouseBusyError, ExportBusyError) as exc:
                pause = next(pauses, None)
                if pause is None or self._closing.is_set():
                    raise
                note_retry(self._settings.data_dir, record.request, in_seconds=pause)
                if self._closing.wait(pause):
                    raise
                log.info("erasure waits for the warehouse",
                         extra={"fields": {"request": record.request, "retry_in_s": pause,
                                           "error": str(exc)}})  # fmt: skip
                resumed = True
