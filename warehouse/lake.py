"""The lake: append-only Parquet files of anonymised events, one file per landed micro-batch.

Layout under ``<data dir>/lake/events/``::

    landed_date=2026-11-26/flywheel.events.v1+3+00000000000000000120+00000000000000000245.parquet
                           <topic>          +<partition>+<first offset>  +<last offset>

The file name is the commit: a batch is written to a hidden temporary name, flushed to disk and
renamed, so a file either exists whole or not at all, and the highest ``last offset`` per
(topic, partition) is exactly how far that partition has landed. A batch is never split over
several files (a crash between two renames would lose the second); event time is the
warehouse's concern, so files are partitioned by landing date only.

``topics.json`` beside the day folders records which Kafka topic (by topic id) each topic name
was landed from; a topic created again lands under ``<topic>~<n>`` (``TopicRecord``).

A file may hold fewer rows than its offset range: poison messages went to the dead-letter topic
and duplicates were dropped, but their offsets are covered all the same, so nothing is read twice.

On object storage (``Lake.at`` an ``s3://`` location) the layout is the same under
``<prefix>/events/``, but there is no rename: a batch is uploaded once under its final key and
appears whole when the upload completes (``Lake.land``). Files are listed, and read, through
``flywheel.storage``; ``LakeFile.path`` is then the object's path as pyarrow names it
(``bucket/key``), to be read through ``Lake.read_table`` and ``Lake.read_metadata``, not opened
as a local file. Commands build the lake with ``open_lake``, from ``FLYWHEEL_LAKE__URL``. In
progress: the worker's write, commit, publish steps and the lake's other readers and writers
still work on a local lake only, and refuse one on object storage at start (``open_lake``'s
``local_only``; docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import ConfigError
from flywheel.files import replace_text
from flywheel.storage import SETTING, LakeLocation, LocalStorage, ObjectStorage, open_storage

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flywheel.settings import Settings

OFFSET_DIGITS = 20
_NAME = re.compile(
    r"^(?P<topic>[A-Za-z0-9._-]+(?:~\d+)?)\+(?P<partition>\d+)\+(?P<first>\d+)\+(?P<last>\d+)"
    r"\.parquet$"
)
TEMPORARY_PREFIX = ".landing-"
CACHE_FOLDER = "lake-cache"
"""In the data dir: this host's copies of files of a lake on object storage, for DuckDB."""
SPOOL_FOLDER = "lake-spool"
"""In the data dir: batches written on this host before their upload to a lake on object storage."""
TOPICS_FILE = "topics.json"
"""Beside the day folders: the Kafka topic id each topic was landed from (``TopicRecord``)."""


@dataclass(frozen=True)
class TopicRecord:
    """One Kafka topic (by id) a topic name of the lake was landed from.

    A topic deleted and created again keeps its name and starts its offsets over, so its files
    would take the names of the old topic's. Each accepted topic id therefore lands under a
    name of its own: the topic's name for the first, ``<topic>~<n>`` for the n-th.
    """

    topic_id: str
    lake_topic: str


def lake_schema() -> dict[str, Any]:
    """Column names and polars types of a lake file (contract v1 flattened, anonymised).

    ``prompt`` holds each message's role and text: the text as sent, or a message's text parts
    joined by a line break, or "" for an assistant message that only called tools. What the
    role and text leave out is in ``prompt_structure``: one entry per message of ``prompt``
    (its content parts, tool calls and tool call id), NULL when no message had any, so the
    common prompt is read as before. ``metadata`` is the event's metadata as canonical JSON
    text (``ingest.contract.canonical_metadata``), NULL when there was none. Both are columns of
    their own, added last, so that a lake landed before them is read by every engine through
    plain schema evolution (docs/architecture.md, "Metadata and prompt structure in the lake").
    """
    import polars as pl

    message = pl.Struct({"role": pl.String, "content": pl.String, "response_id": pl.String})
    part = {"type": pl.String, "text": pl.String, "image_url": pl.String, "detail": pl.String}
    call = {"id": pl.String, "type": pl.String, "name": pl.String, "arguments": pl.String}
    return {
        "event_id": pl.String,
        "type": pl.String,
        "occurred_at": pl.Datetime("us", "UTC"),
        "user_pseudonym": pl.String,
        "pseudonym_key_version": pl.Int32,
        "conversation_id": pl.String,
        "app_name": pl.String,
        "app_version": pl.String,
        "consent_training": pl.Boolean,
        "consent_policy_version": pl.String,
        "schema_version": pl.Int32,
        "response_id": pl.String,
        "parent_id": pl.String,
        "prompt": pl.List(message),
        "response": pl.String,
        "model_id": pl.String,
        "model_version": pl.String,
        "copy_text": pl.String,
        "copy_span_start": pl.Int64,
        "copy_span_end": pl.Int64,
        "code_block": pl.Boolean,
        "edited_text": pl.String,
        "new_response_id": pl.String,
        "response_a_id": pl.String,
        "response_b_id": pl.String,
        "choice": pl.String,
        "rating_value": pl.String,
        "rating_reason": pl.String,
        "scrubbed": pl.List(pl.Struct({"kind": pl.String, "count": pl.Int32})),
        "source_topic": pl.String,
        "source_partition": pl.Int32,
        "source_offset": pl.Int64,
        "landed_at": pl.Datetime("us", "UTC"),
        # Added later, last (where Iceberg's schema evolution puts them): files landed before
        # have neither (``conform``).
        "metadata": pl.String,
        "prompt_structure": pl.List(
            pl.Struct(
                {
                    "parts": pl.List(pl.Struct(part)),
                    "tool_calls": pl.List(pl.Struct(call)),
                    "tool_call_id": pl.String,
                }
            )
        ),
    }


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """A lake frame with every column of ``lake_schema`` in its order: a file landed before a
    column existed reads as NULLs in it, as Iceberg, DuckDB and Spark read it."""
    import polars as pl

    schema = lake_schema()
    missing = [name for name in schema if name not in frame.columns]
    if not missing:
        return frame
    added = frame.with_columns(pl.lit(None, schema[name]).alias(name) for name in missing)
    return added.select(list(schema))


def lake_columns() -> list[str]:
    """The lake's column names, in file order."""
    return list(lake_schema())


@dataclass(frozen=True, order=True)
class LakeFile:
    """One landed batch, as its file name describes it."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    path: Path

    @property
    def landed_date(self) -> date:
        """The day (UTC) the batch landed: its ``landed_date=`` folder."""
        return date.fromisoformat(Path(self.path).parent.name.removeprefix("landed_date="))


def file_name(topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """The name of the file holding offsets ``first_offset..last_offset`` of a partition."""
    return (
        f"{topic}+{partition}+{first_offset:0{OFFSET_DIGITS}d}+{last_offset:0{OFFSET_DIGITS}d}"
        ".parquet"
    )


def parse_name(path: Path) -> LakeFile | None:
    """The batch a lake file name describes, or None for anything else."""
    if path.name.startswith("."):
        return None  # hidden: a batch still being written (TEMPORARY_PREFIX) or not ours
    match = _NAME.match(path.name)
    if match is None:
        return None
    return LakeFile(
        topic=match["topic"],
        partition=int(match["partition"]),
        first_offset=int(match["first"]),
        last_offset=int(match["last"]),
        path=path,
    )


_OS_ERROR = re.compile(r"\(os error (?P<errno>\d+)\)")


def polars_errno(exc: BaseException) -> int | None:
    """The errno a polars error names ("... No space left on device (os error 28)"): polars
    reports the file system's refusals as its own errors, not as ``OSError``."""
    match = _OS_ERROR.search(str(exc))
    return int(match["errno"]) if match else None


def _as_os_error(exc: Exception, path: Path) -> OSError:
    """A failed write of a lake file as the ``OSError`` it is, so that callers retry it.

    polars reports the file system's errors as its own ``ComputeError``: a full disk reads
    "No space left on device (os error 28)" while the data is written, but "Invalid thrift:
    transport error" when the footer does not fit. A frame of the lake's schema always encodes,
    so whatever fails while writing it is the file system; without an errno it is ``EIO``.
    polars' own message is left out: some quote the values they could not write.
    """
    number = polars_errno(exc) or errno.EIO
    return OSError(number, f"{os.strerror(number)} (polars {type(exc).__name__})", str(path))


class Lake:
    """The events lake under ``root`` (``<data dir>/lake/events``), or on object storage."""

    def __init__(
        self, root: Path, *, objects: ObjectStorage | None = None,
        location: LakeLocation | None = None, spool: Path | None = None,
    ) -> None:  # fmt: skip
        self.root = root
        self.objects = objects
        """The lake's objects when it is on object storage; None for a local folder."""
        self.location = location or LakeLocation(str(root.parent))
        """Where the lake is, as ``FLYWHEEL_LAKE__URL`` names it (its events under ``events/``)."""
        self.spool: Path = spool if objects is not None and spool is not None else root
        """Where batches are written before they land: the events folder itself on a local
        disk (renamed into place), a local folder on object storage (uploaded, then removed)."""
        self.cache = (spool.parent / CACHE_FOLDER if spool is not None else None) or root
        """Where DuckDB reads lake files from (``readable``): the events folder itself on a
        local disk; on object storage, a folder of this host's copies of landed files, which
        never change once landed, under the same names (``landed_date=.../<name>``)."""

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> Lake:
        """The lake of a data directory, as ``FLYWHEEL_LAKE__URL`` unset has it. Commands build
        their lake with ``open_lake``, which honours the setting."""
        return cls(data_dir / "lake" / "events")

    @classmethod
    def at(cls, location: LakeLocation, *, check: bool = True, spool: Path | None = None) -> Lake:
        """The lake at a location (``Settings.lake_location``): its events under ``events/``.
        On object storage the bucket is checked at once (``check``), so a missing bucket or an
        unreachable endpoint stops the caller with one line, and batches are written in
        ``spool`` (a local folder; default a temporary one) before they are uploaded."""
        events = location.child("events")
        if location.is_local:
            return cls(events.local_path(), location=location)
        objects = open_storage(events, check=check)
        assert isinstance(objects, ObjectStorage)
        if spool is None:  # a lake object of its own (open_lake gives the data dir's)
            import tempfile

            spool = Path(tempfile.mkdtemp(prefix="flywheel-lake-")) / SPOOL_FOLDER
        return cls(Path(objects.path_of("")), objects=objects, location=location, spool=spool)

    def files(self, topic: str | None = None) -> Iterator[LakeFile]:
        """Every landed file (of one topic), in no particular order."""
        if self.objects is not None:
            yield from self._object_files(topic)
            return
        if not self.root.exists():
            return
        # Listed first, then yielded: a caller that stops early must not leave scandir open.
        with os.scandir(self.root) as days:
            folders = [d.path for d in days if d.is_dir() and d.name.startswith("landed_date=")]
        for folder in folders:
            with os.scandir(folder) as entries:
                names = [entry.path for entry in entries]
            for name in names:
                landed = parse_name(Path(name))
                if landed is not None and (topic is None or landed.topic == topic):
                    yield landed

    def _object_files(self, topic: str | None) -> Iterator[LakeFile]:
        assert self.objects is not None
        # Listed first (one paginated listing of the prefix), then yielded.
        keys = [stored.key for stored in self.objects.list_files()]
        for key in keys:
            folder, _, name = key.partition("/")
            if not folder.startswith("landed_date=") or "/" in name:
                continue
            landed = parse_name(Path(self.objects.path_of(key)))
            if landed is not None and (topic is None or landed.topic == topic):
                yield landed

    def read_table(self, landed: LakeFile, columns: list[str] | None = None) -> pa.Table:
        """A landed file's rows (of ``columns``) as an Arrow table, wherever the lake is."""
        import pyarrow.parquet as pq

        filesystem = self.objects.filesystem() if self.objects is not None else None
        return pq.read_table(str(landed.path), columns=columns, filesystem=filesystem)

    def read_metadata(self, landed: LakeFile) -> pq.FileMetaData:
        """A landed file's Parquet footer (row count, schema, statistics), read alone."""
        import pyarrow.parquet as pq

        filesystem = self.objects.filesystem() if self.objects is not None else None
        return pq.read_metadata(str(landed.path), filesystem=filesystem)

    def landed_offsets(self, topic: str) -> dict[int, int]:
        """The highest landed offset of every partition of ``topic``."""
        highest: dict[int, int] = {}
        for landed in self.files(topic):
            if landed.last_offset > highest.get(landed.partition, -1):
                highest[landed.partition] = landed.last_offset
        return highest

    def partition_files(self, topic: str, partition: int) -> list[LakeFile]:
        """The files of one partition, oldest offsets first."""
        return sorted(f for f in self.files(topic) if f.partition == partition)

    def remove_temporary_files(self, topic: str, partition: int) -> int:
        """Delete the half-written batches of one partition a crash left behind; returns how many.

        Only the partition's owner writes its temporary files, so the owner may remove them.
        """
        removed = 0
        if not self.spool.exists():
            return 0
        prefix = f"{TEMPORARY_PREFIX}{topic}+{partition}+"
        for folder in self.spool.glob("landed_date=*"):
            for stale in folder.glob(f"{glob.escape(prefix)}*"):
                stale.unlink()
                removed += 1
        return removed

    def write_temporary(
        self,
        frame: pl.DataFrame,
        *,
        topic: str,
        partition: int,
        first_offset: int,
        last_offset: int,
        now: datetime | None = None,
    ) -> tuple[Path, Path]:
        """Write a batch under a temporary name, flushed to disk; returns (temporary, final).
        ``place`` then lands it under its final name (on object storage: its final key)."""
        day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
        name = file_name(topic, partition, first_offset, last_offset)
        folder = self.spool / f"landed_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f"{TEMPORARY_PREFIX}{name}"
        if self.objects is not None:
            final = Path(self.objects.path_of(f"landed_date={day}/{name}"))
        else:
            final = folder / name
        try:
            with open(temporary, "wb") as handle:
                frame.write_parquet(handle, compression="zstd", statistics=True)
                handle.flush()
                os.fsync(handle.fileno())
        except Exception as exc:
            # A half-written file would sit there until the partition's next assignment, and on
            # a full disk it holds the very space the retry needs.
            temporary.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise
            raise _as_os_error(exc, temporary) from exc
        return temporary, final

    def place(self, temporary: Path, final: Path) -> None:
        """Land a batch ``write_temporary`` wrote: renamed to its final name on a local disk
        (``sync_landed`` makes that durable), uploaded once under its final key on object
        storage, where it appears whole when the upload completes, then removed from the spool.
        A retry after a failed upload uploads the same bytes again."""
        if self.objects is None:
            os.replace(temporary, final)
            return
        self.objects.write_once(self.key_of(final), temporary.read_bytes())
        temporary.unlink()

    def sync_landed(self, final: Path) -> None:
        """Make a landed batch durable: its folder's fsync on a local disk; on object storage a
        completed upload is durable already."""
        if self.objects is None:
            Lake.sync_folder(final.parent)

    def readable(self, files: Iterable[LakeFile]) -> list[LakeFile]:
        """The same files, at paths DuckDB can read: as they are on a local disk; on object
        storage, copies in ``cache`` (downloaded once, renamed into place when whole)."""
        if self.objects is None:
            return list(files)
        copies = []
        for landed in files:
            path = Path(landed.path)
            local = self.cache / path.parent.name / path.name
            if not local.exists():
                data = self.objects.read_bytes(self.key_of(path))
                if data is None:
                    continue  # gone (expired) since it was listed: as a missing local file
                LocalStorage(LakeLocation(str(self.cache))).write_once(
                    f"{path.parent.name}/{path.name}", data
                )
            copies.append(dataclasses.replace(landed, path=local))
        return copies

    def readable_root(self, names: Iterable[str]) -> Path:
        """The folder DuckDB reads the named files (``landed_date=.../<name>``) from: the
        events folder on a local disk; on object storage ``cache``, holding copies of them."""
        if self.objects is None:
            return self.root
        files = (parse_name(Path(self.objects.path_of(name))) for name in names)
        self.readable(landed for landed in files if landed is not None)
        return self.cache

    def delete(self, landed: LakeFile) -> int:
        """Delete a landed file (and this host's copy of it); returns the bytes it held."""
        if self.objects is None:
            size = Path(landed.path).stat().st_size
            Path(landed.path).unlink()
            return size
        filesystem = self.objects.filesystem()
        size = int(filesystem.get_file_info(str(landed.path)).size or 0)
        filesystem.delete_file(str(landed.path))
        self.forget_copy(landed)
        return size

    def forget_copy(self, landed: LakeFile) -> None:
        """Drop this host's copy of a lake object (``readable``), as after it was rewritten."""
        if self.objects is not None:
            path = Path(landed.path)
            (self.cache / path.parent.name / path.name).unlink(missing_ok=True)

    @staticmethod
    def relative(landed: LakeFile) -> str:
        """A lake file's path under the events folder: ``landed_date=.../<name>``."""
        path = Path(landed.path)
        return f"{path.parent.name}/{path.name}"

    def key_of(self, path: Path | str) -> str:
        """A lake file's key on object storage (its path under the events prefix)."""
        assert self.objects is not None
        return str(path).removeprefix(self.objects.path_of("").rstrip("/") + "/")

    @staticmethod
    def publish(temporary: Path, final: Path) -> None:
        """Rename a written batch to its final name (the commit) and make the rename durable."""
        os.replace(temporary, final)
        Lake.sync_folder(final.parent)

    @staticmethod
    def sync_folder(folder: Path) -> None:
        """Make the renames in a folder durable (``publish`` does so itself)."""
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @staticmethod
    def rewrite_without_users(
        path: Path, pseudonyms: set[str], *, temporary: Path
    ) -> tuple[int, int]:
        """Rewrite the lake file ``path`` (landed or still temporary) without the events of
        ``pseudonyms``: written to ``temporary`` (a hidden name beside it), flushed, and renamed
        over it, so readers see the old file or the new one. It keeps its name (its offsets),
        empty if nothing is left. Returns (events removed, events kept)."""
        import polars as pl

        frame = pl.read_parquet(path)
        keep = without_users(frame, pseudonyms)
        Lake.write_over(path, keep, temporary=temporary)
        return frame.height - keep.height, keep.height

    @staticmethod
    def write_over(path: Path, frame: pl.DataFrame, *, temporary: Path) -> None:
        """Replace the local file ``path`` by ``frame``: written to ``temporary`` (a hidden
        name beside it), flushed, and renamed over it, so readers see the old file or the new
        one, never half of one."""
        with open(temporary, "wb") as handle:
            frame.write_parquet(handle, compression="zstd", statistics=True)
            handle.flush()
            os.fsync(handle.fileno())
        Lake.publish(temporary, path)

    def rewrite(self, landed: LakeFile, frame: pl.DataFrame, *, temporary_prefix: str) -> None:
        """Replace a landed file's rows by ``frame``, under its own name (its offsets stay, and
        with them the workers' resume points): locally renamed over it from a hidden name
        beginning ``temporary_prefix`` (``write_over``); on object storage uploaded again under
        its key, which replaces the object whole, and this host's copy of it dropped."""
        if self.objects is None:
            path = Path(landed.path)
            self.write_over(path, frame, temporary=path.with_name(temporary_prefix + path.name))
            return
        self.write_frame(self.key_of(landed.path), frame)
        self.forget_copy(landed)

    def local_root(self, what: str) -> Path:
        """The events folder of a local lake, for ``what`` that reads or rewrites its files in
        place; on object storage a ``ConfigError`` (``not_supported_on_object_storage``)."""
        if self.objects is not None:
            raise not_supported_on_object_storage(self.location, what)
        return self.root

    def land(
        self, frame: pl.DataFrame, *, topic: str, partition: int, first_offset: int,
        last_offset: int, now: datetime | None = None,
    ) -> Path:  # fmt: skip
        """Write and publish a batch in one step (for callers with nothing to do in between).

        On object storage the batch is uploaded once under its final key, where it appears whole
        when the upload completes; locally it is written, flushed and renamed."""
        if self.objects is not None:
            day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
            key = f"landed_date={day}/{file_name(topic, partition, first_offset, last_offset)}"
            # The same bytes a local landing writes to its file.
            return Path(self.write_frame(key, frame))
        temporary, final = self.write_temporary(
            frame, topic=topic, partition=partition, first_offset=first_offset,
            last_offset=last_offset, now=now,
        )  # fmt: skip
        self.publish(temporary, final)
        return final

    def read_frame(self, landed: LakeFile) -> pl.DataFrame:
        """A landed file's rows as a polars frame of the current lake columns (``conform``),
        wherever the lake is."""
        import polars as pl

        frame = pl.from_arrow(self.read_table(landed))
        assert isinstance(frame, pl.DataFrame)
        return conform(frame)

    def write_frame(self, key: str, frame: pl.DataFrame) -> str:
        """Write ``frame`` as a lake file (Parquet as a landing writes it) once under ``key``
        (``write_file``); returns its path."""
        buffer = io.BytesIO()
        frame.write_parquet(buffer, compression="zstd", statistics=True)
        return self.write_file(key, buffer.getvalue())

    def write_file(self, key: str, data: bytes) -> str:
        """Write ``data`` once under ``key`` (a path relative to the events folder), whole or not
        at all (renamed into place on a local disk); returns the path ``LakeFile.path`` takes."""
        if self.objects is not None:
            self.objects.write_once(key, data)
            return self.objects.path_of(key)
        LocalStorage(LakeLocation(str(self.root))).write_once(key, data)
        path = self.root / key
        Lake.sync_folder(path.parent)
        return str(path)

    def topic_records(self, topic: str) -> list[TopicRecord]:
        """The topic ids ``topic`` was landed from, oldest first (the last is current)."""
        text = self._topics_text()
        if text is None:
            return []
        recorded = json.loads(text).get(topic, [])
        return [TopicRecord(r["topic_id"], r["lake_topic"]) for r in recorded]

    def record_topic(self, topic: str, topic_id: str) -> TopicRecord:
        """Land ``topic`` from the Kafka topic ``topic_id`` from now on; returns its record."""
        text = self._topics_text()
        every = json.loads(text) if text is not None else {}
        records = every.setdefault(topic, [])
        lake_topic = topic if not records else f"{topic}~{len(records) + 1}"
        records.append({"topic_id": topic_id, "lake_topic": lake_topic})
        content = json.dumps(every, indent=2, sort_keys=True) + "\n"
        if self.objects is not None:
            # Replaced whole. Two hosts recording a topic at once would each write their own
            # view: left for the table format's catalog, which commits atomically.
            self.objects.write_once(TOPICS_FILE, content.encode())
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            replace_text(self.root / TOPICS_FILE, content)
        return TopicRecord(topic_id, lake_topic)

    def _topics_text(self) -> str | None:
        if self.objects is not None:
            data = self.objects.read_bytes(TOPICS_FILE)
            return data.decode() if data is not None else None
        path = self.root / TOPICS_FILE
        return path.read_text() if path.exists() else None

    def recent_event_ids(self, topic: str, partition: int, *, limit: int) -> list[str]:
        """Event ids of the newest ``limit`` landed events of a partition, oldest first."""
        import polars as pl

        collected: list[list[str]] = []
        count = 0
        for landed in reversed(self.partition_files(topic, partition)):
            if self.objects is not None:
                ids = self.read_table(landed, ["event_id"]).column("event_id").to_pylist()
            else:
                ids = pl.read_parquet(landed.path, columns=["event_id"])["event_id"].to_list()
            collected.append(ids)
            count += len(ids)
            if count >= limit:
                break
        flat = [event_id for ids in reversed(collected) for event_id in ids]
        return flat[-limit:] if limit else []


def without_users(frame: pl.DataFrame, pseudonyms: Iterable[str]) -> pl.DataFrame:
    """A lake frame without the events of ``pseudonyms`` (events with no user are kept)."""
    import polars as pl

    column = pl.col("user_pseudonym")
    return frame.filter(~column.is_in(list(pseudonyms)) | column.is_null())


def open_lake(settings: Settings, *, local_only: str | None = None, check: bool = True) -> Lake:
    """The lake of a configuration (``FLYWHEEL_LAKE__URL``, else ``<data dir>/lake``): the one
    way a command, the API or a scheduled job builds it, so the setting is never ignored.

    ``local_only`` names what the caller does when that still needs lake files on a local disk
    (rewritten in place, renamed, read by DuckDB, locked): an ``s3://`` URL is then refused at
    once, before any request to the store, with one ``ConfigError`` naming the setting. On
    object storage the bucket is checked (``check``, see ``Lake.at``)."""
    location = settings.lake_location
    if local_only is not None and not location.is_local:
        raise not_supported_on_object_storage(location, local_only)
    return Lake.at(location, check=check, spool=settings.data_dir / SPOOL_FOLDER)


def not_supported_on_object_storage(location: LakeLocation, what: str) -> ConfigError:
    """The one line that refuses a lake on object storage to ``what`` (not supported yet)."""
    return ConfigError(
        f"{SETTING}={location}: {what} does not support a lake on object storage yet; "
        f"unset {SETTING} or give a local folder (docs/architecture.md)"
    )
