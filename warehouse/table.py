"""The lake as an Apache Iceberg table: the landed files, committed centrally, with the offsets.

Ingest workers land immutable Parquet files named by topic, partition and offsets
(``warehouse.lake``); they do not touch the table. ``LakeTable.commit`` adds the landed files
to the table ``flywheel.events`` in one snapshot, which records in its summary how far every
partition is committed (``OFFSETS_PROPERTY``: the next offset per lake topic and partition).
The table, not the folder, is what readers take: the transforms load the files of its current
snapshot, and pyiceberg, DuckDB (through Arrow), polars and Spark read the same table.

A commit takes, per partition, the landed files that continue the committed range without a
gap, oldest first. Two files may cover the same offsets: a worker that lost its partition can
still finish an upload after the new owner landed the same messages, and object storage has no
rename to fence it with. The commit then takes one of them and, where a file starts inside
what is already taken, a copy of it holding only the rows past that point (``_trimmed``), so
every offset is in exactly one committed file. Files left out wholly (covered already) stay in
the lake as orphans, never read. Writers commit optimistically: a commit that another writer
beat (``CommitFailedException``) is planned again from the new snapshot, never lost. Any
number of processes may call ``commit``: the ingest workers every ``commit_interval_s``, and
``flywheel transform run`` before it reads. See docs/architecture.md for the failure cases.

Manifests keep no column values (``write.metadata.metrics.default`` is ``counts``), so no
pseudonym or text is copied out of the data files into the table's metadata.

A table created before the lake's files gained a column (``metadata``, ``prompt_structure``)
gains it the first time this code opens it (``_with_lake_columns``: Iceberg's schema evolution,
an optional column added last); files landed before it read NULL there in every engine.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import (
    ConfigError,
    FlywheelError,
    MissingExtraError,
    NotFoundError,
    TransientError,
)
from flywheel.extras import install_hint
from flywheel.storage import CONNECT_TIMEOUT_S, REQUEST_TIMEOUT_S, translate
from warehouse.lake import Lake, LakeFile, file_name, parse_name

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import Table

    from flywheel.settings import Settings

NAMESPACE = "flywheel"
TABLE_NAME = "events"
IDENTIFIER = (NAMESPACE, TABLE_NAME)
MODELS_NAMESPACE = "models"
"""Where ``flywheel transform run --engine spark`` writes the model tables, in the same catalog
(transforms/spark.py); ``models_table`` reads them back."""
OFFSETS_PROPERTY = "flywheel.committed-offsets"
"""In every snapshot the platform commits: JSON ``{lake topic: {partition: next offset}}``."""
CATALOG_SETTING = "FLYWHEEL_LAKE__CATALOG"
COMMIT_ATTEMPTS = 10
CREATE_ATTEMPTS = 5
"""Tries at opening a catalog whose tables another process is creating at the same moment."""
TABLE_PROPERTIES = {
    # Counts only: column bounds would copy pseudonyms and the first bytes of texts into the
    # manifests, where an erasure that rewrites data files would not reach them.
    "write.metadata.metrics.default": "counts",
    "format-version": "2",
    # pyiceberg would retry a beaten commit by applying the same files to the new snapshot,
    # which may already hold them; ``LakeTable.commit`` plans again instead.
    "commit.retry.num-retries": "0",
    # One metadata file per commit: keep the newest 20, delete older ones as commits go by.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}

Offsets = dict[str, dict[int, int]]
"""Next offset to commit, per lake topic and partition."""


CATALOG_FILE = "lake-catalog.db"
"""In the data dir: the lake's catalog when ``FLYWHEEL_LAKE__CATALOG`` is unset."""


def default_catalog_uri(data_dir: Path) -> str:
    """The catalog of a data dir when ``FLYWHEEL_LAKE__CATALOG`` is unset: a SQLite file."""
    return f"sqlite:///{(data_dir / CATALOG_FILE).resolve()}"


class TableMetrics:
    """Prometheus metrics of the table's commits."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry or CollectorRegistry()
        self.commit_seconds = Histogram(
            "flywheel_lake_commit_seconds",
            "Time to plan and commit landed files to the lake's table (retries included).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.conflicts = Counter(
            "flywheel_lake_commit_conflicts",
            "Commits another writer beat to the table; each was planned again and retried.",
            registry=self.registry,
        )
        self.committed_files = Counter(
            "flywheel_lake_committed_files",
            "Landed files added to the lake's table.",
            registry=self.registry,
        )
        self.trimmed_files = Counter(
            "flywheel_lake_trimmed_files",
            "Landed files that overlapped a committed range and were committed as a trimmed copy.",
            registry=self.registry,
        )
        self.files_per_partition = Gauge(
            "flywheel_lake_files_per_partition",
            "Data files of the table's current snapshot, per lake topic and partition.",
            ["topic", "partition"],
            registry=self.registry,
        )


@dataclass
class CommitResult:
    """What one ``LakeTable.commit`` added."""

    files: list[LakeFile] = field(default_factory=list)
    """The files the snapshot added (trimmed copies where a file overlapped)."""
    trimmed: int = 0
    conflicts: int = 0
    snapshot_id: int | None = None
    offsets: Offsets = field(default_factory=dict)
    """Next offset per topic and partition after the commit."""


class LakeTable:
    """The Iceberg table over a lake, in a pyiceberg SQL catalog."""

    def __init__(
        self, lake: Lake, catalog_uri: str, *, metrics: TableMetrics | None = None
    ) -> None:
        self.lake = lake
        self.catalog_uri = catalog_uri
        self.metrics = metrics or TableMetrics()
        self._catalog: SqlCatalog | None = None

    @classmethod
    def of(cls, settings: Settings, lake: Lake, **kwargs: Any) -> LakeTable:
        """The table of a configuration: its catalog is ``FLYWHEEL_LAKE__CATALOG`` (a SQLAlchemy
        URL: PostgreSQL for several hosts), else a SQLite file in the data dir."""
        uri = settings.lake.catalog or default_catalog_uri(settings.data_dir)
        return cls(lake, uri, **kwargs)

    @property
    def location(self) -> str:
        """The table's location, as Iceberg names it (metadata under ``<location>/metadata``)."""
        if self.lake.objects is None:
            return str(self.lake.root.resolve())
        return f"s3://{self.lake.objects.path_of('').rstrip('/')}"

    def catalog(self) -> SqlCatalog:
        if self._catalog is None:
            self._catalog = _open_catalog(self.catalog_uri, self.location)
        return self._catalog

    def table(self) -> Table:
        """The table, created (empty, the lake's schema) on first use."""
        from pyiceberg.exceptions import (
            NamespaceAlreadyExistsError,
            NoSuchTableError,
            TableAlreadyExistsError,
        )

        catalog = self.catalog()
        try:
            return self._with_lake_columns(self._same_place(catalog.load_table(IDENTIFIER)))
        except NoSuchTableError:
            pass
        from sqlalchemy.exc import IntegrityError

        try:
            try:
                catalog.create_namespace_if_not_exists(NAMESPACE)
            except (NamespaceAlreadyExistsError, IntegrityError):
                pass  # another process created it between the check and the insert
            return catalog.create_table(
                IDENTIFIER, schema=arrow_schema(), location=self.location,
                properties=TABLE_PROPERTIES,
            )  # fmt: skip
        except (TableAlreadyExistsError, IntegrityError):  # another process created it first
            return self._with_lake_columns(self._same_place(catalog.load_table(IDENTIFIER)))

    def _with_lake_columns(self, table: Table) -> Table:
        """``table``, with the lake's columns it lacks added (in one schema change; a change
        another process beat is tried again from the schema it made)."""
        from pyiceberg.exceptions import CommitFailedException

        wanted = arrow_schema()
        for _ in range(COMMIT_ATTEMPTS):
            present = {field.name for field in table.schema().fields}
            if all(name in present for name in wanted.names):
                return table
            try:
                with table.update_schema() as update:
                    update.union_by_name(wanted)
            except CommitFailedException:
                pass
            except _catalog_busy_errors() as exc:  # SQLite busy: another writer's change
                if "locked" not in str(exc):
                    raise
                time.sleep(0.05)
            table = self.catalog().load_table(IDENTIFIER)
        raise TransientError(
            f"could not add the lake's new columns to its table: {COMMIT_ATTEMPTS} attempts were "
            "beaten by other writers"
        )

    def _same_place(self, table: Table) -> Table:
        """The catalog's table, if it is this lake's: Iceberg names files by absolute paths, so
        a data dir copied or moved keeps a catalog that points at the old place, whose files
        this lake's readers would read and whose upkeep would delete this lake's files."""
        found = table.metadata.location.removeprefix("file://").rstrip("/")
        if found != self.location.removeprefix("file://").rstrip("/"):
            raise ConfigError(
                f"the lake's catalog ({CATALOG_SETTING}, or lake-catalog.db in the data dir) holds "
                f"the table of the lake at {found}, not of this one at {self.location} (a data "
                "dir copied or moved?): point the setting at this lake's catalog, or delete "
                "lake-catalog.db to build the table again from this lake's files"
            )
        return table

    def committed_offsets(self, table: Table | None = None) -> Offsets:
        """How far each partition is committed: the next offset, per lake topic."""
        return snapshot_offsets(table or self.table())

    def data_files(self, table: Table | None = None) -> list[LakeFile]:
        """The lake files of the table's current snapshot (what readers take), in offset order."""
        table = table or self.table()
        if table.current_snapshot() is None:
            return []
        files = []
        for task in table.scan().plan_files():
            landed = self.lake_file(task.file.file_path)
            if landed is not None:
                files.append(landed)
        return sorted(files)

    def lake_file(self, iceberg_path: str) -> LakeFile | None:
        """A data file of the table as the lake names it (None for a file not named as the
        lake names its batches, e.g. one another engine wrote)."""
        path = iceberg_path.removeprefix("s3://").removeprefix("file://")
        return parse_name(Path(path))

    def iceberg_path(self, landed: LakeFile) -> str:
        """A lake file as the table names it."""
        if self.lake.objects is None:
            return str(Path(landed.path).resolve())
        return f"s3://{landed.path}"

    def commit(self) -> CommitResult:
        """Add every landed file that continues a partition's committed range, in one
        snapshot; a commit another writer beat is planned again (``COMMIT_ATTEMPTS`` times)."""
        started = time.perf_counter()
        result = CommitResult()
        try:
            return self._commit(result)
        except OSError as exc:  # the store or the catalog's files out of reach
            raise self._io_error(exc, "commit to") from None
        except _catalog_busy_errors() as exc:  # the catalog's database out of reach, or busy
            raise TransientError(
                f"{CATALOG_SETTING}: could not commit to the lake's table "
                f"({type(getattr(exc, 'orig', exc)).__name__}); the files stay landed for the "
                "next commit"
            ) from None
        finally:
            self.metrics.commit_seconds.observe(time.perf_counter() - started)

    def pending(self) -> list[LakeFile]:
        """The landed files the next ``commit`` would add whole, without committing (what
        ``flywheel transform plan`` previews). A file the commit would trim, to start past what
        an overlapping file already added, is left out: its trimmed copy exists only once the
        commit writes it."""
        try:
            chosen, _, _ = plan_commit(self.lake.files(), self.committed_offsets())
        except OSError as exc:
            raise self._io_error(exc, "read") from None
        return chosen

    def _io_error(self, exc: OSError, action: str) -> FlywheelError:
        """An I/O error of the table's files as the one line it is: the S3 client's translated
        (``flywheel.storage.translate``), a local one with its errno; both ``TransientError``
        unless access was refused."""
        if self.lake.objects is not None:
            return translate(exc, self.lake.location)
        return TransientError(
            f"could not {action} the lake's table at {self.location}: {exc.strerror or exc}"
        )

    def _commit(self, result: CommitResult) -> CommitResult:
        from pyiceberg.exceptions import CommitFailedException

        for _ in range(COMMIT_ATTEMPTS):
            table = self.table()
            committed = self.committed_offsets(table)
            chosen, trims, offsets = plan_commit(self.lake.files(), committed)
            result.offsets = offsets
            if not chosen and not trims:
                self._observe(table)
                return result
            added = chosen + [self._trimmed(landed, start) for landed, start in trims]
            properties = {OFFSETS_PROPERTY: json.dumps(_jsonable(offsets), sort_keys=True)}
            try:
                with table.transaction() as transaction:
                    transaction.add_files(
                        [self.iceberg_path(f) for f in added],
                        snapshot_properties=properties,
                        check_duplicate_files=False,
                    )
            except CommitFailedException:
                result.conflicts += 1
                self.metrics.conflicts.inc()
                continue
            except _catalog_busy_errors() as exc:  # SQLite busy: another writer's commit
                if "locked" not in str(exc):
                    raise
                result.conflicts += 1
                self.metrics.conflicts.inc()
                time.sleep(0.05)
                continue
            except ValueError as exc:  # pyarrow's ArrowInvalid: a footer it cannot read
                raise self._unreadable(added, exc) from None
            table = self.table()
            result.files = sorted(added)
            result.trimmed = len(trims)
            result.snapshot_id = table.current_snapshot().snapshot_id  # type: ignore[union-attr]
            self.metrics.committed_files.inc(len(added))
            self.metrics.trimmed_files.inc(len(trims))
            self._observe(table)
            return result
        raise TransientError(
            f"could not commit to the lake's table: {COMMIT_ATTEMPTS} attempts were beaten "
            "by other writers; the files stay landed for the next commit"
        )

    def replace(
        self, removed: list[LakeFile] | None = None, added: list[LakeFile] | None = None, *,
        refreshed: list[LakeFile] | None = None,
    ) -> int | None:  # fmt: skip
        """Take ``removed`` out of the table and put ``added`` in, in one snapshot that keeps
        the committed offsets (lake retention removes files, compaction replaces them), and
        record again those of ``refreshed`` the table holds (rewritten in place by erasure:
        their counts and sizes changed, not their names); returns the snapshot's id, None when
        there was nothing to do. Files already out of the table are skipped; a commit another
        writer beat is planned again."""
        from pyiceberg.exceptions import CommitFailedException
        from pyiceberg.io.pyarrow import parquet_file_to_data_file

        added = added or []
        refreshed = refreshed or []
        for _ in range(COMMIT_ATTEMPTS):
            table = self.table()
            if table.current_snapshot() is None:
                current = {}
            else:
                current = {task.file.file_path: task.file for task in table.scan().plan_files()}
            again = [p for p in map(self.iceberg_path, refreshed) if p in current]
            gone = [current[p] for p in map(self.iceberg_path, removed or []) if p in current]
            gone += [current[p] for p in again]
            new = [p for p in map(self.iceberg_path, added) if p not in current] + again
            if not gone and not new:
                return None
            offsets = json.dumps(_jsonable(self.committed_offsets(table)), sort_keys=True)
            try:
                with table.transaction() as transaction:
                    update = transaction.update_snapshot({OFFSETS_PROPERTY: offsets})
                    with update.overwrite() as overwrite:
                        for data_file in gone:
                            overwrite.delete_data_file(data_file)
                        for path in new:
                            overwrite.append_data_file(
                                parquet_file_to_data_file(table.io, table.metadata, path)
                            )
            except CommitFailedException:
                self.metrics.conflicts.inc()
                continue
            snapshot = self.table().current_snapshot()
            return snapshot.snapshot_id if snapshot is not None else None
        raise TransientError(
            f"could not change the lake's table: {COMMIT_ATTEMPTS} attempts were beaten by "
            "other writers"
        )

    def _unreadable(self, files: list[LakeFile], error: Exception) -> FlywheelError:
        """The error of a commit that could not read a landed file's footer, naming the file."""
        for landed in files:
            try:
                self.lake.read_metadata(landed)
            except ValueError as exc:
                return FlywheelError(
                    f"the lake file {landed.path} is not a readable Parquet file ({exc}); "
                    "nothing was committed to the lake's table (docs/operations.md)"
                )
        return FlywheelError(f"could not commit to the lake's table: {error}")

    def _trimmed(self, landed: LakeFile, start: int) -> LakeFile:
        """A copy of ``landed`` holding only its rows from offset ``start`` on (beside it, named
        for the offsets it now covers), for a file that overlaps what is already committed."""
        import polars as pl

        kept = self.lake.read_frame(landed).filter(pl.col("source_offset") >= start)
        name = file_name(landed.topic, landed.partition, start, landed.last_offset)
        # Beside the original, as a landed file of those offsets: readers, erasure and
        # retention take it like any other.
        key = f"{Path(landed.path).parent.name}/{name}"
        path = self.lake.write_frame(key, kept)
        return LakeFile(landed.topic, landed.partition, start, landed.last_offset, Path(path))

    def _observe(self, table: Table) -> None:
        counts: dict[tuple[str, int], int] = defaultdict(int)
        for landed in self.data_files(table):
            counts[(landed.topic, landed.partition)] += 1
        for (topic, partition), count in counts.items():
            self.metrics.files_per_partition.labels(topic, str(partition)).set(count)


def plan_commit(
    landed: Iterator[LakeFile] | list[LakeFile], committed: Offsets
) -> tuple[list[LakeFile], list[tuple[LakeFile, int]], Offsets]:
    """Which landed files a commit adds: per partition, from its next offset on, the file that
    starts there and reaches furthest, then the next, until a gap. Where no file starts at the
    next offset but one covers it (it overlaps what is taken), that file is trimmed to start
    there. Returns (files to add whole, (file, start) to add trimmed, offsets after)."""
    by_partition: dict[tuple[str, int], list[LakeFile]] = defaultdict(list)
    for item in landed:
        by_partition[(item.topic, item.partition)].append(item)
    whole: list[LakeFile] = []
    trims: list[tuple[LakeFile, int]] = []
    offsets: Offsets = {topic: dict(parts) for topic, parts in committed.items()}
    for (topic, partition), files in sorted(by_partition.items()):
        files.sort()
        # A partition never committed starts where its oldest file does.
        next_offset = committed.get(topic, {}).get(partition, files[0].first_offset)
        while True:
            covering = [f for f in files if f.first_offset <= next_offset <= f.last_offset]
            if not covering:
                break
            exact = [f for f in covering if f.first_offset == next_offset]
            if exact:
                best = max(exact, key=lambda f: f.last_offset)
                whole.append(best)
            else:
                best = max(covering, key=lambda f: f.last_offset)
                trims.append((best, next_offset))
            next_offset = best.last_offset + 1
        if next_offset != committed.get(topic, {}).get(partition, files[0].first_offset):
            offsets.setdefault(topic, {})[partition] = next_offset
    return whole, trims, offsets


def snapshot_offsets(table: Table) -> Offsets:
    """The committed offsets the newest snapshot that records them holds (a snapshot another
    engine made, e.g. a compaction, may not: its ancestors are read)."""
    snapshot = table.current_snapshot()
    while snapshot is not None:
        summary = snapshot.summary
        value = summary.additional_properties.get(OFFSETS_PROPERTY) if summary else None
        if value is not None:
            return {
                topic: {int(partition): int(offset) for partition, offset in parts.items()}
                for topic, parts in json.loads(value).items()
            }
        if snapshot.parent_snapshot_id is None:
            break
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id)
    return {}


def _jsonable(offsets: Offsets) -> dict[str, dict[str, int]]:
    return {topic: {str(p): o for p, o in parts.items()} for topic, parts in offsets.items()}


def arrow_schema() -> Any:
    """The lake's schema as an Arrow schema (what a landed file's footer holds)."""
    import polars as pl

    from warehouse.lake import lake_schema

    return pl.DataFrame(schema=lake_schema()).to_arrow().schema


def _catalog_busy_errors() -> tuple[type[Exception], ...]:
    from sqlalchemy.exc import OperationalError

    return (OperationalError,)


def _open_catalog(uri: str, location: str) -> SqlCatalog:
    """A pyiceberg SQL catalog at ``uri``, reaching S3 as the lake does (the AWS environment)."""
    from pyiceberg.catalog.sql import SqlCatalog
    from sqlalchemy.exc import (
        ArgumentError,
        IntegrityError,
        NoSuchModuleError,
        OperationalError,
        ProgrammingError,
    )

    properties: dict[str, str] = {
        "uri": uri, "warehouse": location,
        # As the lake's own client (flywheel.storage): an unreachable store fails in seconds.
        "s3.connect-timeout": str(CONNECT_TIMEOUT_S), "s3.request-timeout": str(REQUEST_TIMEOUT_S),
    }  # fmt: skip
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        properties["s3.endpoint"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        properties["s3.region"] = region
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        for attempt in range(CREATE_ATTEMPTS):
            try:
                return SqlCatalog(NAMESPACE, **properties)
            except (OperationalError, IntegrityError, ProgrammingError) as exc:
                # Two processes creating the catalog's tables at once: one of them finds the
                # table it was about to create ("already exists"), or the file locked.
                racing = "already exists" in str(exc) or "locked" in str(exc)
                if not racing or attempt == CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))
        raise AssertionError("unreachable")
    except (ArgumentError, NoSuchModuleError) as exc:
        # The URL is not repeated: it may hold a password.
        kind = "no driver for it is installed" if isinstance(exc, NoSuchModuleError) else (
            "not a SQLAlchemy URL (e.g. postgresql+psycopg2://user@host/db)"
        )  # fmt: skip
        raise ConfigError(f"{CATALOG_SETTING}: {kind}") from None
    except ModuleNotFoundError as exc:  # the URL names a driver that is not installed
        raise MissingExtraError(
            f"{CATALOG_SETTING}: its database driver ({exc.name}) is not installed; for "
            f"PostgreSQL: {install_hint('postgres')}"
        ) from None
    except OperationalError as exc:
        raise TransientError(
            f"{CATALOG_SETTING}: the catalog is unreachable ({type(exc.orig).__name__})"
        ) from None


def models_table(table: LakeTable, name: str) -> Any:
    """The rows of the model table ``name`` that Spark wrote (``MODELS_NAMESPACE``) as Arrow,
    read through pyiceberg; ``NotFoundError`` when there is none."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        found = table.catalog().load_table((MODELS_NAMESPACE, name))
    except NoSuchTableError:
        raise NotFoundError(
            f"the lake's catalog has no {MODELS_NAMESPACE}.{name} table: run "
            "`flywheel transform run --engine spark` first"
        ) from None
    return found.scan().to_arrow()


def drop_models(table: LakeTable) -> list[str]:
    """Drop every table Spark wrote in the lake's catalog (``MODELS_NAMESPACE``) and delete
    every file under each one's location, snapshots and metadata included: what an erasure does
    to them (the next Spark run builds them again, in full, from the erased lake). Returns the
    names dropped."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    from flywheel.storage import open_storage, parse_lake_url

    catalog = table.catalog()
    try:
        identifiers = catalog.list_tables(MODELS_NAMESPACE)
    except NoSuchNamespaceError:
        return []
    dropped = []
    for identifier in identifiers:
        try:
            location = catalog.load_table(identifier).metadata.location
        except NoSuchTableError:
            continue
        catalog.drop_table(identifier)
        if location.startswith("file:"):
            location = "/" + location.removeprefix("file:").lstrip("/")
        storage = open_storage(parse_lake_url(location), check=False)
        try:
            storage.filesystem().delete_dir(storage.path_of("").rstrip("/"))
        except FileNotFoundError:
            pass
        dropped.append(identifier[-1])
    return sorted(dropped)
