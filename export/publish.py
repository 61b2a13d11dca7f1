"""``flywheel export run``: build a dataset version, gate it, publish it (or say nothing is new).

A version is built in an attempt folder beside the versions (``<data dir>/datasets/<name>/
.attempt-<id>/``): the data files, the quality gate with its Data Docs report, the dataset card
and the manifest. Then:

- its data files and policy are those of the latest version: nothing is new, the attempt is
  deleted and no version is made (checked before the gate, which that version passed);
- the gate failed a critical expectation: the attempt is renamed ``failed-<id>/`` (its report and
  data stay there for inspection), nothing is published, ``QualityGateError``;
- otherwise the attempt is committed as the next version, ``v<N>`` (``export.commit``: files
  fsynced, then a rename on one file system, so a version appears whole or not at all) and is
  never written again.

With ``FLYWHEEL_EXPORT__TARGET`` on S3, the attempt is built the same way in the data dir's
``datasets/<name>/`` folder (which keeps the lock and the failed attempts) and published by
uploading it, manifest last (``export.commit.commit_objects``).

Between the gate and the commit, when the policy's ``evaluate`` asks for it, the export trains a
light reward model on the attempt's ``dpo`` train split and records its accuracy on the held-out
pairs in the manifest (``evaluation``) and the card. The model is the ``evaluate`` stage's,
above this one: the shell hands it over as an ``Evaluator``, and without one nothing is recorded.

One export per dataset at a time (the dataset's lock; a second one fails at once). The files are
deterministic: rows in a fixed order, Parquet written with fixed settings and no timestamps, so the
same warehouse and policy give byte-identical data files and card; the manifest (its creation time)
and the quality report (Great Expectations stamps its pages) differ from run to run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata, util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from export.build import (
    SOURCE_OF_KIND,
    UNREADABLE_RESPONSES,
    Rekeyer,
    has_tool_calls,
    rekeyed,
    select_rows,
    shape,
    unreadable_rows,
    with_extra_columns,
)
from export.catalog import Catalog, dataset_dir
from export.commit import ensure_latest, locked, publish_attempt, sha256_file
from export.differences import keep_difference
from export.manifest import (
    LINEAGE_IDS,
    Calibration,
    ConfigCounts,
    Evaluation,
    Excluded,
    Fingerprint,
    LakePartition,
    LakeSummary,
    Manifest,
    Source,
    SplitCounts,
    TimeWindow,
    UnreadableTime,
)
from export.policy import DatasetPolicy, DatasetsFile, Kind, load_datasets
from export.quality import GateResult, run_gate
from export.retention import prune_versions
from flywheel.errors import ExportError, FlywheelError, QualityGateError
from flywheel.extras import install_hint
from privacy.keys import Keyring
from warehouse.db import connected, table_names, warehouse_path
from warehouse.lake import Lake
from warehouse.load import READABLE_TIME
from warehouse.reviews import EXPLICIT as REVIEW
from warehouse.reviews import review_calibration
from warehouse.table import LakeTable, models_table

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

ROWS_PER_SHARD = 100_000
MODEL_TABLES = ("preference_pairs", "labels", "responses", "signal_calibration")
LAKE_FILE_COLUMNS = ("path", "topic", "partition", "first_offset", "last_offset", "rows")
CALIBRATION_COLUMNS = ("signal", "explicit", "agree", "disagree", "n", "agreement", "wilson_low",
                       "wilson_high")  # fmt: skip
MIN_TRAIN_PAIRS = 20
"""Fewer ``dpo`` train pairs than this teach the reward model too little to be worth recording."""


class Evaluator(Protocol):
    """Trains the light reward model on a version's ``dpo`` Parquet files by split and measures
    it on the held-out ones (``evaluate.utility.evaluate_files``)."""

    def __call__(self, files: Mapping[str, Sequence[Path]], *, ablations: bool) -> Evaluation: ...


@dataclass
class ExportResult:
    """What an export did: the version published (None when nothing was new) and its manifest."""

    dataset: str
    version: str | None
    path: Path | None
    """The version's folder on a local target; None on S3 or when nothing was new."""
    manifest: Manifest
    """The new version's, or the latest's when nothing was new."""
    gate: GateResult | None
    """The quality gate's outcome; None when nothing was new (the gate is not run: the latest
    version passed it with the same data files and policy)."""

    url: str | None = None
    """Where readers find the version: its folder, or its ``s3://`` prefix."""
    pruned: list[str] = field(default_factory=list)
    """The versions whose data files this export pruned (``keep_versions``)."""

    @property
    def published(self) -> bool:
        return self.version is not None


def export_dataset(
    data_dir: Path,
    name: str,
    keyring: Keyring,
    *,
    datasets: DatasetsFile | None = None,
    keep_failed: int = 5,
    on_progress: Callable[[str], None] | None = None,
    lake: Lake | None = None,
    catalog: Catalog | None = None,
    models: LakeTable | None = None,
    evaluator: Evaluator | None = None,
) -> ExportResult:
    """Publish the next version of dataset ``name`` (see the module's docstring); keep the
    ``keep_failed`` latest failed attempts. ``lake``: the configuration's (``open_lake``; the
    texts are read back from its files, on object storage from this host's copies), unset
    the data dir's. ``catalog``: the target (``open_catalog``), unset the data dir's
    ``datasets`` folder. ``models``: read the model tables Spark wrote in this lake table's
    catalog (``flywheel transform run --engine spark``) instead of the warehouse file.
    ``evaluator``: what records the evaluation the policy asks for; unset, none is recorded."""
    lake = lake or Lake.in_data_dir(data_dir)
    policy = (datasets or load_datasets()).dataset(name)
    step = on_progress or (lambda _: None)
    target = catalog or Catalog.in_data_dir(data_dir)
    folder = staging_folder(target, data_dir, name)
    with locked(folder):
        # Attempts a killed export left behind (the lock says none is running now).
        for stale in folder.glob(".attempt-*"):
            shutil.rmtree(stale, ignore_errors=True)
        attempt_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
        attempt = folder / f".attempt-{attempt_id}"
        attempt.mkdir()
        try:
            return _export(
                data_dir, lake, name, policy, keyring, attempt, step, target, models, evaluator
            )
        except QualityGateError as failure:
            kept = folder / f"failed-{attempt_id}"
            attempt.rename(kept)
            failed = sorted(p for p in folder.iterdir() if p.name.startswith("failed-"))
            for old in failed[: max(0, len(failed) - keep_failed)]:
                shutil.rmtree(old, ignore_errors=True)
            raise QualityGateError(
                f"{failure}; report: {kept}/quality/index.html",
                report=str(kept),
                failed=failure.failed,
            ) from None
        finally:
            shutil.rmtree(attempt, ignore_errors=True)


def _export(
    data_dir: Path,
    lake: Lake,
    name: str,
    policy: DatasetPolicy,
    keyring: Keyring,
    attempt: Path,
    step: Callable[[str], None],
    target: Catalog,
    models: LakeTable | None = None,
    evaluator: Evaluator | None = None,
) -> ExportResult:
    step("reading the warehouse" if models is None else "reading Spark's model tables")
    frames, lineage, excluded = read_warehouse(data_dir, lake, name, policy, keyring, models)
    step("writing files")
    files = write_files(frames, policy, attempt)
    # Nothing new is decided before the gate: the latest version passed it with these very
    # files and policy, and an unchanged warehouse exported every hour should not pay the gate
    # (Great Expectations' import alone is about 2 s) every hour.
    existing = target.versions(name)
    latest = target.read_manifest(name, existing[-1]) if existing else None
    fingerprint = Fingerprint(policy_hash=policy.digest(name), files=files)
    if latest is not None and _same_export(
        latest, fingerprint, policy.digests(name, latest.policy)
    ):
        ensure_latest(target, name, latest)
        return ExportResult(name, None, None, latest, None)
    step("quality gate")
    gate = run_gate(frames, policy, attempt / "quality")
    counts = count_rows(frames, list(policy.splits))
    if not gate.success:
        failures = gate.failed("critical")
        listed = "; ".join(o.line() for o in failures[:5])
        raise QualityGateError(
            f"the quality gate failed {len(failures)} critical expectation(s) of dataset "
            f"{name!r}: {listed}. Nothing was published",
            report=str(attempt / "quality"),
            failed=[o.line() for o in failures],
        )
    evaluation = evaluate_attempt(attempt, counts, policy, evaluator, step)
    step("publishing")
    manifest = publish_attempt(
        target,
        attempt.parent,
        attempt,
        Manifest(
            dataset=name,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            code_version=metadata.version("feedback-flywheel"),
            policy=policy.record(name),
            policy_hash=policy.digest(name),
            pseudonym_key_version=keyring.current,
            lineage_ids=LINEAGE_IDS,
            counts=counts,
            quality=gate.summary().model_copy(update={"excluded": excluded}),
            fingerprint=fingerprint,
            source=lineage.source,
            time_window=lineage.time_window,
            calibration=lineage.calibration,
            evaluation=evaluation,
        ),
    )
    path = attempt.parent / manifest.version if target.is_local else None
    step("counting the changes since the previous version")
    # For the console's datasets pages (docs/console.md): kept under the data dir, not in the
    # version, so the published files are what they would be without it.
    keep_difference(target, name, manifest.version, data_dir)
    pruned = prune_old_versions(target, name, policy, step)
    return ExportResult(
        name, manifest.version, path, manifest, gate, url=target.url(name, manifest.version),
        pruned=pruned,
    )  # fmt: skip


def prune_old_versions(
    target: Catalog, name: str, policy: DatasetPolicy, step: Callable[[str], None]
) -> list[str]:
    """The policy's ``keep_versions``, once a version is published (``export.retention``):
    the versions pruned. A failure is logged and pruned nothing more: the version is published,
    and the next publication prunes what this one left."""
    if policy.keep_versions is None:
        return []
    step(f"pruning the data of versions before the newest {policy.keep_versions}")
    try:
        return prune_versions(target, name, policy.keep_versions)
    except (FlywheelError, OSError) as exc:
        log.warning("pruning old dataset versions failed",
                    extra={"fields": {"dataset": name, "error": str(exc)}})  # fmt: skip
        return []


def evaluate_attempt(
    attempt: Path,
    counts: dict[str, ConfigCounts],
    policy: DatasetPolicy,
    evaluator: Evaluator | None,
    step: Callable[[str], None],
) -> Evaluation | None:
    """The evaluation the policy asks for, of the attempt's ``dpo`` files; None when it asks for
    none, or when none can be made (the progress says why: that is no reason to stop a
    publication)."""
    if policy.evaluate == "off":
        return None
    reason = _not_evaluable(counts, evaluator)
    if reason is not None:
        step(f"not evaluated: {reason}")
        return None
    assert evaluator is not None
    ablations = policy.evaluate == "ablations"
    step("evaluating: training the reward model" + (" and its ablations" if ablations else ""))
    folder = attempt / "data" / "dpo"
    files = {split: sorted(folder.glob(f"{split}-*.parquet")) for split in counts["dpo"].splits}
    return evaluator(files, ablations=ablations)


def _not_evaluable(counts: dict[str, ConfigCounts], evaluator: Evaluator | None) -> str | None:
    """Why no evaluation can be made of a version with these counts, or None."""
    if evaluator is None:
        return "no reward model was handed to the export"
    if util.find_spec("scipy") is None:
        return f"the reward model needs SciPy ({install_hint('export')})"
    splits = counts["dpo"].splits if "dpo" in counts else {}
    train = splits["train"].rows if "train" in splits else 0
    held_out = sum(c.rows for split, c in splits.items() if split != "train")
    if train < MIN_TRAIN_PAIRS:
        return f"{train} dpo train pairs, fewer than {MIN_TRAIN_PAIRS}"
    if held_out == 0:
        return "no held-out dpo pairs to measure on"
    return None


def staging_folder(target: Catalog, data_dir: Path, name: str) -> Path:
    """Where a dataset's attempts are built, locked and kept when they fail: its folder on a
    local target (the rename that commits stays on one file system), else the data dir's."""
    return target.folder(name) if target.is_local else dataset_dir(data_dir, name)


def _same_export(latest: Manifest, fingerprint: Fingerprint, digests: set[str]) -> bool:
    """Whether the latest version holds these very files under this policy (under its digest
    then or now)."""
    recorded = latest.fingerprint
    return recorded.files == fingerprint.files and recorded.policy_hash in digests


@dataclass
class Lineage:
    """What a version is made from, for its manifest."""

    source: Source
    time_window: TimeWindow
    calibration: list[Calibration]


def read_warehouse(
    data_dir: Path,
    lake: Lake,
    name: str,
    policy: DatasetPolicy,
    keyring: Keyring,
    models: LakeTable | None = None,
) -> tuple[dict[Kind, pl.DataFrame], Lineage, Excluded]:
    """Each config's shaped rows (with ``split`` and the gate's inputs), the lineage of the
    whole version (lake files, the transform run, the time window, the calibration) and the
    rows left out for unreadable times; from the warehouse, or from Spark's tables
    (``models``)."""
    selected: dict[str, pl.DataFrame] = {}  # dpo and reward take the same rows
    connection = (
        models_connection(data_dir, action="export from")
        if models is None
        else spark_models_connection(models, extra=[e.model for e in policy.extra_columns])
    )
    with connection as db:
        lake_root, unreadable = _readable(db, lake)
        excluded = {
            kind: unreadable_rows(db, policy, kind, unreadable, lake_root) for kind in policy.kinds
        }
        for kind in policy.kinds:
            table = SOURCE_OF_KIND[kind]
            if table not in selected:
                rows = select_rows(db, policy, kind, lake_root, unreadable=unreadable)
                selected[table] = with_extra_columns(db, policy, table, rows)
        response_ids = {
            i for rows in selected.values() for i in rows["response_ids"].explode().drop_nulls()
        }
        lineage = _lineage(db, sorted(response_ids))
    left_out = Excluded(
        unreadable_time=UnreadableTime(responses=len(unreadable), rows=dict(excluded))
    )
    # Shaped once the connection is closed: DuckDB's worker threads keep the memory of the
    # selecting queries (about 1 GB at 0.5M events) until then, and the shaped frames would
    # come on top of it.
    rekey = Rekeyer(keyring.keys[keyring.current], name)
    # One message shape for the whole version: with a tool call anywhere, every config's
    # conversational messages carry the tool fields.
    tools = any(has_tool_calls(rows) for rows in selected.values())
    frames: dict[Kind, pl.DataFrame] = {}
    for kind in policy.kinds:
        rows = selected[SOURCE_OF_KIND[kind]]
        shaped = shape(
            rows, kind, conversational=policy.message_format == "conversational", rekey=rekey,
            tools=tools,
        )  # fmt: skip
        # The policy's extra columns after the lineage ones (none: the frame as it was).
        frames[kind] = shaped.hstack(rows.select(policy.extra_names(kind))).with_columns(
            split=rows["split"], chosen_shown_first=rows["chosen_shown_first"]
        )
    return frames, lineage, left_out


def _readable(db: Any, lake: Lake) -> tuple[Path, list[str]]:
    """Where the texts are read back from: the files the warehouse loaded (on object storage,
    this host's copies of them); and the responses whose time no reader can take."""
    loaded = [path for (path,) in db.execute("SELECT path FROM lake_files").fetchall()]
    unreadable = [row[0] for row in db.execute(UNREADABLE_RESPONSES).fetchall()]
    return lake.readable_root(loaded), unreadable


def row_ids(
    data_dir: Path, lake: Lake, name: str, policy: DatasetPolicy, keyring: Keyring
) -> pl.DataFrame:
    """``config``, ``split`` and ``id`` of every row a version of ``name`` would hold if it
    were exported from this warehouse now, ids re-keyed as it would publish them: the rows
    ``read_warehouse`` selects, without their texts, lineage and shapes (``export.preview``)."""
    import polars as pl

    selected: dict[str, pl.DataFrame] = {}
    with models_connection(data_dir, action="preview from") as db:
        lake_root, unreadable = _readable(db, lake)
        for kind in policy.kinds:
            table = SOURCE_OF_KIND[kind]
            if table not in selected:
                selected[table] = select_rows(
                    db, policy, kind, lake_root, unreadable=unreadable, with_texts=False
                )
    rekey = Rekeyer(keyring.keys[keyring.current], name)
    ids = {table: rekeyed(rows["id"], rekey.lineage) for table, rows in selected.items()}
    return pl.concat(
        [
            pl.DataFrame(
                {
                    "config": kind,
                    "split": selected[SOURCE_OF_KIND[kind]]["split"],
                    "id": ids[SOURCE_OF_KIND[kind]],
                }  # fmt: skip
            )
            for kind in policy.kinds
        ]
    )


@contextmanager
def models_connection(data_dir: Path, *, action: str) -> Iterator[Any]:
    """The warehouse's DuckDB connection, once it is known to hold the model tables (a missing
    warehouse or a missing run is an ``ExportError`` saying what to run)."""
    path = warehouse_path(data_dir)
    if not path.exists():
        raise ExportError(f"there is no warehouse at {path}: run `flywheel transform run` first")
    with connected(data_dir, action=action) as db:
        tables = table_names(db)
        missing = [t for t in MODEL_TABLES if t not in tables]
        if missing:
            raise ExportError(
                f"the warehouse has no {', '.join(missing)} table: run `flywheel transform run` "
                "first"
            )
        yield db


SPARK_TABLES = (*MODEL_TABLES, "events", "lake_files", "transform_runs")
"""What an export reads of the tables a Spark run wrote (transforms/spark.py): the models, the
events and lake files they were built from, and the runs."""


@contextmanager
def spark_models_connection(table: LakeTable, *, extra: list[str] | None = None) -> Iterator[Any]:
    """An in-memory DuckDB holding the tables a Spark run wrote, read through pyiceberg as
    Arrow: the export's queries then run on them as on the warehouse's, and publish the same
    bytes from the same rows. ``extra``: the models a policy's ``extra_columns`` read too."""
    import duckdb

    db = duckdb.connect(":memory:")
    try:
        for name in dict.fromkeys([*SPARK_TABLES, *(extra or [])]):
            rows = models_table(table, name)
            db.register("spark_rows", rows)
            db.execute(f"CREATE TABLE {name} AS SELECT * FROM spark_rows")  # noqa: S608
            db.unregister("spark_rows")
        yield db
    finally:
        db.close()


def _records(db: Any, table: str, columns: tuple[str, ...], order: str) -> list[dict[str, Any]]:
    """A whole table's rows as dicts of the given columns."""
    query = f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}"  # noqa: S608
    return [dict(zip(columns, row, strict=True)) for row in db.execute(query).fetchall()]


_LAKE_PARTITIONS = """
SELECT topic, partition, count(*) AS files, min(first_offset) AS first_offset,
       max(last_offset) AS last_offset, sum(rows)::BIGINT AS rows
FROM lake_files
GROUP BY ALL
ORDER BY topic, partition
"""


def lake_summary(db: Any) -> LakeSummary:
    """The lake files the warehouse loaded, in a size that does not grow with them: per topic
    and partition the files, offset range and rows, and a sha256 of every file's path, offsets
    and rows (one line each, in path order) that names the exact set."""
    digest = hashlib.sha256()
    files = rows = 0
    for entry in _records(db, "lake_files", LAKE_FILE_COLUMNS, "path"):
        digest.update(json.dumps(entry, sort_keys=True).encode() + b"\n")
        files += 1
        rows += entry["rows"]
    partitions = [
        LakePartition(topic=topic, partition=partition, files=count, first_offset=first,
                      last_offset=last, rows=partition_rows)
        for topic, partition, count, first, last, partition_rows
        in db.execute(_LAKE_PARTITIONS).fetchall()
    ]  # fmt: skip
    return LakeSummary(files=files, rows=rows, files_sha256=digest.hexdigest(),
                       partitions=partitions)  # fmt: skip


def _lineage(db: Any, response_ids: list[str]) -> Lineage:
    # Spark's runs table gets principles_hash from the first run that records one.
    recorded = {
        name
        for (name,) in db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'transform_runs' AND table_schema = 'main'"
        ).fetchall()
    }
    principles = "principles_hash" if "principles_hash" in recorded else "NULL"
    run = db.execute(
        f"SELECT run_id, policy_hash, finished_at, {principles} FROM transform_runs "  # noqa: S608
        "WHERE status = 'succeeded' ORDER BY finished_at DESC LIMIT 1"
    ).fetchone()
    first, last = db.execute(
        "SELECT min(occurred_at), max(occurred_at) FROM responses "
        f"WHERE response_id IN (SELECT unnest($ids)) AND {READABLE_TIME}",
        {"ids": response_ids},
    ).fetchone()
    # Human precision from the reviews (docs/review.md), as rows against ``review``: read from
    # the reviews themselves, as the Spark engine's signal_calibration does not hold them.
    calibration = [
        row
        for row in _records(db, "signal_calibration", CALIBRATION_COLUMNS, "signal, explicit")
        if row["explicit"] != REVIEW
    ] + review_calibration(db)
    return Lineage(
        source=Source(
            lake=lake_summary(db),
            transform_run=run[0] if run else None,
            transforms_policy_hash=run[1] if run else None,
            transforms_principles_hash=run[3] if run else None,
        ),
        time_window=TimeWindow(
            first_event=first.isoformat() if first else None,
            last_event=last.isoformat() if last else None,
        ),
        calibration=[Calibration.model_validate(row) for row in calibration],
    )


def _arrow_table(frame: pl.DataFrame) -> Any:
    """The frame as Arrow with plain (not large) strings and lists: what most readers expect."""
    import pyarrow as pa

    table = frame.to_arrow()

    def plain(kind: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            return pa.string()
        if pa.types.is_large_list(kind) or pa.types.is_list(kind):
            return pa.list_(plain(kind.value_type))
        if pa.types.is_struct(kind):
            return pa.struct([pa.field(f.name, plain(f.type)) for f in kind])
        return kind

    schema = pa.schema([pa.field(f.name, plain(f.type)) for f in table.schema])
    return table.cast(schema)


def write_files(
    frames: dict[Kind, pl.DataFrame], policy: DatasetPolicy, folder: Path
) -> dict[str, str]:
    """``data/<config>/<split>-NNNNN-of-NNNNN.parquet`` (and ``.jsonl``); their sha256 by path."""
    import polars as pl
    import pyarrow.parquet as pq

    written: dict[str, str] = {}
    for kind, frame in frames.items():
        for split in policy.splits:
            rows = frame.filter(pl.col("split") == split).drop("split", "chosen_shown_first")
            shards = max(1, -(-rows.height // ROWS_PER_SHARD))
            for shard in range(shards):
                part = rows.slice(shard * ROWS_PER_SHARD, ROWS_PER_SHARD)
                stem = f"data/{kind}/{split}-{shard:05d}-of-{shards:05d}"
                target = folder / f"{stem}.parquet"
                target.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(
                    _arrow_table(part),
                    target,
                    compression="zstd",
                    row_group_size=ROWS_PER_SHARD,
                    store_schema=False,
                )
                if "jsonl" in policy.formats:
                    part.write_ndjson(folder / f"{stem}.jsonl")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            written[path.relative_to(folder).as_posix()] = sha256_file(path)
    return written


def count_rows(frames: dict[Kind, pl.DataFrame], splits: list[str]) -> dict[str, ConfigCounts]:
    """Rows per config and split, and per signal within each."""
    import polars as pl

    counts: dict[str, ConfigCounts] = {}
    for kind, frame in frames.items():
        per_split: dict[str, SplitCounts] = {}
        for split in splits:
            rows = frame.filter(pl.col("split") == split)
            signals = rows["signals"].explode().drop_nulls().value_counts()
            per_split[split] = SplitCounts(
                rows=rows.height,
                signals={str(s): int(n) for s, n in sorted(signals.iter_rows())},
            )
        counts[kind] = ConfigCounts(rows=frame.height, splits=per_split)
    return counts
