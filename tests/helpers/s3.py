"""A real S3 endpoint for tests: ``moto_server`` (the dev extra) started as a process of its own
on a free loopback port, once per session, and a bucket of each test's own behind the standard
AWS environment. A plugin of the root conftest (``pytest_plugins``); a test that uses
``s3_server`` (directly or through ``s3_bucket``) is marked ``integration`` automatically.

The server is ``flywheel.dev.locals3``'s (a process of its own, which the benchmarks start too).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flywheel.dev import locals3
from flywheel.dev.locals3 import ACCESS_KEY, REGION, SECRET_KEY
from flywheel.errors import LocalS3Error

S3_FIXTURES = {"s3_server", "s3_bucket"}
"""Fixtures that need the server; tests using them are marked ``integration``."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if S3_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class S3Server:
    """A running ``moto_server``."""

    endpoint_url: str
    log: Path
    local: locals3.LocalS3

    def client(self) -> Any:
        """A boto3 S3 client for it (to set up buckets and to look at objects as they are)."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        )  # fmt: skip


@dataclass(frozen=True)
class S3Bucket:
    """A bucket of one test's own, with the AWS environment pointing at its server."""

    server: S3Server
    name: str

    def url(self, prefix: str = "lake") -> str:
        """``s3://<bucket>/<prefix>``."""
        return f"s3://{self.name}/{prefix}" if prefix else f"s3://{self.name}"

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix``, sorted, read page by page as S3 lists them."""
        pages = self.server.client().get_paginator("list_objects_v2")
        found: list[str] = []
        for page in pages.paginate(Bucket=self.name, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A ``moto_server`` process on a free loopback port for the whole session."""
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    try:
        server = locals3.start(log)
    except LocalS3Error as exc:
        pytest.fail(str(exc))
    try:
        yield S3Server(endpoint_url=server.endpoint_url, log=log, local=server)
    finally:
        locals3.stop(server)


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Bucket:
    """A new, empty bucket on the session's server, and the standard AWS environment
    (``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credential variables) pointing at it."""
    # Nothing of the developer's own AWS set-up may reach the test, nor the test reach AWS.
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in locals3.environment(s3_server.local, config_dir=tmp_path).items():
        monkeypatch.setenv(name, value)
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return S3Bucket(server=s3_server, name=name)
