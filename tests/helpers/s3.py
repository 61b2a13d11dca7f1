"""A real S3 endpoint for tests: ``moto_server`` (the dev extra) started as a process of its own
on a free loopback port, once per session, and a bucket of each test's own behind the standard
AWS environment. A plugin of the root conftest (``pytest_plugins``); a test that uses
``s3_server`` (directly or through ``s3_bucket``) is marked ``integration`` automatically.

moto's in-process ``ThreadedMotoServer`` deadlocked under a client that sends several requests
at once (pyarrow's S3 client does), so the server runs as a separate process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flywheel.net import free_port

S3_FIXTURES = {"s3_server", "s3_bucket"}
"""Fixtures that need the server; tests using them are marked ``integration``."""

ACCESS_KEY = "moto-access-key"
SECRET_KEY = "moto-secret-key"  # moto accepts any credentials
REGION = "us-east-1"
START_TIMEOUT_S = 30.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if S3_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class S3Server:
    """A running ``moto_server``."""

    endpoint_url: str
    log: Path

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


def moto_server_command() -> Path:
    """The ``moto_server`` script beside this interpreter; fails the test when missing."""
    script = Path(sys.executable).parent / "moto_server"
    if not script.is_file():
        pytest.fail("moto_server is missing: install the dev extra (pip install -e '.[dev]')")
    return script


def _wait_until_up(process: subprocess.Popen[bytes], endpoint: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"moto_server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            # moto's own health endpoint; answers once the server takes requests.
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    pytest.fail(f"moto_server did not answer within {START_TIMEOUT_S:g} s: {log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # Its own session: the signal reaches the server and any child it started.
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A ``moto_server`` process on a free loopback port for the whole session."""
    command = moto_server_command()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(command), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_until_up(process, endpoint, log)
        yield S3Server(endpoint_url=endpoint, log=log)
    finally:
        _stop(process)


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Bucket:
    """A new, empty bucket on the session's server, and the standard AWS environment
    (``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credential variables) pointing at it."""
    # Nothing of the developer's own AWS set-up may reach the test, nor the test reach AWS.
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint_url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return S3Bucket(server=s3_server, name=name)
