"""Erasure requests finished in the background of an API process.

``POST /v1/privacy/erasure`` logs the request and suppresses the users (``begin_erasure``, a
moment), then hands the rest (rewriting lake files, warehouse rows, dataset versions: minutes on a
large lake) to this queue and answers 202. The queue runs one request at a time in a thread of its
own; across processes (``serve --workers N``, a ``flywheel erase`` at the same time) the erasure
lock in ``flywheel.privacy`` keeps them one at a time.

As it starts, the app resumes the requests the log shows unfinished (a crash or a restart cut
them off, or they failed: the warehouse was busy, say), so that a request the API accepted is
finished without anyone sending it again. Every process of ``serve --workers N`` does so; the
first one to take the lock finishes a request and the others find it completed.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

from api.metrics import ApiMetrics
from flywheel.errors import FlywheelError
from flywheel.privacy import ErasureRecord, finish_erasure, unfinished_erasures
from flywheel.settings import Settings
from ingest.keys import Keyring, keyring_for

log = logging.getLogger(__name__)


class ErasureQueue:
    """Finishes erasure requests one at a time, in a background thread."""

    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="erasure")

    def submit(
        self, record: ErasureRecord, keyring: Keyring, *, resumed: bool = False
    ) -> Future[None]:
        """Finish ``record`` (which ``begin_erasure`` logged) after those queued before it."""
        return self._executor.submit(self._finish, record, keyring, resumed)

    def resume_unfinished(self) -> list[str]:
        """Queue the requests the log shows unfinished; their ids. None without a key file (the
        API then refuses erasures with 503 as well)."""
        if self._settings.privacy.hmac_key_file is None:
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
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _finish(self, record: ErasureRecord, keyring: Keyring, resumed: bool) -> None:
        fields = {"request": record.request, "resumed": resumed}
        log.info("erasure started", extra={"fields": fields})
        outcome = "failed"
        with self._metrics.erasure_seconds.time():
            try:
                finish_erasure(self._settings, record, keyring, resumed=resumed)
            except FlywheelError as exc:  # logged as failed; resumed at the next start
                log.warning("erasure failed", extra={"fields": {**fields, "error": str(exc)}})
            except Exception:  # a bug: logged as failed, the stack goes to the service's log
                log.exception("erasure failed", extra={"fields": fields})
            else:
                outcome = "completed"
                log.info("erasure completed", extra={"fields": fields})
        self._metrics.erasures.labels(outcome).inc()
