"""A local S3 endpoint for tests and benchmarks: ``moto_server`` (the dev extra) as a process of
its own on a free loopback port, reached through the standard AWS environment.

moto's in-process ``ThreadedMotoServer`` deadlocked under a client that sends several requests
at once (pyarrow's S3 client does), so the server runs as a separate process, in a session of
its own so that ``stop`` reaches it and anything it started.

``start(log)`` returns a ``LocalS3`` once the server answers; ``environment(server)`` is the
``AWS_*`` set that points the lake (``flywheel.storage``) and the table's catalog at it and at
nothing of the developer's own AWS set-up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from flywheel.errors import LocalS3Error
from flywheel.net import free_port

__all__ = ["LocalS3", "LocalS3Error", "start", "stop", "environment", "cpu_seconds"]

ACCESS_KEY = "moto-access-key"
SECRET_KEY = "moto-secret-key"  # moto accepts any credentials
REGION = "us-east-1"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class LocalS3:
    """A running ``moto_server``."""

    endpoint_url: str
    log: Path
    process: subprocess.Popen[bytes]


def moto_server_command() -> Path:
    """The ``moto_server`` script beside this interpreter."""
    script = Path(sys.executable).parent / "moto_server"
    if not script.is_file():
        raise LocalS3Error(
            "moto_server is missing: install the dev extra (pip install -e '.[dev]')"
        )
    return script


def start(log: Path) -> LocalS3:
    """Start ``moto_server`` on a free loopback port, its output in ``log``; returns once it
    answers (``LocalS3Error`` with the log's tail if it exits or stays silent)."""
    command = moto_server_command()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(command), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = LocalS3(endpoint_url=endpoint, log=log, process=process)
    try:
        _wait_until_up(server)
    except BaseException:
        stop(server)
        raise
    return server


def _wait_until_up(server: LocalS3) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise LocalS3Error(
                f"moto_server exited with {server.process.returncode}: "
                f"{server.log.read_text()[-2000:]}"
            )
        try:
            # moto's own health endpoint; answers once the server takes requests.
            with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise LocalS3Error(
        f"moto_server did not answer within {START_TIMEOUT_S:g} s: {server.log.read_text()[-2000:]}"
    )


def stop(server: LocalS3) -> None:
    """Stop the server (and anything it started); a no-op once it has exited."""
    process = server.process
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def environment(server: LocalS3, *, config_dir: Path) -> dict[str, str]:
    """The ``AWS_*`` variables that point S3 clients at ``server`` with dummy credentials, and
    away from any configuration or instance credentials of the machine (``config_dir`` holds
    the config and credentials files they name, which need not exist). Callers remove every
    other ``AWS_*`` variable first."""
    return {
        "AWS_ENDPOINT_URL": server.endpoint_url,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_CONFIG_FILE": str(config_dir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def cpu_seconds(server: LocalS3) -> float:
    """CPU seconds the server process has used so far (user and system, from ``/proc``)."""
    try:
        fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command name: utime and stime are the 12th and 13th fields.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
