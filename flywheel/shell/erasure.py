"""Erasure: forget users everywhere the platform holds them, and keep them out from then on.

This walks every stage, so it lives in the shell; each stage keeps its own erase step
(``warehouse.erase`` for the lake and the warehouse, ``export.erasure`` for the datasets), and the
request log, the suppression list and the keys are ``privacy``'s.

``erase_users`` takes raw user ids and works only with their pseudonyms (under every key version
held), in this order:

1. the erasure log records the request (pseudonyms, never a raw id) and the suppression list
   gets the pseudonyms, so events arriving from now on are dropped at ingest
   (``privacy.requests.begin_erasure``);
2. the lake: files holding their events are rewritten without them (``warehouse.erase``);
3. the warehouse: their rows leave every table, derived ones included, and ``lake_files``
   row counts follow the rewritten files;
4. the datasets: versions holding them are replaced by a version without them and superseded
   (``export.erasure``);
5. the log records what was touched.

Step 1 takes a moment; steps 2 to 5 (``finish_erasure``) rewrite files and can take minutes, so
the API answers after step 1 and finishes the request in the background: the composition root
hands ``finish_erasure`` to the API's queue (``api.erasures``), which never imports the shell.
One erasure of a data dir runs at a time, from the CLI or any API process (a lock file beside
the log).

Every step is idempotent, so an erasure that crashed or failed halfway (the warehouse busy with a
transform run, say) is finished by running it again, or by resuming the request
(``unfinished_erasures``, then ``finish_erasure(..., resumed=True)``: ``flywheel erase
--unfinished``, and every API process as it starts); the log then shows both attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from flywheel.settings import Settings
from privacy.keys import Keyring
from privacy.requests import (
    ErasureRecord,
    add_logged_steps,
    begin_erasure,
    completed_record,
    erasure_status,
    note_completed,
    note_failed,
    note_resumed,
    note_step,
    one_erasure_at_a_time,
)
from privacy.suppression import add_suppressed, suppression_file


def erase_users(
    settings: Settings,
    raw_ids: list[str],
    keyring: Keyring,
    *,
    fault: Callable[[str], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ErasureRecord:
    """Erase the users ``raw_ids`` from lake, warehouse and datasets; suppress their future
    events; log it. Raises ``FlywheelError`` for a bad request (no ids, too many)."""
    record = begin_erasure(settings, raw_ids, keyring)
    finished = finish_erasure(settings, record, keyring, fault=fault, on_step=on_step)
    # None: an API process resuming unfinished requests took this one first and completed it.
    return finished or completed_record(settings.data_dir, record.request)


def finish_erasure(
    settings: Settings,
    record: ErasureRecord,
    keyring: Keyring,
    *,
    fault: Callable[[str], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    resumed: bool = False,
) -> ErasureRecord | None:
    """Steps 2 to 5 of an erasure ``begin_erasure`` logged: the lake, the warehouse, the
    datasets, and the outcome in the log (a resumed request makes sure of its users'
    suppression first: step 1 may be what failed). One erasure of a data dir at a time:
    this waits for any other to end. None if the log shows the request completed meanwhile (by
    another process): it is not run again.

    ``resumed``: a request ``unfinished_erasures`` found; the log notes that it was resumed."""
    from export.catalog import open_catalog
    from export.erasure import erase_from_datasets
    from warehouse.db import compact, connected, warehouse_path
    from warehouse.erase import erase_from_lake, erase_from_warehouse, refresh_lake_file_rows
    from warehouse.lake import open_lake
    from warehouse.table import LakeTable, drop_models

    step = on_step or (lambda _: None)
    crash = fault or (lambda _: None)
    data_dir = settings.data_dir
    pseudonyms = record.all_pseudonyms()
    step("waiting for another erasure to end")
    with one_erasure_at_a_time(data_dir):
        if erasure_status(data_dir, record.request).get("status") == "completed":
            return None
        if resumed:
            note_resumed(data_dir, record.request)
        try:
            if resumed:  # step 1 may be what failed
                record.newly_suppressed = add_suppressed(suppression_file(data_dir), pseudonyms)
            step("rewriting lake files")
            lake = open_lake(settings)
            rewrites = erase_from_lake(lake, pseudonyms, LakeTable.of(settings, lake))
            note_step(
                data_dir, record.request, "lake",
                lake_files_rewritten=[asdict(r) for r in rewrites],
                lake_events_removed=sum(r.removed for r in rewrites),
            )  # fmt: skip
            crash("erase_after_lake")
            if warehouse_path(data_dir).exists():
                step("deleting warehouse rows")
                with connected(data_dir, action="erase from") as db:
                    deleted = erase_from_warehouse(db, pseudonyms)
                    refresh_lake_file_rows(db, lake)
                    # Deleted rows keep their bytes in the file until DuckDB reuses the space.
                    step("compacting the warehouse")
                    compact(db, warehouse_path(data_dir))
                note_step(data_dir, record.request, "warehouse", warehouse_rows_deleted=deleted)
            crash("erase_after_warehouse")
            # The Spark engine's tables (docs/spark.md): dropped with their files; the next
            # Spark run builds them again from the erased lake.
            step("dropping the Spark engine's model tables")
            dropped = drop_models(LakeTable.of(settings, lake))
            if dropped:
                note_step(data_dir, record.request, "spark_models", tables_dropped=dropped)
            step("replacing dataset versions")
            datasets = erase_from_datasets(
                data_dir, pseudonyms, keyring, request_id=record.request,
                delete_files=settings.privacy.delete_superseded_files,
                catalog=open_catalog(settings),
            )  # fmt: skip
            note_step(data_dir, record.request, "datasets", datasets=[asdict(d) for d in datasets])
        except Exception as exc:
            note_failed(data_dir, record.request, exc)
            raise
        # What every attempt did: a resumed request's earlier attempts did part of the work.
        add_logged_steps(data_dir, record)
        record.kafka_raw_until = kafka_raw_until(settings, started_at=record.started_at)
        note_completed(data_dir, record)
    return record


def kafka_raw_until(settings: Settings, *, started_at: str) -> list[dict[str, Any]]:
    """Until when the Kafka topics keep raw events sent before an erasure that started at
    ``started_at``: Kafka deletes records by age only, so the events and dead-letter topics keep
    the users' raw ids and unscrubbed texts until retention passes. The broker's ``retention.ms``
    when it answers, else the settings' (``source`` says which); [] without Kafka."""
    if settings.kafka.bootstrap_servers is None:
        return []
    from flywheel.kafka import topic_retention_ms

    configured = {
        settings.kafka.events_topic: settings.kafka.events_retention_ms,
        settings.kafka.dead_letter_topic: settings.kafka.dead_letter_retention_ms,
    }
    started = datetime.fromisoformat(started_at)
    remaining = []
    for topic, setting in configured.items():
        try:
            retention, source = topic_retention_ms(settings.kafka, topic), "broker"
        except Exception:  # noqa: BLE001 - a broker that does not answer: say what is configured
            retention = None
        if retention is None:
            retention, source = setting, "settings"
        until = None if retention < 0 else (started + timedelta(milliseconds=retention))
        remaining.append({
            "topic": topic, "retention_ms": retention, "source": source,
            "until": until.isoformat(timespec="seconds") if until else "never (retention -1)",
        })  # fmt: skip
    return remaining
