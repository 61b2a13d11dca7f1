"""A real single-node Apache Kafka broker for development and tests, without Docker.

Kafka's broker is published on Maven Central as ordinary jars. ``resolve_jars`` has Maven copy
them (with a log4j2 binding, else the broker runs silent) into a cache folder shared by every
checkout; ``start`` formats a KRaft storage folder and runs ``kafka.Kafka`` as a combined broker
and controller on free loopback ports, then waits until an admin call succeeds.

Everything of one broker lives in its home folder::

    <home>/state.json        pid, ports, bootstrap address
    <home>/server.properties
    <home>/data/             the log dirs (kept across stop/start, so a restart keeps the topics)
    <home>/logs/server.log   the broker's log; the last lines are shown when a start fails

``start(home, sasl_ssl=True)`` serves clients on a ``SASL_SSL`` listener instead of a plaintext
one, as a managed Kafka does: ``make_ca`` and ``make_broker_stores`` create a certificate authority
and the broker's keystore with ``keytool`` under ``<home>/tls/`` (``ca.pem`` is what clients
trust), the broker's own user ``admin`` signs in with ``PLAIN`` (its password in
``<home>/tls/admin.password``), and ``add_scram_user`` creates ``SCRAM-SHA-256``/``-512`` users
through the admin API. ``admin_settings`` gives the ``KafkaSettings`` of the admin user.

``stop`` then ``start`` on the same home restarts the broker on the same ports with its data,
which is what the broker-restart tests need. ``stop`` signals the recorded pid only while that
process is this home's broker (its command line ends with ``kafka.Kafka <home>/server.properties``,
as ``start`` launches it): after a reboot the pid in a stale ``state.json`` can belong to anything.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from flywheel.errors import FlywheelError, LocalKafkaError
from flywheel.net import free_port
from flywheel.settings import KafkaSettings

__all__ = [
    "LocalKafkaError", "BrokerState", "start", "stop", "read_state", "is_running", "make_ca",
    "make_broker_stores", "add_scram_user",
]  # fmt: skip

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
BROKER_MAIN = "kafka.Kafka"
PROC = Path("/proc")

log = logging.getLogger(__name__)

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.flywheel</groupId>
  <artifactId>local-kafka</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <!-- Kafka 4.1 logs through slf4j 1.7; without a binding a failed start is silent. -->
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="server" fileName="${sys:kafka.logs.dir}/server.log">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="server"/></Root>
  </Loggers>
</Configuration>
"""

_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners={listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners={listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
inter.broker.listener.name={listener}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,{listener}:{listener}
log.dirs={data_dir}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
auto.create.topics.enable=false
"""

# The SASL_SSL listener: TLS with the keystore made by make_broker_stores; PLAIN for the
# broker's own admin user (also what the broker uses to reach itself), SCRAM for the users
# add_scram_user creates. Hostnames are checked: the certificate names 127.0.0.1.
_SASL_SSL_PROPERTIES = """\
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="{admin_password}" user_admin="{admin_password}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={store_password}
ssl.key.password={store_password}
ssl.truststore.type=PKCS12
ssl.truststore.location={truststore}
ssl.truststore.password={store_password}
ssl.client.auth=none
"""

ADMIN_USER = "admin"


# Brokers started by this process, kept so their Popen objects are not collected while running
# (and so stop() can reap them).
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class BrokerState:
    """What ``start`` wrote to ``state.json``: enough to reach, restart or stop the broker."""

    pid: int
    port: int
    controller_port: int
    home: str
    security_protocol: str = "PLAINTEXT"
    """``PLAINTEXT``, or ``SASL_SSL`` for a broker started with ``sasl_ssl=True``."""

    @property
    def bootstrap_servers(self) -> str:
        """The ``host:port`` clients connect to."""
        return f"127.0.0.1:{self.port}"

    @property
    def tls_dir(self) -> Path:
        """Where a ``SASL_SSL`` broker keeps its certificates and the admin password."""
        return Path(self.home) / "tls"

    @property
    def ca_file(self) -> Path:
        """The PEM certificate of the authority that signed a ``SASL_SSL`` broker's certificate."""
        return self.tls_dir / "ca.pem"

    def admin_settings(self, **overrides: object) -> KafkaSettings:
        """Settings that reach this broker as its admin user (plain settings for a plaintext
        broker)."""
        fields: dict[str, object] = {"bootstrap_servers": self.bootstrap_servers}
        if self.security_protocol == "SASL_SSL":
            fields.update(
                security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username=ADMIN_USER,
                sasl_password_file=self.tls_dir / "admin.password", ssl_cafile=self.ca_file,
            )  # fmt: skip
        return KafkaSettings.model_validate({**fields, **overrides})

    @property
    def properties(self) -> Path:
        """The broker's configuration file, its last command-line argument."""
        return Path(self.home) / "server.properties"


def default_cache_dir() -> Path:
    """Where resolved jars are kept, shared by every checkout on the machine."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flywheel" / f"kafka-{KAFKA_VERSION}"


def resolve_jars(cache_dir: Path | None = None) -> Path:
    """Return a folder holding the broker's jars, resolving them with Maven on first use."""
    cache_dir = cache_dir or default_cache_dir()
    libs = cache_dir / "libs"
    marker = cache_dir / "resolved"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise LocalKafkaError("Maven (mvn) is not on PATH; it is needed once to fetch Kafka's jars")
    if shutil.which("java") is None:
        raise LocalKafkaError("java is not on PATH; the local Kafka broker needs Java 17+")
    cache_dir.mkdir(parents=True, exist_ok=True)
    pom = cache_dir / "pom.xml"
    pom.write_text(_POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
    staging = cache_dir / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        "mvn", "-B", "-q", "-f", str(pom), f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise LocalKafkaError(f"Maven could not resolve Kafka {KAFKA_VERSION}:\n{tail}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    marker.write_text(KAFKA_VERSION + "\n")
    return libs


def read_state(home: Path) -> BrokerState | None:
    """The broker state recorded in ``home``, or None if it was never started there."""
    path = home / "state.json"
    if not path.exists():
        return None
    try:
        return BrokerState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:  # not JSON, not UTF-8, not the keys start writes
        raise LocalKafkaError(
            f"{path} is unreadable ({type(exc).__name__}); if no broker runs from {home}, "
            "delete the file (the next start then picks new ports)"
        ) from None


def is_running(state: BrokerState | None) -> bool:
    """True if the recorded pid is alive and is still this home's broker (not a zombie, and not
    another process that took the pid since, after a reboot say)."""
    if state is None:
        return False
    command = _command_line(state.pid)
    return command is not None and _is_broker(command, state)


def _is_broker(command: str, state: BrokerState) -> bool:
    return command.endswith(f" {BROKER_MAIN} {state.properties}")


def _command_line(pid: int) -> str | None:
    """The arguments of process ``pid`` joined by spaces; None if there is no such process (or
    it is exiting). Read from /proc, or from ``ps`` where there is no /proc (macOS)."""
    if PROC.is_dir():
        try:
            raw = (PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        # Arguments are NUL-terminated; an exiting process (a zombie too) has none.
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace") or None
    result = subprocess.run(
        ["ps", "-ww", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    command = result.stdout.strip()
    return command if result.returncode == 0 and not command.endswith("<defunct>") else None


def _alive(pid: int) -> bool:
    """True until process ``pid`` has exited (is gone or a zombie).

    Not the same as having a command line: an exiting process loses that first, before it has
    closed its files, and the broker's ports are free only once they are closed.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


def log_tail(home: Path, lines: int = 40) -> str:
    """The last lines of the broker's logs, for error messages."""
    out = []
    for name in ("server.log", "stdout.log"):
        path = home / "logs" / name
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text))
    return "\n".join(out) or f"(no log written under {home / 'logs'})"


def _java(libs: Path, main: str, *args: str, heap: str, log_dir: Path) -> list[str]:
    return [
        "java", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={log_dir}", f"-Dlog4j2.configurationFile={log_dir.parent / 'log4j2.xml'}",
        "-cp", f"{libs}/*", main, *args,
    ]  # fmt: skip


def start(
    home: Path,
    *,
    timeout_s: float = 120.0,
    cache_dir: Path | None = None,
    sasl_ssl: bool = False,
    heap: tuple[str, str] = ("512m", "1g"),
) -> BrokerState:
    """Start (or restart, same ports and data) the broker in ``home`` and wait until it serves.

    ``sasl_ssl``: serve clients on a ``SASL_SSL`` listener (a restart keeps what the first start
    chose). ``heap``: the broker's initial and largest heap (``-Xms``, ``-Xmx``).
    """
    home = home.resolve()
    previous = read_state(home)
    if is_running(previous):
        assert previous is not None
        wait_ready(previous.admin_settings(), timeout_s=timeout_s, home=home)
        return previous
    sasl_ssl = sasl_ssl or (previous is not None and previous.security_protocol == "SASL_SSL")
    libs = resolve_jars(cache_dir)
    log_dir = home / "logs"
    data_dir = home / "data"
    log_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    port = previous.port if previous else free_port()
    controller_port = previous.controller_port if previous else free_port()
    listener = "SASL_SSL" if sasl_ssl else "PLAINTEXT"
    text = _PROPERTIES.format(
        port=port, controller_port=controller_port, data_dir=data_dir, listener=listener
    )
    if sasl_ssl:
        text += _sasl_ssl_properties(home / "tls")
    properties = home / "server.properties"
    properties.write_text(text)
    properties.chmod(0o600)  # it holds the admin and keystore passwords
    (home / "log4j2.xml").write_text(_LOG4J2)

    cluster_id_file = home / "cluster.id"
    if not cluster_id_file.exists():
        cluster_id = _run_tool(libs, log_dir, "random-uuid").strip().splitlines()[-1]
        cluster_id_file.write_text(cluster_id)
    cluster_id = cluster_id_file.read_text().strip()
    # -g: a restart finds the folder already formatted, which is fine.
    _run_tool(
        libs, log_dir, "format", "--standalone", "-g", "-t", cluster_id, "-c", str(properties)
    )

    stdout = (log_dir / "stdout.log").open("ab")
    # is_running recognises the broker by these last two arguments.
    command = _java(libs, BROKER_MAIN, str(properties), heap=heap[1], log_dir=log_dir)
    command.insert(1, f"-Xms{heap[0]}")
    process = subprocess.Popen(
        command, stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=home,
    )  # fmt: skip
    stdout.close()
    _children[process.pid] = process
    state = BrokerState(
        pid=process.pid, port=port, controller_port=controller_port, home=str(home),
        security_protocol=listener,
    )  # fmt: skip
    (home / "state.json").write_text(json.dumps(asdict(state), indent=2) + "\n")
    try:
        wait_ready(state.admin_settings(), timeout_s=timeout_s, home=home, process=process)
    except LocalKafkaError:
        stop(home)
        raise
    return state


def _sasl_ssl_properties(tls: Path) -> str:
    """The SASL_SSL listener's properties, making the certificates and passwords on first use."""
    tls.mkdir(parents=True, exist_ok=True)
    admin_password = _password_file(tls / "admin.password")
    store_password = _password_file(tls / "store.password")
    if not (tls / "broker.p12").exists():
        make_broker_stores(tls, make_ca(tls / "ca"), store_password=tls / "store.password")
        shutil.copyfile(tls / "ca" / "ca.pem", tls / "ca.pem")
    return _SASL_SSL_PROPERTIES.format(
        admin_password=admin_password.read_text(), store_password=store_password.read_text(),
        keystore=tls / "broker.p12", truststore=tls / "truststore.p12",
    )  # fmt: skip


def _password_file(path: Path) -> Path:
    """A file holding a random password (letters and digits: safe in properties and JAAS)."""
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(16))
    return path


def _keytool(*args: str, cwd: Path) -> None:
    command = ["keytool", *args, "-J-Xmx64m"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    if result.returncode != 0:
        raise LocalKafkaError(
            f"keytool {args[0]} failed (exit {result.returncode}): "
            + (result.stdout + result.stderr)[-1000:]
        )


def make_ca(folder: Path, *, name: str = "flywheel-local-ca") -> Path:
    """A new certificate authority in ``folder`` (``ca.p12``, its key, and ``ca.pem``, what
    clients trust); returns the folder."""
    if shutil.which("keytool") is None:
        raise LocalKafkaError("keytool is not on PATH; a SASL_SSL broker needs Java 17+")
    folder.mkdir(parents=True, exist_ok=True)
    password = _password_file(folder / "ca.password")
    store = ["-keystore", "ca.p12", "-storetype", "PKCS12", "-storepass:file", str(password)]
    _keytool(
        "-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048", "-dname",
        f"CN={name}", "-ext", "bc:c", "-validity", "30", *store, cwd=folder,
    )  # fmt: skip
    _keytool("-exportcert", "-rfc", "-alias", "ca", "-file", "ca.pem", *store, cwd=folder)
    return folder


def make_broker_stores(folder: Path, ca: Path, *, store_password: Path) -> None:
    """The broker's keystore (``broker.p12``: a key and a certificate for 127.0.0.1 and
    localhost, signed by the authority in ``ca``) and truststore (``truststore.p12``)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_store = ["-keystore", str(ca / "ca.p12"), "-storepass:file", str(ca / "ca.password")]
    store = ["-keystore", "broker.p12", "-storetype", "PKCS12", "-storepass:file",
             str(store_password)]  # fmt: skip
    names = "SAN=ip:127.0.0.1,dns:localhost"
    _keytool(
        "-genkeypair", "-alias", "broker", "-keyalg", "RSA", "-keysize", "2048",
        "-dname", "CN=127.0.0.1", "-ext", names, "-validity", "30", *store, cwd=folder,
    )  # fmt: skip
    _keytool("-certreq", "-alias", "broker", "-file", "broker.csr", *store, cwd=folder)
    _keytool(
        "-gencert", "-alias", "ca", "-infile", "broker.csr", "-outfile", "broker.crt", "-rfc",
        "-ext", names, "-validity", "30", *ca_store, cwd=folder,
    )  # fmt: skip
    ca_pem = str(ca / "ca.pem")
    _keytool("-importcert", "-alias", "ca", "-file", ca_pem, "-noprompt", *store, cwd=folder)
    _keytool("-importcert", "-alias", "broker", "-file", "broker.crt", *store, cwd=folder)
    _keytool(
        "-importcert", "-alias", "ca", "-file", ca_pem, "-noprompt", "-keystore",
        "truststore.p12", "-storetype", "PKCS12", "-storepass:file", str(store_password),
        cwd=folder,
    )  # fmt: skip


def add_scram_user(
    state: BrokerState,
    username: str,
    password: str,
    *,
    mechanisms: tuple[str, ...] = ("SCRAM-SHA-256", "SCRAM-SHA-512"),
) -> None:
    """Create (or update) a SCRAM user through the admin API, signed in as the admin user."""
    from kafka.admin import UserScramCredentialUpsertion

    from flywheel.kafka import admin_client

    admin = admin_client(state.admin_settings())
    try:
        for mechanism in mechanisms:
            # One request per mechanism: the broker refuses two changes of a user in one.
            failed = admin.alter_user_scram_credentials(
                [UserScramCredentialUpsertion(username, mechanism, password)]
            )
            if failed.get(username):
                raise LocalKafkaError(
                    f"could not create SCRAM user {username} ({mechanism}): {failed[username]}"
                )
    finally:
        admin.close()
    # The broker answers before its metadata has the credentials: wait until a client signs in.
    settings = state.admin_settings(
        sasl_mechanism=mechanisms[-1], sasl_username=username,
        sasl_password=password, sasl_password_file=None,
    )  # fmt: skip
    wait_ready(settings, timeout_s=30)


def _run_tool(libs: Path, log_dir: Path, *args: str) -> str:
    command = _java(libs, "kafka.tools.StorageTool", *args, heap="256m", log_dir=log_dir)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalKafkaError(
            f"kafka StorageTool {args[0]} failed (exit {result.returncode}):\n"
            + (result.stdout + result.stderr)[-3000:]
        )
    return result.stdout


def wait_ready(
    settings: KafkaSettings,
    *,
    timeout_s: float,
    home: Path | None = None,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until an admin call (list topics) succeeds; fail with the broker's last log lines."""
    # Imported here: kafka-python is only needed once a broker is involved.
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError as KafkaPythonError

    from flywheel.kafka import admin_config

    bootstrap = settings.bootstrap_servers or ""
    config = admin_config(settings.model_copy(update={"client_id": "flywheel-localkafka-probe"}))
    config["request_timeout_ms"] = 5000
    deadline = time.monotonic() + timeout_s
    last_error = "no attempt yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_tail(home) if home else ""
            raise LocalKafkaError(f"the Kafka broker exited with code {process.returncode}\n{tail}")
        if not _port_open(bootstrap):
            # Until the listener is up, probe with a plain socket: kafka-python's failed bootstrap
            # attempts are slow and leave sockets for the garbage collector.
            last_error = "the broker's port is not open yet"
            time.sleep(0.3)
            continue
        try:
            admin = KafkaAdminClient(**config)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except (KafkaPythonError, OSError, FlywheelError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    tail = log_tail(home) if home else ""
    raise LocalKafkaError(
        f"the Kafka broker at {bootstrap} did not answer within {timeout_s:.0f}s "
        f"({last_error})\n{tail}"
    )


def _port_open(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def stop(home: Path, *, timeout_s: float = 30.0, kill: bool = False) -> bool:
    """Stop the broker in ``home`` (SIGTERM, then SIGKILL); True if one was running.

    A recorded pid that another process holds now is left alone, with a warning.
    """
    state = read_state(home.resolve())
    if state is None:
        return False
    command = _command_line(state.pid)
    if command is None:
        return False
    if not _is_broker(command, state):
        # No fields: the CLI configures no logging here, and Python's last-resort handler
        # prints only the message.
        log.warning(
            f"{home / 'state.json'} is stale: pid {state.pid} is now another process, "
            "not this home's Kafka broker; it was not signalled"
        )
        return False
    try:
        os.killpg(state.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    child = _children.get(state.pid)
    while time.monotonic() < deadline:
        if child is not None:
            try:
                child.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            del _children[state.pid]
            return True
        if not _alive(state.pid):
            _reap(state.pid)
            return True
        time.sleep(0.2)
    os.killpg(state.pid, signal.SIGKILL)
    child = _children.pop(state.pid, None)
    if child is not None:
        child.wait(timeout=30)
    else:
        _reap(state.pid)
    return True


def _reap(pid: int) -> None:
    # A broker started by this very process stays a zombie until waited for.
    child = _children.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _children[pid]
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
