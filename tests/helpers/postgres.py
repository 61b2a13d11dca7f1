"""A real PostgreSQL server for the lake catalog's tests: a cluster of the session's own, made
with the Debian package's ``initdb`` and started with ``pg_ctl`` on a free loopback port. A
plugin of the root conftest (``pytest_plugins``); a test that uses ``postgres_url`` or
``postgres_catalog`` is marked ``integration``.

PostgreSQL refuses to run as root, which CI is: the cluster then belongs to the ``postgres``
user the package creates, and its commands run through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "flywheel"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"postgres_url", "postgres_catalog"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.fail(f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg2://flywheel@127.0.0.1:<port>/postgres`` of a running server."""
    base = Path(tempfile.mkdtemp(prefix="flywheel-postgres-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log, port = base / "data", base / "server.log", _free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            pytest.fail(f"{command[0]} failed: {done.stderr}{done.stdout}{server_log[-2000:]}")

    run(_binary("initdb"), "-D", str(data), "-U", USER, "-A", "trust", "--no-sync")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(_binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
    try:
        yield f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, _binary("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_catalog(postgres_url: str) -> str:
    """The URL of a database of the test's own on the session's server (a catalog holds one
    ``flywheel.events``)."""
    import uuid

    import sqlalchemy

    name = f"catalog_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"
