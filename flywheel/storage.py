"""Where the lake lives (``FLYWHEEL_LAKE__URL``): a local folder or an S3 bucket and prefix, and
the one file-system interface every reader and writer of it goes through.

``LakeLocation`` is the parsed URL; ``Storage`` reads and writes files under it by key (a POSIX
path relative to the location): ``LocalStorage`` on a local disk, ``ObjectStorage`` on S3 or an
S3-compatible store through ``pyarrow.fs.S3FileSystem``, configured from the standard AWS
environment (``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credential variables or a profile).

The two differ where the stores do. A local file is written under a hidden name, flushed and
renamed, so it appears whole (the caller renames: the rename is the ingest workers' commit). An
object cannot be renamed, but appears whole or not at all when its upload completes, so it is
written once under its final key. Errors of the S3 client are translated here, in one place.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from flywheel.errors import ConfigError, FlywheelError, TransientError

if TYPE_CHECKING:
    from collections.abc import Iterator

SETTING = "FLYWHEEL_LAKE__URL"
# S3's bucket naming rules (lower case, 3 to 63 characters, no leading or trailing dot or dash).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LakeLocation:
    """A parsed ``FLYWHEEL_LAKE__URL``: a local folder, or a bucket and a prefix on S3."""

    url: str
    """As given (a local path is kept as written)."""
    bucket: str | None = None
    """The S3 bucket; None for a local folder."""
    prefix: str = ""
    """Inside the bucket, without leading or trailing slash; empty for the bucket's root."""

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine's file system."""
        return self.bucket is None

    def local_path(self) -> Path:
        """The folder of a local location."""
        if self.bucket is not None:
            raise ValueError(f"{self.url} is not a local folder")
        return Path(self.url.removeprefix("file://"))

    def child(self, name: str) -> LakeLocation:
        """The location of ``name`` (one or more path segments) inside this one."""
        if self.bucket is None:
            return LakeLocation(str(self.local_path() / name))
        prefix = f"{self.prefix}/{name}" if self.prefix else name
        return LakeLocation(f"s3://{self.bucket}/{prefix}", self.bucket, prefix)

    def __str__(self) -> str:
        return self.url


def parse_lake_url(url: str) -> LakeLocation:
    """Parse a lake URL: a local path (``file://`` allowed) or ``s3://bucket[/prefix]``.

    Raises ``ValueError`` with the reason (the settings name the variable).
    """
    text = url.strip()
    if not text:
        raise ValueError("is empty; unset it for the lake under the data dir")
    if "://" not in text:
        return LakeLocation(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            raise ValueError("a file URL is file:///absolute/path")
        return LakeLocation(parts.path)
    if scheme not in ("s3", "s3a"):
        raise ValueError(
            f"takes a local path or s3://bucket/prefix, not a {scheme or 'schemeless'}:// URL "
            "(S3-compatible stores: s3://bucket/prefix with AWS_ENDPOINT_URL)"
        )
    if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
        raise ValueError(
            "an s3:// URL is s3://bucket/prefix, without credentials, port, query or fragment "
            "(the endpoint is AWS_ENDPOINT_URL, the credentials the AWS environment's)"
        )
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ValueError(
            f"{bucket!r} is not an S3 bucket name (3 to 63 characters: lower-case letters, "
            "digits, dots and dashes)"
        )
    prefix = parts.path.strip("/")
    segments = prefix.split("/") if prefix else []
    if any(segment in ("", ".", "..") for segment in segments):
        raise ValueError("the prefix of an s3:// URL has an empty, '.' or '..' segment")
    return LakeLocation(f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}", bucket, prefix)


@dataclass(frozen=True, order=True)
class StoredFile:
    """A file found under a location: its key (relative, POSIX) and size in bytes."""

    key: str
    size: int


class Storage(Protocol):
    """Files under one location, addressed by key (a POSIX path relative to it)."""

    location: LakeLocation

    def list_files(self, folder: str = "") -> Iterator[StoredFile]:
        """Every file under ``folder`` (recursively), in no particular order."""
        ...

    def path_of(self, key: str) -> str:
        """The path the file system names the file by (for pyarrow's ``filesystem=``)."""
        ...

    def filesystem(self) -> Any:
        """The ``pyarrow.fs.FileSystem`` behind it."""
        ...

    def read_bytes(self, key: str) -> bytes | None:
        """A whole file, or None when there is none."""
        ...

    def write_once(self, key: str, data: bytes) -> None:
        """Make ``data`` the file ``key``, appearing whole or not at all."""
        ...


class LocalStorage:
    """Files in a local folder."""

    def __init__(self, location: LakeLocation) -> None:
        self.location = location
        self.root = location.local_path()

    def list_files(self, folder: str = "") -> Iterator[StoredFile]:
        base = self.root / folder if folder else self.root
        if not base.is_dir():
            return
        for dirpath, _, names in os.walk(base):
            for name in names:
                path = Path(dirpath) / name
                yield StoredFile(path.relative_to(self.root).as_posix(), path.stat().st_size)

    def path_of(self, key: str) -> str:
        return str(self.root / key)

    def filesystem(self) -> Any:
        from pyarrow import fs

        return fs.LocalFileSystem()

    def read_bytes(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def write_once(self, key: str, data: bytes) -> None:
        # Under a hidden name, flushed, then renamed: readers see the whole file or none.
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


def s3_filesystem() -> Any:
    """A ``pyarrow.fs.S3FileSystem`` from the standard AWS environment: ``AWS_ENDPOINT_URL_S3``
    or ``AWS_ENDPOINT_URL`` for an S3-compatible store, ``AWS_REGION`` (or
    ``AWS_DEFAULT_REGION``), credentials from the variables, a profile or the instance."""
    from pyarrow import fs

    options: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "request_timeout": REQUEST_TIMEOUT_S,
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"AWS_ENDPOINT_URL must be http(s)://host[:port], not {endpoint!r}")
        options["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
        options["scheme"] = parts.scheme
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return fs.S3FileSystem(**options)


def translate(exc: OSError, location: LakeLocation, setting: str = SETTING) -> FlywheelError:
    """An error of pyarrow's S3 client as the platform's: a refusal of the credentials or of
    access is a ``ConfigError``; anything else (the endpoint unreachable, a timeout, a server
    error) a ``TransientError``. The message names the location (and ``setting``, the variable
    that set it), never a credential."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    refused = ("ACCESS_DENIED", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
               "HTTP response code: 403", "No credentials")  # fmt: skip
    if any(word in reason for word in refused):
        return ConfigError(
            f"{location} refused access ({setting}; check the AWS credentials): {reason}"
        )
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    where = f"the S3 endpoint {endpoint}" if endpoint else "S3"
    return TransientError(f"{location}: could not reach {where}: {reason}")


class ObjectStorage:
    """Objects under a bucket and prefix on S3 (or an S3-compatible store)."""

    def __init__(
        self, location: LakeLocation, filesystem: Any | None = None, *, setting: str = SETTING
    ) -> None:
        if location.bucket is None:
            raise ValueError(f"{location} is not on object storage")
        self.location = location
        self.setting = setting
        """The variable that names the location, in error messages."""
        self._fs = filesystem if filesystem is not None else s3_filesystem()
        self._base = f"{location.bucket}/{location.prefix}".rstrip("/")

    def check(self) -> None:
        """Stop at start with one line when the bucket is missing or the store unreachable."""
        from pyarrow import fs

        try:
            info = self._fs.get_file_info(self.location.bucket)
        except OSError as exc:
            raise translate(exc, self.location, self.setting) from None
        if info.type == fs.FileType.NotFound:
            raise ConfigError(
                f"the bucket {self.location.bucket} does not exist "
                f"({self.setting}={self.location}); "
                "create it first"
            )

    def list_files(self, folder: str = "") -> Iterator[StoredFile]:
        from pyarrow import fs

        base = f"{self._base}/{folder}".rstrip("/")
        selector = fs.FileSelector(base, recursive=True, allow_not_found=True)
        try:
            # pyarrow follows S3's paginated listing to the end.
            infos = self._fs.get_file_info(selector)
        except OSError as exc:
            raise translate(exc, self.location, self.setting) from None
        for info in infos:
            if info.type == fs.FileType.File:
                yield StoredFile(info.path[len(self._base) + 1 :], info.size)

    def path_of(self, key: str) -> str:
        return f"{self._base}/{key}"

    def filesystem(self) -> Any:
        return self._fs

    def read_bytes(self, key: str) -> bytes | None:
        try:
            with self._fs.open_input_stream(self.path_of(key)) as stream:
                data: bytes = stream.read()
                return data
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise translate(exc, self.location, self.setting) from None

    def write_once(self, key: str, data: bytes) -> None:
        # The whole file is in memory before the first request, so nothing but the upload can
        # fail half-way; an upload that fails is never completed, and S3 shows no object.
        try:
            with self._fs.open_output_stream(self.path_of(key)) as stream:
                stream.write(data)
        except OSError as exc:
            raise translate(exc, self.location, self.setting) from None

    def delete(self, key: str) -> None:
        """Remove the object ``key``; nothing when there is none. Through boto3 (the ``s3``
        extra): pyarrow's client leaves an empty marker object for the "folder" it empties."""
        self._request("delete_object", key)

    def write_if_absent(self, key: str, data: bytes) -> bool:
        """Make ``data`` the object ``key`` only if there is none yet, in one request S3 decides
        (a conditional put, ``If-None-Match: *``): False when one exists or another writer's
        conditional put of the key is under way. pyarrow's client cannot send the condition, so
        this goes through boto3 (the ``s3`` extra), configured from the same AWS environment."""
        return self._request("put_object", key, Body=data, IfNoneMatch="*")

    def _request(self, operation: str, key: str, **arguments: Any) -> bool:
        """One boto3 request on ``key``; False when S3 refuses a condition (412, or 409 for
        another conditional write of the key in flight), errors translated."""
        from flywheel.extras import require

        boto3 = require("boto3", extra="s3")
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=REQUEST_TIMEOUT_S)
        try:
            client = boto3.client("s3", endpoint_url=endpoint or None, config=config)
            object_key = self.path_of(key).partition("/")[2]
            getattr(client, operation)(Bucket=self.location.bucket, Key=object_key, **arguments)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise translate(OSError(str(exc)), self.location, self.setting) from None
        except BotoCoreError as exc:
            raise translate(OSError(str(exc)), self.location, self.setting) from None
        return True


def fsspec_options() -> dict[str, Any]:
    """``storage_options`` for s3fs (``datasets.load_dataset``, polars, pandas) from the same AWS
    environment ``s3_filesystem`` reads: the endpoint of an S3-compatible store, when one is
    set; credentials and region are found by botocore itself."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return {"endpoint_url": endpoint} if endpoint else {}


def open_storage(
    location: LakeLocation, *, check: bool = True, setting: str = SETTING
) -> LocalStorage | ObjectStorage:
    """The storage of a location; on S3 checked at once (``check``), so a missing bucket or an
    unreachable endpoint is one line at start, not a failure at the first landing. ``setting``:
    the variable that names the location, for error messages."""
    if location.is_local:
        return LocalStorage(location)
    storage = ObjectStorage(location, setting=setting)
    if check:
        storage.check()
    return storage
