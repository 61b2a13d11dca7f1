"""Every object under a prefix, decoded to text, so a test can look for a value in all of
them: Parquet files row by row (compressed pages would hide a value from a byte search), Avro
files (Iceberg's manifests and manifest lists) record by record, anything else as text."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs


def decoded_objects(filesystem: fs.FileSystem, root: str) -> dict[str, str]:
    """Each file under ``root`` (a pyarrow path: ``bucket/prefix`` or a local folder) and its
    content as text."""
    found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    texts = {}
    for info in found:
        if info.type != fs.FileType.File:
            continue
        with filesystem.open_input_file(info.path) as handle:
            data = handle.read()
        texts[info.path] = decode(info.path, data)
    return texts


def decode(path: str, data: bytes) -> str:
    """One object's content as text (see the module's docstring)."""
    if path.endswith(".parquet"):
        table = pq.read_table(pa.BufferReader(data))
        return json.dumps(table.to_pylist(), default=str)
    if path.endswith(".avro"):
        return json.dumps(_avro_records(data), default=str)
    return data.decode("utf-8", errors="replace")


def _avro_records(data: bytes) -> list[Any]:
    from pyiceberg.avro.file import AvroFile
    from pyiceberg.io.pyarrow import PyArrowFileIO
    from pyiceberg.typedef import Record

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "object.avro"
        path.write_bytes(data)
        with AvroFile[Record](PyArrowFileIO().new_input(str(path))) as records:
            return [_plain(record) for record in records]


def _plain(value: Any) -> Any:
    """Records, lazy dicts and bytes as plain lists, dicts and text."""
    from pyiceberg.typedef import Record

    if isinstance(value, Record):
        return [_plain(item) for item in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
