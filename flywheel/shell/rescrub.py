"""Rescrub: the lake's landed texts scrubbed again by the current scrubber, after it learned to
find more, and everything built from the old texts replaced.

A scrubber improvement (a new detector, a pattern that now catches more) protects the events
that land from then on; the events already in the lake keep what the old scrubber missed.
``rescrub_lake`` walks the stages, like an erasure (``flywheel.shell.erasure``), each stage
keeping its own step:

1. the lake: the files the current scrubber would change are found (``warehouse.rescrub``) and
   logged (``started``, with each file's counts per kind) before any is rewritten;
2. each is rewritten in place (renamed over, or uploaded again whole), and the lake's table
   records them again in one snapshot (their sizes changed, not their names or rows);
3. the warehouse forgets the events loaded from them and clears the models' state, so the next
   transform run loads them again and rebuilds every model from the clean texts; the Spark
   engine's model tables are dropped, as an erasure drops them;
4. the datasets: every version with a text the scrubber now finds something in is superseded as
   an erasure supersedes one (``export.erasure.supersede_versions_holding``), by the latest
   version if that one is clean, else ``withdrawn`` until the next export;
5. the log records the outcome (``completed``).

The log is ``<data dir>/privacy/rescrub-log.jsonl`` (JSON Lines: when, the scrubber's
fingerprint, the files and how many values of each kind were replaced; never a value). A rescrub
cut off anywhere is finished by running the command again: the files of a logged rescrub with no
outcome go through steps 2 to 4 again (the rewrite finds them clean and leaves them), then the
lake is searched afresh. It runs under the erasure lock, since both rewrite lake files.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter as MetricCounter
from prometheus_client import Histogram

from flywheel.settings import Settings
from privacy.keys import Keyring

if TYPE_CHECKING:
    from ingest.scrubbing import ScrubbingAnonymiser
    from privacy.detectors import Scrubber

log = logging.getLogger(__name__)

RESCRUB_LOG = Path("privacy") / "rescrub-log.jsonl"

RESCRUBS = MetricCounter(
    "flywheel_lake_rescrubs",
    "Lake rescrubs by outcome (completed, nothing: the lake was clean, failed, dry_run).",
    ["outcome"],
)
RESCRUBBED_VALUES = MetricCounter(
    "flywheel_lake_rescrubbed_values",
    "Values a rescrub replaced in lake files, by kind (email, secret kinds...; never a value).",
    ["kind"],
)
RESCRUB_SECONDS = Histogram(
    "flywheel_lake_rescrub_seconds", "Time a rescrub took (lake, warehouse, datasets)."
)


@dataclass
class RescrubRecord:
    """What one rescrub did (the log's ``completed`` line holds it)."""

    rescrub: str
    started_at: str
    scrubber: str
    """The detectors' fingerprint (``privacy.detectors.fingerprint``) and the names model."""
    dry_run: bool = False
    files: list[dict[str, Any]] = field(default_factory=list)
    """Per lake file rewritten: its path and the values replaced per kind."""
    values: dict[str, int] = field(default_factory=dict)
    """Values replaced per kind, all files together."""
    resumed: list[str] = field(default_factory=list)
    """Rescrubs a crash left unfinished that this one finished."""
    warehouse_events_forgotten: int = 0
    datasets: list[dict[str, Any]] = field(default_factory=list)
    finished_at: str | None = None

    @property
    def replaced(self) -> int:
        """Values replaced, all kinds together."""
        return sum(self.values.values())


def rescrub_log(data_dir: Path) -> Path:
    """The append-only rescrub log of a data dir (JSON Lines)."""
    return data_dir / RESCRUB_LOG


def unfinished_rescrubs(data_dir: Path) -> dict[str, list[str]]:
    """The files of every logged rescrub with no outcome (cut off), by rescrub id."""
    from privacy.requests import read_log_lines

    files: dict[str, list[str]] = {}
    for entry in read_log_lines(rescrub_log(data_dir)):
        if entry["event"] == "started":
            files[entry["rescrub"]] = [f["path"] for f in entry["files"]]
        elif entry["event"] == "completed":  # with those it finished, cut off before it
            for done in (entry["rescrub"], *entry.get("resumed", [])):
                files.pop(done, None)
    return files


def rescrub_lake(
    settings: Settings,
    keyring: Keyring,
    *,
    dry_run: bool = False,
    anonymiser: ScrubbingAnonymiser | None = None,
    fault: Callable[[str], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> RescrubRecord:
    """Scrub the lake's files again with ``anonymiser`` (unset: the one ingest runs, under
    ``keyring``, the lake's) and replace what was built from the old texts (see the module's
    docstring). ``dry_run``: only find the files and count the values, change nothing."""
    started = time.perf_counter()
    try:
        record = _rescrub(
            settings, keyring, dry_run=dry_run, anonymiser=anonymiser,
            crash=fault or (lambda _: None), step=on_step or (lambda _: None),
        )  # fmt: skip
    except Exception as exc:
        RESCRUBS.labels("failed").inc()
        # The error's class only: a message might quote what it could not read.
        log.warning("lake rescrub failed", extra={"fields": {"error": type(exc).__name__}})
        raise
    outcome = "dry_run" if dry_run else "completed" if record.files or record.resumed else "nothing"
    RESCRUBS.labels(outcome).inc()
    RESCRUB_SECONDS.observe(time.perf_counter() - started)
    if not dry_run:
        for kind, count in record.values.items():
            RESCRUBBED_VALUES.labels(kind).inc(count)
    log.info("lake rescrub " + outcome.replace("_", " "), extra={"fields": {
        "rescrub": record.rescrub, "scrubber": record.scrubber, "files": len(record.files),
        "values": record.values, "resumed": record.resumed,
    }})  # fmt: skip
    return record


def _rescrub(
    settings: Settings,
    keyring: Keyring,
    *,
    dry_run: bool,
    anonymiser: ScrubbingAnonymiser | None,
    crash: Callable[[str], None],
    step: Callable[[str], None],
) -> RescrubRecord:
    from ingest.scrubbing import ScrubbingAnonymiser
    from privacy.detectors import fingerprint
    from privacy.requests import append_log_line, one_erasure_at_a_time
    from warehouse.lake import open_lake
    from warehouse.rescrub import files_to_rescrub, remove_leftovers, rewrite_rescrubbed
    from warehouse.table import LakeTable

    data_dir = settings.data_dir
    scrubbing = anonymiser or ScrubbingAnonymiser(keyring, names_model=settings.privacy.names_model)
    names = f"+names:{scrubbing.names_model}" if scrubbing.names_model else ""
    record = RescrubRecord(
        rescrub=uuid.uuid4().hex[:12], started_at=_now(), scrubber=fingerprint() + names,
        dry_run=dry_run,
    )  # fmt: skip
    lake = open_lake(settings)
    if dry_run:
        step("searching the lake")
        for _, would in files_to_rescrub(lake, scrubbing.rescrub):
            record.files.append(asdict(would))
            record.values = dict(Counter(record.values) + Counter(would.values))
        return record
    step("waiting for an erasure or a rescrub to end")
    with one_erasure_at_a_time(data_dir):
        remove_leftovers(lake)
        earlier = unfinished_rescrubs(data_dir)
        record.resumed = sorted(earlier)
        step("searching the lake")
        found = list(files_to_rescrub(lake, scrubbing.rescrub))
        pending = sorted({path for paths in earlier.values() for path in paths})
        if not found and not pending:
            return record
        path = rescrub_log(data_dir)
        append_log_line(path, {
            "event": "started", "rescrub": record.rescrub, "at": record.started_at,
            "scrubber": record.scrubber, "files": [asdict(f) for _, f in found],
            "resumed": record.resumed,
        })  # fmt: skip
        step("rewriting lake files")
        rewritten = []
        for landed, _ in found:
            done = rewrite_rescrubbed(lake, landed, scrubbing.rescrub)
            crash("rescrub_after_file")
            if done is not None:
                rewritten.append(landed)
                record.files.append(asdict(done))
                record.values = dict(Counter(record.values) + Counter(done.values))
        table = LakeTable.of(settings, lake)
        by_path = {lake.relative(f): f for f in lake.files()}
        touched = sorted({*pending, *(lake.relative(f) for f in rewritten)})
        # Their sizes changed (not their names, nor their rows): recorded again in one snapshot.
        table.replace(refreshed=[by_path[p] for p in touched if p in by_path])
        crash("rescrub_after_lake")
        _replace_derived(settings, record, touched, table, scrubbing.scrubber, step)
        record.finished_at = _now()
        append_log_line(path, {"event": "completed", **asdict(record)})
    return record


def _replace_derived(
    settings: Settings,
    record: RescrubRecord,
    touched: list[str],
    table: Any,
    scrubber: Scrubber,
    step: Callable[[str], None],
) -> None:
    """Steps 3 and 4: the warehouse forgets the rewritten files, the Spark engine's model tables
    go, and the dataset versions with a text the scrubber now finds something in are
    superseded."""
    from export.catalog import open_catalog
    from export.erasure import supersede_versions_holding
    from warehouse.db import connected, warehouse_path
    from warehouse.rescrub import forget_rescrubbed
    from warehouse.table import drop_models

    data_dir = settings.data_dir
    if warehouse_path(data_dir).exists():
        step("forgetting the rewritten files in the warehouse")
        with connected(data_dir, action="rescrub") as db:
            record.warehouse_events_forgotten = forget_rescrubbed(db, touched)
    step("dropping the Spark engine's model tables")
    drop_models(table)
    step("superseding dataset versions")
    datasets = supersede_versions_holding(
        data_dir, lambda text: bool(scrubber.find(text)), request_id=f"rescrub {record.rescrub}",
        reason="texts held values the scrubber now removes",
        delete_files=settings.privacy.delete_superseded_files, catalog=open_catalog(settings),
    )  # fmt: skip
    record.datasets = [asdict(d) for d in datasets]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
