"""The ``flywheel`` command: the composition root that wires settings, stages and services.

Commands stay thin: they read settings, build the pieces and call a stage's service function.
Every ``FlywheelError`` ends as one red line on stderr and the exit code its kind has
(``EXIT_CODES``), never a traceback.
Heavy libraries are imported inside the commands so ``flywheel --help`` is instant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape  # messages may hold brackets: [export], paths

from flywheel.errors import (
    ConfigError,
    ExportBusyError,
    FlywheelError,
    ManifestVersionError,
    NotFoundError,
    QualityGateError,
    QueryError,
    ReviewConflictError,
    ReviewInputError,
    TransientError,
    WarehouseBusyError,
)

if TYPE_CHECKING:
    from datetime import date

    from fastapi import FastAPI

    from api.sink import EventSink
    from flywheel.settings import Settings  # pydantic: imported by the commands that read it
    from ingest.pipeline import Pipeline
    from ingest.worker import WorkerStats
    from privacy.keys import Keyring
    from privacy.requests import ErasureRecord
    from warehouse.table import LakeTable


def group(help: str, **options: Any) -> typer.Typer:
    """A command group. Help is plain text (``rich_markup_mode=None``): Rich's help renderer
    costs a tenth of a second at every ``--help``, against a start-up goal of 0.3 s."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **options)


app = group(
    "Feedback Flywheel: chat feedback events in, TRL-ready preference datasets out.",
    name="flywheel",
    pretty_exceptions_enable=False,
    add_completion=False,
)
kafka_app = group("Kafka topics and a local development broker.")
local_app = group("A real single-node Kafka broker on loopback, for development and tests.")
keys_app = group("Pseudonym keys (HMAC) kept outside the lake.")
dead_letters_app = group("List and replay messages the ingest workers could not land.")
db_app = group("The DuckDB warehouse and its migrations.")
transform_app = group("Build the warehouse from the lake.")
lake_app = group("The lake's Iceberg table: commit, compact, expire, status.")
export_app = group("Publish versioned, TRL-ready datasets behind a quality gate.")
review_app = group("Human review: queues of sampled pairs, and the calibration from the verdicts.")
review_queue_app = group("Review queues: sample pairs for reviewers, list and show them.")
app.add_typer(kafka_app, name="kafka")
kafka_app.add_typer(local_app, name="local")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(transform_app, name="transform")
app.add_typer(lake_app, name="lake")
app.add_typer(dead_letters_app, name="dead-letters")
app.add_typer(export_app, name="export")
app.add_typer(review_app, name="review")
review_app.add_typer(review_queue_app, name="queue")

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"flywheel {version('feedback-flywheel')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Feedback Flywheel: chat feedback events in, TRL-ready preference datasets out."""


DEFAULT_KAFKA_HOME = Path(".kafka-local")


def settings_and_logging() -> Settings:
    """Load the settings and configure logging from them."""
    from flywheel.logs import configure_logging
    from flywheel.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def require_data_dir(settings: Settings) -> None:
    """Refuse a data dir that does not exist, for commands that work on what landed there: a
    mistyped FLYWHEEL_DATA_DIR would otherwise get a new, empty warehouse or erasure log."""
    if not settings.data_dir.is_dir():
        raise ConfigError(
            f"the data dir {settings.data_dir} does not exist (FLYWHEEL_DATA_DIR; relative paths "
            "are from the working directory): nothing has landed there"
        )


def build_pipeline(settings: Settings) -> Pipeline:
    """The validate-dedupe-anonymise pipeline with the configured pseudonym key."""
    from ingest.pipeline import build_pipeline as pipeline_for
    from privacy.keys import keyring_for

    return pipeline_for(settings, keyring_for(settings))


def check_lake(settings: Settings) -> None:
    """Stop at start, with one line, on a lake that cannot be reached: a missing bucket or
    refused credentials (exit 3), an unreachable endpoint (exit 4)."""
    from warehouse.lake import open_lake

    open_lake(settings)


def build_sink(settings: Settings) -> EventSink:
    """The event sink for this configuration: Kafka, or in-process in embedded mode."""
    if settings.embedded:
        from ingest.embedded import embedded_sink
        from privacy.keys import keyring_for

        sink = embedded_sink(settings, keyring_for(settings))
        err.print(
            "[yellow]embedded mode[/] (FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS unset): accepted events "
            f"land in {sink.lake.root} before the API answers"
        )
        return sink
    from api.producer import KafkaSink

    return KafkaSink(settings.kafka, ready_timeout_s=settings.api.ready_timeout_s)


def api_from_environment() -> FastAPI:
    """The API built from the environment's settings: uvicorn's factory, once per process."""
    from api.main import create_app
    from api.server import server_options
    from flywheel.shell.erasure import finish_erasure

    settings = settings_and_logging()
    check_lake(settings)
    server_options(settings)  # this worker's header deadline
    return create_app(settings, build_sink(settings), erasure=finish_erasure)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on (1 to 65535).")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes (Kafka mode); each has its own producer, /metrics sums them.",
        ),
    ] = 1,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (method, path, status).")
    ] = False,
) -> None:
    """Run the ingest API.

    Example: FLYWHEEL_API__WRITE_KEYS='["a-long-random-key-1234"]' flywheel serve --port 8000
    """
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be a TCP port, 1 to 65535, not {port}")
    settings = settings_and_logging()
    if not settings.api.write_keys and not settings.api.publishable_keys:
        raise ConfigError(
            "no key may post events: set FLYWHEEL_API__WRITE_KEYS to a JSON list of keys, "
            "e.g. '[\"<at least 16 random characters>\"]' (or FLYWHEEL_API__PUBLISHABLE_KEYS "
            "for browsers, docs/api.md)"
        )
    check_lake(settings)
    import uvicorn

    from api.server import server_options

    if workers > 1:
        if settings.embedded:
            raise ConfigError(
                "--workers needs Kafka: in embedded mode one process owns the lake's offsets"
            )
        from api.metrics import multiprocess_mode

        # Each scrape of /metrics sums every process's counters (api/metrics.py).
        with multiprocess_mode():
            uvicorn.run(
                "flywheel.shell.cli:api_from_environment", factory=True, host=host, port=port,
                workers=workers, log_config=None, access_log=access_log,
                **server_options(settings),
            )  # fmt: skip
        return
    from api.main import create_app
    from flywheel.shell.erasure import finish_erasure

    api = create_app(settings, build_sink(settings), erasure=finish_erasure)
    uvicorn.run(
        api, host=host, port=port, log_config=None, access_log=access_log,
        **server_options(settings),
    )  # fmt: skip


@kafka_app.command("init")
def kafka_init() -> None:
    """Create the events and dead-letter topics (idempotent).

    Example: FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 flywheel kafka init
    """
    from flywheel.kafka import create_topics

    settings = settings_and_logging()
    if settings.embedded:
        raise ConfigError("FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS is unset; there is no Kafka to set up")
    with err.status(f"connecting to Kafka at {settings.kafka.bootstrap_servers}"):
        outcomes = create_topics(settings.kafka)
    for topic, outcome in outcomes.items():
        partitions = settings.kafka.partitions if topic == settings.kafka.events_topic else 1
        out.print(f"{topic}: {outcome} ({partitions} partitions)")


HomeOption = Annotated[
    Path, typer.Option(help="Folder of the broker: data, logs/server.log and state.json.")
]


@local_app.command("start")
def local_start(home: HomeOption = DEFAULT_KAFKA_HOME) -> None:
    """Start a local broker (resolving Kafka from Maven Central once) and print its address.

    Example: export FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS=$(flywheel kafka local start)
    """
    from flywheel.dev import localkafka

    with err.status("starting a local Kafka broker (first run downloads it with Maven)"):
        state = localkafka.start(home)
    err.print(
        f"Kafka {localkafka.KAFKA_VERSION} serves on {state.bootstrap_servers}; logs: "
        f"{Path(state.home) / 'logs'}"
    )
    out.print(state.bootstrap_servers)


@local_app.command("stop")
def local_stop(home: HomeOption = DEFAULT_KAFKA_HOME) -> None:
    """Stop the local broker; its data stays for the next start.

    Example: flywheel kafka local stop --home .kafka-local
    """
    from flywheel.dev import localkafka

    stopped = localkafka.stop(home)
    err.print("stopped" if stopped else "no broker was running")


@local_app.command("status")
def local_status(home: HomeOption = DEFAULT_KAFKA_HOME) -> None:
    """Say whether the local broker runs and answers; exit 1 if it does not.

    Example: flywheel kafka local status && echo up
    """
    from flywheel.dev import localkafka
    from flywheel.kafka import ping

    state = localkafka.read_state(home.resolve())
    if state is None or not localkafka.is_running(state):
        err.print("[red]not running[/]")
        raise typer.Exit(1)
    answering = ping(state.admin_settings(max_block_ms=3000))
    err.print(
        f"pid {state.pid}, {state.bootstrap_servers}, "
        + ("answering" if answering else "[red]not answering[/]")
    )
    out.print(state.bootstrap_servers)
    if not answering:
        raise typer.Exit(1)


@app.command()
def simulate(
    events: Annotated[int, typer.Option(min=1, help="How many events to generate.")] = 1000,
    seed: Annotated[
        int, typer.Option(help="Random seed; the same seed gives the same events.")
    ] = 0,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the events to this JSONL file.")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Write the hidden ground truth (JSONL) to this file.")
    ] = None,
    post: Annotated[
        str | None, typer.Option(help="POST the events to this URL (…/v1/events).")
    ] = None,
    key: Annotated[str | None, typer.Option(help="Write key for --post.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=500, help="Events per POST.")] = 100,
) -> None:
    """Generate realistic simulated chat feedback traffic.

    Examples: flywheel simulate --events 10000 --seed 7 --out events.jsonl --truth truth.jsonl;
    flywheel simulate --events 5000 --post http://127.0.0.1:8000/v1/events --key $KEY
    """
    from rich.progress import Progress

    from flywheel.dev import simulator

    if (out_file is None) == (post is None):
        raise ConfigError("give exactly one of --out FILE.jsonl or --post URL")
    if post is not None and not key:
        raise ConfigError("--post needs --key (a write key of the API)")
    for path in (out_file, truth):  # both, before anything is generated (or posted)
        if path is not None:
            simulator.check_writable(path)
    simulation = simulator.simulate(simulator.SimulationConfig(events=events, seed=seed))
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("simulating", total=events)
        if out_file is not None:

            def counted() -> Iterator[dict[str, Any]]:
                for event in simulation:
                    progress.advance(task)
                    yield event

            written = simulator.write_jsonl(counted(), out_file)
            summary = f"{written} events written to {out_file}"
        else:
            assert post is not None and key is not None
            result = simulator.post_events(
                simulation, url=post, key=key, batch_size=batch_size,
                on_batch=lambda n: progress.advance(task, n),
            )  # fmt: skip
            summary = (
                f"{result.accepted} events accepted by {post} in {result.seconds:.1f}s "
                f"({result.accepted / max(result.seconds, 1e-9):,.0f}/s, {result.retries} retries)"
            )
    if truth is not None:
        records = simulator.write_truth(simulation, truth)
        summary += f"; {records} truth records written to {truth}"
    out.print(summary)


@keys_app.command("create")
def keys_create(
    path: Annotated[Path, typer.Argument(help="Where to write the new key file (mode 0600).")],
) -> None:
    """Create a pseudonym key file with one random key.

    Example: flywheel keys create /run/secrets/flywheel-keys.json
    """
    from privacy.keys import create_keyring

    create_keyring(path)
    out.print(f"created {path}; set FLYWHEEL_PRIVACY__HMAC_KEY_FILE={path}")


KeyFileOption = Annotated[
    Path | None,
    typer.Option("--key-file", help="The key file (default: FLYWHEEL_PRIVACY__HMAC_KEY_FILE)."),
]


def _key_file(key_file: Path | None) -> Path:
    path = key_file or settings_and_logging().privacy.hmac_key_file
    if path is None:
        raise ConfigError("name the key file: --key-file PATH or FLYWHEEL_PRIVACY__HMAC_KEY_FILE")
    return path


@keys_app.command("rotate")
def keys_rotate(key_file: KeyFileOption = None) -> None:
    """Add a new key version and make it current; new events get pseudonyms under it.

    Older versions stay in the file, so erasure still finds events pseudonymised with them,
    until they are retired. Restart the API and ingest workers to pick up the new key.

    Example: flywheel keys rotate --key-file /run/secrets/flywheel-keys.json
    """
    from privacy.keys import rotate_keyring

    path = _key_file(key_file)
    keyring = rotate_keyring(path)
    out.print(f"{path}: current key version {keyring.current} (held: {sorted(keyring.keys)})")


@keys_app.command("retire")
def keys_retire(
    version: Annotated[int, typer.Argument(help="The key version to remove.")],
    key_file: KeyFileOption = None,
) -> None:
    """Remove an old key version. Erasure can then no longer find events or dataset versions
    pseudonymised with it: retire a version only once nothing under it is kept (see the
    retention settings).

    Example: flywheel keys retire 1
    """
    from privacy.keys import retire_key

    path = _key_file(key_file)
    keyring = retire_key(path, version)
    out.print(f"{path}: retired version {version}; held: {sorted(keyring.keys)}")


def _fault_hook() -> Callable[[str], None] | None:
    """Crash-test aid: ``FLYWHEEL_FAULT_INJECTION=after_commit:0.2,after_rename:0.1`` makes the
    worker SIGKILL itself at those landing points with those probabilities."""
    import os
    import random
    import signal

    spec = os.environ.get("FLYWHEEL_FAULT_INJECTION")
    if not spec:
        return None
    chances = {}
    for part in spec.split(","):
        point, _, chance = part.partition(":")
        chances[point.strip()] = float(chance or 1)

    def hook(point: str) -> None:
        if random.random() < chances.get(point, 0.0):
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


@app.command()
def ingest(
    idle_exit: Annotated[
        float | None,
        typer.Option(
            help="Exit once no message arrived for this many seconds (batch jobs); exit 1 if "
            "no partition was ever assigned (Kafka unreachable, no topic)."
        ),
    ] = None,
    accept_topic: Annotated[
        bool,
        typer.Option(
            help="Once, after a worker stopped because the topic is not where the lake left it "
            "(created again, truncated, or deleted past the lake's offsets): land the topic as "
            "it is now, from its first offset, under a new name in the lake."
        ),
    ] = False,
) -> None:
    """Run an ingest worker: Kafka to the anonymised Parquet lake, exactly once.

    Example: FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092 flywheel ingest
    """
    import signal
    import threading

    from ingest.deadletters import KafkaDeadLetters
    from ingest.metrics import IngestMetrics
    from ingest.worker import IngestWorker
    from warehouse.lake import open_lake
    from warehouse.table import LakeTable, TableMetrics

    if idle_exit is not None and not idle_exit > 0:
        raise ConfigError(f"--idle-exit must be a number of seconds above 0, not {idle_exit:g}")
    settings = settings_and_logging()
    if settings.embedded:
        raise ConfigError(
            "flywheel ingest reads Kafka: set FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS "
            "(in embedded mode `flywheel serve` lands events itself)"
        )
    lake = open_lake(settings)
    metrics = IngestMetrics()
    table = LakeTable.of(settings, lake, metrics=TableMetrics(metrics.registry))
    table.table()  # a catalog that cannot be opened is one line at start
    if settings.ingest.metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(settings.ingest.metrics_port, registry=metrics.registry)
    worker = IngestWorker(
        settings=settings,
        lake=lake,
        pipeline=build_pipeline(settings),
        dead_letters=KafkaDeadLetters(settings.kafka),
        metrics=metrics,
        fault=_fault_hook(),
        accept_topic=accept_topic,
        commit_landed=table.commit,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with err.status("starting") as status:

        def progress(stats: WorkerStats) -> None:
            status.update(
                f"landed {stats.landed:,} events in {stats.files:,} files; "
                f"{stats.dead_letters:,} dead letters, {stats.duplicates:,} duplicates and "
                f"{stats.without_consent:,} without consent dropped; lag {stats.lag:,}"
            )

        stats = worker.run(stop, idle_exit_s=idle_exit, on_progress=progress)
    out.print(
        f"landed {stats.landed:,} events in {stats.files:,} files; "
        f"{stats.dead_letters:,} dead letters; {stats.duplicates:,} duplicates, "
        f"{stats.without_consent:,} events without consent and {stats.suppressed:,} of erased "
        "users dropped"
    )


@dead_letters_app.command("list")
def dead_letters_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List dead letters: source offset, error type and reason (never the message text).

    Example: flywheel dead-letters list --json
    """
    import json

    from rich.table import Table

    from ingest.deadletters import list_dead_letters

    settings = settings_and_logging()
    if settings.embedded:
        raise ConfigError("dead letters live in Kafka: set FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS")
    with err.status(f"reading {settings.kafka.dead_letter_topic} at "
                    f"{settings.kafka.bootstrap_servers}"):  # fmt: skip
        records = list_dead_letters(settings.kafka)
    if as_json:
        for r in records:
            out.print_json(json.dumps({
                "source_topic": r.source_topic, "source_partition": r.source_partition,
                "source_offset": r.source_offset, "error_type": r.error_type, "reason": r.reason,
                "failed_at": r.failed_at, "bytes": len(r.value),
            }))  # fmt: skip
        return
    table = Table(title=f"{len(records)} dead letters in {settings.kafka.dead_letter_topic}")
    for column in ("source", "error", "reason", "failed at", "bytes"):
        table.add_column(column)
    for r in records:
        table.add_row(
            f"{r.source_topic}/{r.source_partition}@{r.source_offset}", r.error_type, r.reason,
            r.failed_at, str(len(r.value)),
        )  # fmt: skip
    out.print(table)


@dead_letters_app.command("replay")
def dead_letters_replay(
    error_type: Annotated[
        str | None,
        typer.Option(help="Replay only this error type: not_json, contract, oversize, unstorable."),
    ] = None,
) -> None:
    """Send dead letters back to the events topic, after a fix, for the workers to retry.

    Example: flywheel dead-letters replay --error-type oversize
    """
    from ingest.deadletters import replay
    from ingest.pipeline import ERROR_TYPES

    if error_type is not None and error_type not in ERROR_TYPES:
        raise ConfigError(
            f"no error type {error_type!r}; dead letters have {', '.join(ERROR_TYPES)}"
        )
    settings = settings_and_logging()
    if settings.embedded:
        raise ConfigError("dead letters live in Kafka: set FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS")
    select = None if error_type is None else (lambda r: r.error_type == error_type)
    with err.status(f"replaying dead letters at {settings.kafka.bootstrap_servers}"):
        sent = replay(settings.kafka, select=select)
    out.print(f"replayed {sent} dead letters to {settings.kafka.events_topic}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the warehouse or migrate it to this version's schema.

    Example: FLYWHEEL_DATA_DIR=/srv/flywheel flywheel db upgrade
    """
    from warehouse.db import current_revision, open_warehouse, warehouse_path

    settings = settings_and_logging()
    engine = open_warehouse(settings.data_dir)
    with engine.connect() as connection:
        revision = current_revision(connection)
    engine.dispose()
    out.print(f"{warehouse_path(settings.data_dir)} is at revision {revision}")


def lake_table(settings: Settings) -> LakeTable:
    """The lake's table of a configuration (its lake checked at start, then its catalog)."""
    from warehouse.lake import open_lake
    from warehouse.table import LakeTable

    table = LakeTable.of(settings, open_lake(settings))
    table.table()  # a catalog that cannot be opened is one line here
    return table


@lake_app.command("commit")
def lake_commit() -> None:
    """Commit the files landed since the last commit to the lake's table, now.

    Ingest workers commit every FLYWHEEL_LAKE__COMMIT_INTERVAL_S and `flywheel transform run`
    before it reads; this is for operators and schedulers. Example: flywheel lake commit
    """
    table = lake_table(settings_and_logging())
    result = table.commit()
    if not result.files:
        out.print("nothing new to commit")
        return
    out.print(
        f"committed {len(result.files):,} files in snapshot {result.snapshot_id}"
        + (f" ({result.trimmed} trimmed where they overlapped)" if result.trimmed else "")
        + (f"; {result.conflicts} commits by other writers came first" if result.conflicts else "")
    )


@lake_app.command("compact")
def lake_compact(
    target_rows: Annotated[
        int, typer.Option(min=1, help="Rows a merged file holds at most.")
    ] = 200_000,
    expire_after_hours: Annotated[
        float,
        typer.Option(min=0, help="Then expire snapshots older than this and delete what no "
                     "snapshot references (readers of older snapshots lose them)."),
    ] = 24.0,
) -> None:  # fmt: skip
    """Merge small lake files, expire old snapshots, delete unreferenced objects.

    Example: flywheel lake compact; flywheel lake compact --expire-after-hours 1
    """
    from datetime import timedelta

    from privacy.suppression import SuppressionList, suppression_file
    from warehouse.maintenance import compact, expire

    settings = settings_and_logging()
    table = lake_table(settings)
    suppression = SuppressionList(suppression_file(settings.data_dir))
    with err.status("compacting") as status:
        compacted = compact(
            table, target_rows=target_rows, suppressed=suppression.landing,
            on_progress=lambda done, total: status.update(f"compacting: {done}/{total} runs"),
        )  # fmt: skip
        status.update("expiring snapshots")
        expired = expire(table, older_than=timedelta(hours=expire_after_hours))
    out.print(
        f"merged {compacted.replaced:,} files into {compacted.merged:,}; expired "
        f"{expired.snapshots:,} snapshots, deleted {expired.data_files:,} data files and "
        f"{expired.metadata_files:,} metadata files ({expired.bytes / 2**20:,.1f} MiB)"
    )


@lake_app.command("status")
def lake_status() -> None:
    """The lake's table: snapshots, files per partition, committed offsets, files waiting.

    Example: flywheel lake status
    """
    from collections import Counter

    from rich.table import Table

    table = lake_table(settings_and_logging())
    current = table.table()
    committed = table.committed_offsets(current)
    files = Counter((f.topic, f.partition) for f in table.data_files(current))
    waiting = Counter(
        (f.topic, f.partition) for f in table.lake.files()
        if f.last_offset >= committed.get(f.topic, {}).get(f.partition, 0)
    )  # fmt: skip
    grid = Table(title=f"lake table ({len(current.snapshots())} snapshots)", show_edge=False)
    for column in ("topic", "partition", "files", "committed up to", "files waiting"):
        grid.add_column(column, justify="left" if column == "topic" else "right")
    for topic, partition in sorted(set(files) | set(waiting)):
        next_offset = committed.get(topic, {}).get(partition)
        grid.add_row(
            topic, str(partition), f"{files[(topic, partition)]:,}",
            "-" if next_offset is None else f"{next_offset - 1:,}",
            f"{waiting[(topic, partition)]:,}",
        )  # fmt: skip
    out.print(grid if grid.row_count else "the lake's table is empty")


@lake_app.command("rescrub")
def lake_rescrub(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be replaced; change nothing.")
    ] = False,
) -> None:
    """Scrub the lake's landed texts again with the current scrubber, rewrite the files it
    changes, and replace what the warehouse and the datasets built from the old texts. Safe to
    run again; recorded in the data dir's rescrub log (counts, never a value).

    Example: flywheel lake rescrub --dry-run; flywheel lake rescrub
    """
    from flywheel.shell.rescrub import rescrub_lake
    from privacy.keys import keyring_for

    settings = settings_and_logging()
    require_data_dir(settings)
    check_lake(settings)
    keyring = keyring_for(settings)
    with err.status("rescrub") as status:
        record = rescrub_lake(
            settings, keyring, dry_run=dry_run, fault=_fault_hook(),
            on_step=lambda step: status.update(f"rescrub: {step}"),
        )  # fmt: skip
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(record.values.items()))
    if dry_run:
        out.print(
            f"dry run: {record.replaced:,} values in {len(record.files):,} lake files would be "
            f"replaced ({kinds or 'none'}); nothing was changed"
        )
        return
    if not record.files and not record.resumed:
        out.print(f"nothing to rescrub: the scrubber ({record.scrubber}) changes no lake file")
        return
    superseded = "; ".join(f"{d['dataset']}: {', '.join(d['superseded'])} superseded"
                           for d in record.datasets)  # fmt: skip
    out.print(
        f"rescrub {record.rescrub}: {record.replaced:,} values replaced in "
        f"{len(record.files):,} lake files ({kinds or 'none'})"
        + (f", finishing {len(record.resumed)} cut off" if record.resumed else "")
        + f"; {record.warehouse_events_forgotten:,} warehouse events to load again at the next "
        f"transform run; datasets: {superseded or 'none held them'}",
        soft_wrap=True,
    )


def landing_day(value: str) -> date:
    """A ``--through`` day: ``YYYY-MM-DD`` and a real date, else one ``ConfigError`` line."""
    import re
    from datetime import date

    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ConfigError(f"--through must be a day as YYYY-MM-DD, not {value!r}")


class Engine(StrEnum):
    """Where the models are built."""

    duckdb = "duckdb"
    spark = "spark"


def _transform_on_spark(
    settings: Settings,
    lake_table: LakeTable,
    *,
    policy: Path | None,
    select: list[str] | None,
    full_refresh: bool,
) -> None:
    """``flywheel transform run --engine spark``: the models on Spark, and a table of them."""
    from rich.table import Table

    from transforms.spark import run_transforms_on_spark

    with err.status("building the models on Spark") as status:
        run = run_transforms_on_spark(
            settings.spark,
            lake_table,
            policy_file=policy,
            select=select,
            full_refresh=full_refresh,
            on_progress=lambda done, total: status.update(f"models on Spark: {done}/{total}"),
            models_dir=settings.transforms.models_dir,
        )
    table = Table(title=f"transform run {run.run_id[:8]} on Spark", show_edge=False)
    for column in ("model", "added", "removed", "rows", "seconds"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for step in run.steps:
        table.add_row(
            f"{step.name} ({step.mode})",
            _count(step.added),
            _count(step.removed),
            f"{step.rows:,}",
            f"{step.seconds:.2f}",
        )
    out.print(table)
    out.print(f"{run.events:,} events read from the lake's table; tables in flywheel.models.*")


PolicyOption = Annotated[
    Path | None,
    typer.Option(
        help="Policy file (TOML). Default: FLYWHEEL_TRANSFORMS__POLICY_FILE, else the shipped "
        "policy."
    ),
]
SelectOption = Annotated[
    list[str] | None,
    typer.Option(help="Only this model (and what it needs); repeatable."),
]


@transform_app.command("run")
def transform_run(
    full_refresh: Annotated[
        bool, typer.Option(help="Rebuild everything from the lake instead of loading what is new.")
    ] = False,
    select: SelectOption = None,
    policy: PolicyOption = None,
    through: Annotated[
        str | None,
        typer.Option(
            metavar="YYYY-MM-DD",
            help="Load only the lake files landed on or before this day (UTC); later ones wait.",
        ),
    ] = None,
    engine: Annotated[
        Engine | None,
        typer.Option(
            help="duckdb: the warehouse file on this host; spark: the lake's Iceberg table into "
            "Iceberg model tables (FLYWHEEL_SPARK__*, docs/spark.md). Default: "
            "FLYWHEEL_TRANSFORMS__ENGINE, else duckdb."
        ),
    ] = None,
) -> None:
    """Load new lake files into the warehouse (and build the models).

    With --engine spark the models are built on Apache Spark from the lake's table into
    flywheel.models.* in the lake's catalog, incrementally as here (docs/spark.md).

    With --through DAY, only files landed up to that day are loaded, so a scheduler can run the
    command once per landing day; running it again for the same or an earlier day loads nothing
    and changes nothing. A day that is not YYYY-MM-DD is one line and exit code 3.

    Example: flywheel transform run; flywheel transform run --through 2026-01-05
    """
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from transforms.policy import load_policy
    from transforms.runner import run_transforms
    from warehouse.lake import open_lake
    from warehouse.table import LakeTable

    last_day = landing_day(through) if through is not None else None
    settings = settings_and_logging()
    policy = policy or settings.transforms.policy_file
    load_policy(policy)  # a bad policy file is named before anything else
    lake = open_lake(settings)
    lake_table = LakeTable.of(settings, lake)
    if (engine or settings.transforms.engine) == Engine.spark:
        if through is not None:
            raise ConfigError("--through is not supported with --engine spark yet")
        _transform_on_spark(
            settings, lake_table, policy=policy, select=select, full_refresh=full_refresh
        )
        return
    require_data_dir(settings)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        tasks: dict[str, TaskID] = {}

        def advance(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        summary = run_transforms(
            settings.data_dir,
            full_refresh=full_refresh,
            select=select,
            policy_file=policy,
            on_progress=advance,
            lake=lake,
            table=lake_table,
            through=last_day,
            models_dir=settings.transforms.models_dir,
        )
    table = Table(title=f"transform run {summary.run_id[:8]}", show_edge=False)
    for column in ("step", "added", "removed", "rows", "seconds"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for step in summary.steps:
        name = f"{step.name} ({step.mode})" if step.mode else step.name
        table.add_row(
            name, _count(step.added), _count(step.removed), f"{step.rows:,}", f"{step.seconds:.2f}"
        )
    out.print(table)
    out.print(
        f"{summary.files_loaded:,} lake files loaded, {summary.events_loaded:,} new events"
        + (f" (landed through {last_day})" if last_day else "")
    )
    if summary.policy_change:
        err.print(f"[yellow]{summary.policy_change}[/]", soft_wrap=True)
    if summary.interrupted:
        err.print(
            f"[yellow]{summary.interrupted} earlier run(s) had been killed before they ended; "
            "marked interrupted in transform_runs (their work was rolled back)[/]"
        )
    if summary.excluded_events:
        out.print(
            f"[yellow]{len(summary.excluded_events):,} event(s) left out: occurred_at missing or "
            f"outside years 1 to 9999 in UTC[/] (first: {summary.excluded_events[0]})"
        )


@transform_app.command("plan")
def transform_plan(
    policy: PolicyOption = None,
    full_refresh: Annotated[
        bool, typer.Option(help="Plan a run that rebuilds everything from the lake.")
    ] = False,
    select: SelectOption = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            "-d",
            help="Preview this dataset's next version; repeatable. Default: every dataset of "
            "the datasets file.",
        ),
    ] = None,
    datasets: Annotated[
        bool,
        typer.Option(help="Preview the datasets' next versions (--no-datasets: the models only)."),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show what `flywheel transform run` would change, without changing anything: per model
    the rows added, removed and changed; per signal the pairs, and the labels, before and after;
    per dataset the rows its next version would gain and lose against the latest version.

    The run is made on a copy of the warehouse (deleted afterwards) with the same code, so the
    plan is what the run would do; the warehouse and the lake's table are only read. Exit code
    3 for a policy file that does not validate, 6 with no warehouse yet, 4 while a transform run
    writes it.

    Example: flywheel transform plan --policy custom.toml
    """
    from export.policy import load_datasets
    from flywheel.shell.plan import print_plan, print_plan_json
    from privacy.keys import keyring_for
    from transforms.plan import planned
    from transforms.policy import load_policy
    from warehouse.lake import open_lake
    from warehouse.table import LakeTable

    settings = settings_and_logging()
    if settings.transforms.engine == Engine.spark:
        raise ConfigError(
            "flywheel transform plan previews a run on the DuckDB warehouse; with "
            "FLYWHEEL_TRANSFORMS__ENGINE=spark it is not supported yet"
        )
    policy = policy or settings.transforms.policy_file
    load_policy(policy)  # a bad policy file is named before anything else
    require_data_dir(settings)
    policies = load_datasets(settings.export.datasets_file) if datasets else None
    names = dataset or (list(policies.datasets) if policies else [])
    if policies is not None:
        for name in names:
            policies.dataset(name)  # an unknown name is one line before the run
    lake = open_lake(settings)
    with err.status("planning: running the transforms on a copy of the warehouse") as status:
        with planned(
            settings.data_dir,
            lake=lake,
            table=LakeTable.of(settings, lake),
            policy_file=policy,
            full_refresh=full_refresh,
            select=select,
            models_dir=settings.transforms.models_dir,
            on_progress=lambda step, done, total: status.update(f"planning: {step} {done}/{total}"),
        ) as (plan, copy):
            previews = []
            if policies is not None:
                from export.catalog import open_catalog
                from export.preview import preview

                catalog, keyring = open_catalog(settings), keyring_for(settings)
                for name in names:
                    status.update(f"planning: the next version of {name}")
                    previews.append(
                        preview(copy, lake, catalog, name, policies.dataset(name), keyring)
                    )
    if as_json:
        print_plan_json(plan, previews)
    else:
        print_plan(plan, previews, out)


def _count(value: int | None) -> str:
    """A count of rows for a table; ``-`` where it was not counted."""
    return "-" if value is None else f"{value:,}"


@transform_app.command("history")
def transform_history(
    limit: Annotated[
        int, typer.Option(min=1, max=100_000, help="How many runs, newest first.")
    ] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per run and line, every value in full.")
    ] = False,
) -> None:
    """The recent transform runs and the rows each added and removed per model.

    Reads the warehouse without writing it. Runs recorded before the changes were counted show
    "-"; a policy marked (changed) differs from the one the run before built with. No warehouse
    in the data dir: one line and exit code 6; a run writing it: 4.

    Example: flywheel transform history --limit 5; flywheel transform history --json
    """
    import json
    from datetime import UTC

    from rich.table import Table

    from transforms.history import recent_runs

    settings = settings_and_logging()
    runs = recent_runs(settings.data_dir, limit=limit)
    if as_json:
        for run in runs:
            out.print(json.dumps(run.as_json()), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title="transform runs, newest first", show_edge=False)
    for column in ("run", "started (UTC)", "status", "seconds", "full", "policy", "events",
                   "rows changed (+added -removed)"):  # fmt: skip
        table.add_column(
            column,
            justify="right" if column in ("seconds", "events") else "left",
            no_wrap=not column.startswith("rows"),
        )
    for run in runs:
        changed = (
            "-"
            if run.models is None
            else ", ".join(
                f"{m.model} +{_count(m.added)} -{_count(m.removed)}"
                for m in run.models
                if m.added or m.removed
            )
            or "none"
        )
        table.add_row(
            run.run_id[:8],
            f"{run.started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            run.status,
            "-" if run.seconds is None else f"{run.seconds:.1f}",
            "yes" if run.full_refresh else "no",
            (run.policy_hash or "-")[:8] + (" (changed)" if run.policy_changed else ""),
            f"{run.events_loaded:,}",
            changed,
        )
    out.print(table)
    if not runs:
        out.print("no transform run recorded yet")


DatasetOption = Annotated[
    str, typer.Option("--dataset", "-d", help="Dataset policy name (see the datasets file).")
]


@export_app.command("run")
def export_run(dataset: DatasetOption = "default") -> None:
    """Publish the next version of a dataset from the warehouse, if anything is new.

    Exit code 0 when a version was published or nothing was new (it says which), 5 when the
    quality gate failed (nothing published; the report's path is printed), 4 when another
    export or a transform holds the data (try again later), 3 for a configuration error or a
    missing extra; the others are in docs/development.md.

    Example: flywheel export run --dataset default
    """
    from export.catalog import open_catalog
    from export.policy import load_datasets
    from export.publish import export_dataset
    from flywheel.shell.evaluation import export_evaluator
    from privacy.keys import keyring_for
    from warehouse.lake import open_lake
    from warehouse.table import LakeTable

    settings = settings_and_logging()
    lake = open_lake(settings)
    catalog = open_catalog(settings)  # a missing bucket or no endpoint: one line, nothing built
    datasets = load_datasets(settings.export.datasets_file)
    datasets.dataset(dataset)  # an unknown name fails before the key or warehouse is read
    keyring = keyring_for(settings)
    with err.status("exporting") as status:
        result = export_dataset(
            settings.data_dir,
            dataset,
            keyring,
            datasets=datasets,
            keep_failed=settings.export.keep_failed_attempts,
            on_progress=lambda step: status.update(f"export {dataset}: {step}"),
            lake=lake,
            catalog=catalog,
            # With the Spark engine, the model tables are in the lake's catalog.
            models=LakeTable.of(settings, lake) if settings.transforms.engine == "spark" else None,
            evaluator=export_evaluator(),
        )
    for warning in result.gate.failed("warning") if result.gate else []:
        err.print(f"[yellow]quality warning:[/] {escape(warning.line())}", soft_wrap=True)
    if not result.published:
        out.print(
            f"nothing new for dataset {dataset!r} since {result.manifest.version}; "
            "no version published"
        )
        return
    counts = ", ".join(f"{kind} {c.rows:,}" for kind, c in result.manifest.counts.items())
    out.print(
        f"published {dataset} {result.version} ({counts} rows) at {result.url}", soft_wrap=True
    )
    if result.pruned:
        out.print(f"pruned the data files of {', '.join(result.pruned)} (keep_versions)")


@export_app.command("list")
def export_list(
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per version and line.")
    ] = False,
) -> None:
    """List the published datasets and their versions, oldest first; `(latest)` marks the
    version `latest` stands for, `(superseded)` those an erasure replaced.

    Example: flywheel export list --json
    """
    import json

    from rich.table import Table

    from export.catalog import open_catalog
    from export.differences import version_facts
    from flywheel.errors import VersionNotFoundError

    settings = settings_and_logging()
    catalog = open_catalog(settings)
    table = Table(show_edge=False)
    for column in ("dataset", "version", "created", "dpo", "kto", "reward", "quality"):
        # The creation time whole, never cut to an ambiguous prefix on a narrow terminal.
        table.add_column(column, no_wrap=column == "created", min_width=25 * (column == "created"))
    for name in catalog.names():
        try:
            current: str | None = catalog.latest(name)
        except VersionNotFoundError:
            current = None
        for version in catalog.versions(name):
            manifest = catalog.read_manifest(name, version)
            if as_json:
                facts = version_facts(manifest, current=version == current)
                out.print(json.dumps(facts), markup=False, highlight=False, soft_wrap=True)
                continue
            counts = manifest.counts
            marks = " (superseded)" if manifest.superseded_by else ""
            marks += " (pruned)" if manifest.pruned else ""
            marks += " (latest)" if version == current else ""
            table.add_row(
                name,
                version + marks,
                manifest.created_at,
                *(f"{counts[k].rows:,}" if k in counts else "-" for k in ("dpo", "kto", "reward")),
                "passed" if manifest.quality.success else "failed",
            )
    if not as_json:
        out.print(table if table.row_count else "no published datasets")


@export_app.command("trace")
def export_trace(
    ids: Annotated[list[str], typer.Argument(help="Row ids (the dataset's `id` column).")],
    dataset: DatasetOption = "default",
    version: Annotated[
        str | None,
        typer.Option(help="The version the ids come from, or `latest` (default: the newest)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Find the warehouse rows and events behind rows of a published dataset.

    A dataset's `id` and `event_ids` are re-keyed for it; this maps them back with the pseudonym
    key. Ids the warehouse no longer holds (erased users, say) are reported as not found.

    Example: flywheel export trace --dataset default 4a7ee971dff45a724d6000725c835d0b
    """
    import json

    from rich.table import Table

    from export.catalog import open_catalog
    from export.trace import trace_rows
    from privacy.keys import keyring_for

    settings = settings_and_logging()
    catalog = open_catalog(settings)
    keyring = keyring_for(settings)
    traced_version, rows = trace_rows(
        settings.data_dir, dataset, ids, keyring, version=version, catalog=catalog
    )
    if as_json:
        for row in rows:
            line = json.dumps({
                "dataset": dataset, "version": traced_version, "id": row.id, "table": row.table,
                "warehouse_id": row.warehouse_id, "event_ids": row.event_ids,
            })  # fmt: skip
            out.print(line, markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"{dataset} {traced_version}: {len(rows)} row id(s)", show_edge=False)
    for column in ("id", "warehouse table", "warehouse id", "event ids"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row.id, row.table or "[yellow]not in the warehouse[/]", row.warehouse_id or "",
            "\n".join(row.event_ids),
        )  # fmt: skip
    out.print(table)


@export_app.command("diff")
def export_diff(
    dataset: Annotated[str, typer.Argument(help="The dataset's name.")],
    version_a: Annotated[str, typer.Argument(metavar="VERSION_A", help="The older version.")],
    version_b: Annotated[
        str, typer.Argument(metavar="VERSION_B", help="The newer version, or `latest`.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """What changed between two versions: rows added and removed per config and split
    (matched by `id`), the signals behind them, and each config's mean confidence before and
    after. Either version may be `latest`.

    Exit code 0; 6 for a dataset or version not published.

    Example: flywheel export diff default v3 latest
    """
    import json
    from dataclasses import asdict

    from rich.table import Table

    from export.catalog import open_catalog
    from export.differences import diff

    settings = settings_and_logging()
    catalog = open_catalog(settings)
    found = diff(catalog, dataset, version_a, version_b, shifts=True)
    if as_json:
        record = {"dataset": dataset, **asdict(found)}
        for item in record["splits"]:
            del item["changed"], item["kept"]
        del record["changes"]
        out.print(json.dumps(record), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"{dataset}: {found.a} -> {found.b}", show_edge=False)
    for column in ("config", "split", found.a, found.b, "added", "removed"):
        table.add_column(column, justify="left" if column in ("config", "split") else "right")
    for item in found.splits:
        table.add_row(
            item.config, item.split, f"{item.rows_a:,}", f"{item.rows_b:,}",
            "-" if item.added is None else f"{item.added:,}",
            "-" if item.removed is None else f"{item.removed:,}",
        )  # fmt: skip
    out.print(table)
    if found.configs:
        shifts = Table(show_edge=False)
        for column in ("config", "confidence", "signals of added rows", "signals of removed rows"):
            shifts.add_column(column)

        def mean(value: float | None) -> str:
            return "-" if value is None else f"{value:.3f}"

        def signals(counts: dict[str, int]) -> str:
            return ", ".join(f"{signal} {n:,}" for signal, n in counts.items()) or "-"

        for shift in found.configs:
            shifts.add_row(
                shift.config, f"{mean(shift.confidence_a)} -> {mean(shift.confidence_b)}",
                signals(shift.signals_added), signals(shift.signals_removed),
            )  # fmt: skip
        out.print(shifts)
    for note in found.notes:
        err.print(f"[yellow]{escape(note)}[/]", soft_wrap=True)
    if found.policy_changed:
        out.print(f"policy changed: {', '.join(found.policy_changed)}")


@app.command()
def sql(
    query: Annotated[
        str | None,
        typer.Option(
            "--query",
            "-q",
            help="SQL to run (statements separated by ;); without it, standard "
            "input's, or a prompt on a terminal.",
        ),
    ] = None,
    form: Annotated[
        str, typer.Option("--format", help="table, csv or json (one object per line).")
    ] = "table",
    max_rows: Annotated[
        int, typer.Option(min=1, help="Rows a table shows at most (csv and json write all).")
    ] = 100,
) -> None:
    """Query the warehouse, read-only: nothing you type can change it or reach a file.

    At the prompt, end a statement with ; to run it; .tables lists the tables, .schema NAME a
    table's columns, .quit leaves. A statement that fails is one red line and exit code 2
    (at the prompt, the prompt stays); no warehouse yet is exit code 6, one being written by a
    transform run 4.

    Example: flywheel sql -q "SELECT count(*), avg(confidence) FROM preference_pairs"
    """
    from flywheel.shell.sql import Format, prompt, run_script
    from warehouse.query import read_only

    try:
        output = Format(form)
    except ValueError:
        raise typer.BadParameter("one of table, csv, json", param_hint="--format") from None
    settings = settings_and_logging()
    with read_only(settings.data_dir) as db:
        if query is not None or not sys.stdin.isatty():
            script = query if query is not None else sys.stdin.read()
            run_script(db, script, output, out=out, stream=sys.stdout, max_rows=max_rows)
            return
        import readline  # noqa: F401 - line editing and history for input()

        from flywheel.shell.sql import HELP

        err.print(f"{settings.data_dir}: {HELP}", markup=False, soft_wrap=True)
        prompt(
            db, input, output, out=out, stream=sys.stdout, max_rows=max_rows,
            on_error=lambda exc: err.print(f"[bold red]error:[/] {escape(str(exc))}",
                                           soft_wrap=True),
        )  # fmt: skip


@app.command()
def evaluate(
    dataset: DatasetOption = "default",
    version: Annotated[
        str | None,
        typer.Option(help="The version to evaluate, or `latest` (default: the newest)."),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            help="Simulated events (JSONL, `flywheel simulate --out`): with --truth, "
            "the ground truth's pairs are measured too."
        ),
    ] = None,  # fmt: skip
    truth: Annotated[
        Path | None,
        typer.Option(help="The simulator's hidden ground truth (`flywheel simulate --truth`)."),
    ] = None,
    ablations: Annotated[
        bool, typer.Option(help="Train again without each signal's pairs.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Does a dataset version teach what users prefer? Trains a light reward model
    (Bradley-Terry over hashed words) on the version's train split and prints its accuracy,
    with 95% intervals, on the held-out pairs, the explicit A/B choices among them and, given
    --events and --truth, the simulator's ground truth; then the same without each signal.

    Exit code 0; 6 for a dataset or version not published; 2 for --events without --truth.

    Example: flywheel evaluate --dataset default --events events.jsonl --truth truth.jsonl
    """
    from evaluate.utility import evaluate_version, truth_pairs
    from export.catalog import open_catalog
    from flywheel.shell.evaluation import print_evaluation

    if (events is None) != (truth is None):
        raise typer.BadParameter("give both or neither", param_hint="--events/--truth")
    settings = settings_and_logging()
    catalog = open_catalog(settings)
    ground = None
    if events is not None and truth is not None:
        ground = truth_pairs(_read_jsonl(events), _read_jsonl(truth))
    with err.status("training the reward model"):
        found = evaluate_version(catalog, dataset, version, truth=ground, ablations=ablations)
    if as_json:
        _print_json(found)
        return
    print_evaluation(found, out)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    import json

    from flywheel.errors import ConfigError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"could not read {path}: {exc}") from None


QueueArgument = Annotated[
    str, typer.Argument(help="The queue's name: lower-case letters, digits and _.- (at most 64).")
]
QueueOption = Annotated[
    str | None, typer.Option("--queue", help="Only this queue's reviews (default: every queue).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_json(model: Any) -> None:
    out.print(model.model_dump_json(indent=2), markup=False, highlight=False, soft_wrap=True)


def _queue_table(queues: list[Any]) -> Any:
    from rich.table import Table

    table = Table(show_edge=False)
    for column in ("queue", "kind", "created", "seed", "per stratum", "overlap", "items", "done",
                   "reviews"):  # fmt: skip
        table.add_column(column)
    for q in queues:
        table.add_row(q.queue_id, q.kind, q.created_at, str(q.seed), str(q.per_stratum),
                      f"{q.overlap:g}", str(q.items), str(q.items_done),
                      str(q.reviews))  # fmt: skip
    return table


@review_queue_app.command("create")
def review_queue_create(
    queue_id: QueueArgument,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the draw: the same seed over the same pairs draws the same queue."
        ),
    ],  # fmt: skip
    per_stratum: Annotated[int, typer.Option(help="Pairs drawn from each stratum.")] = 20,
    overlap: Annotated[
        float, typer.Option(help="Share of items that want two reviews (for the agreement).")
    ] = 0.1,
    stratum: Annotated[
        list[str] | None,
        typer.Option(
            help="Only this stratum (signal/band/agreement, e.g. copy/low/contested); "
            "repeat for more. Default: every stratum."
        ),
    ] = None,  # fmt: skip
    kind: Annotated[
        str,
        typer.Option(
            help="pair: preference pairs, judged side by side; label: responses with their KTO "
            "label, judged good or bad one at a time."
        ),
    ] = "pair",
    as_json: JsonOption = False,
) -> None:
    """Sample preference pairs (or, with --kind label, labelled responses) with training
    consent into a new review queue, stratified by signal, confidence band and agreement, and
    record the sampling.

    Example: flywheel review queue create week-49 --seed 49 --per-stratum 25 --overlap 0.2
    """
    from review.service import create_queue

    settings = settings_and_logging()
    require_data_dir(settings)
    queue = create_queue(settings, queue_id=queue_id, seed=seed, per_stratum=per_stratum,
                         overlap=overlap, strata=stratum or None, kind=kind)  # fmt: skip
    if as_json:
        _print_json(queue)
        return
    what = "labelled response(s)" if queue.kind == "label" else "pair(s)"
    out.print(f"review queue {queue.queue_id}: {queue.items} item(s) drawn from "
              f"{queue.candidates or 0:,} {what} with seed {queue.seed}")  # fmt: skip
    _print_strata(queue)


def _print_strata(queue: Any) -> None:
    from rich.table import Table

    table = Table(show_edge=False)
    for column in ("stratum", "population", "drawn"):
        table.add_column(column)
    for s in queue.strata:
        table.add_row(s.stratum, f"{s.population:,}", str(s.sampled))
    out.print(table)


@review_queue_app.command("list")
def review_queue_list(as_json: JsonOption = False) -> None:
    """List the review queues with their sampling and progress.

    Example: flywheel review queue list
    """
    import json

    from review.service import list_queues

    settings = settings_and_logging()
    require_data_dir(settings)
    queues = list_queues(settings)
    if as_json:
        out.print(json.dumps([q.model_dump() for q in queues], indent=2), markup=False,
                  highlight=False, soft_wrap=True)  # fmt: skip
        return
    out.print(_queue_table(queues) if queues else "no review queues")


@review_queue_app.command("show")
def review_queue_show(queue_id: QueueArgument, as_json: JsonOption = False) -> None:
    """Show a review queue: its sampling (seed, strata, pairs per stratum) and progress.

    Example: flywheel review queue show week-49
    """
    from review.service import show_queue

    settings = settings_and_logging()
    require_data_dir(settings)
    queue = show_queue(settings, queue_id=queue_id)
    if as_json:
        _print_json(queue)
        return
    out.print(_queue_table([queue]))
    _print_strata(queue)


@review_app.command("calibration")
def review_calibration(queue: QueueOption = None, as_json: JsonOption = False) -> None:
    """How the reviewers' verdicts calibrate the signals: human precision per signal (95%
    Wilson interval), reward levels against rubric scores (Spearman), agreement between
    reviewers (Cohen's kappa).

    Example: flywheel review calibration --json
    """
    from rich.table import Table

    from review.service import calibration

    settings = settings_and_logging()
    require_data_dir(settings)
    found = calibration(settings, queue_id=queue)
    if as_json:
        _print_json(found)
        return

    def interval(p: Any) -> str:
        if p.precision is None:
            return "n/a"
        return f"{p.precision:.2f} ({p.wilson_low:.2f}-{p.wilson_high:.2f})"

    precision = Table(title=f"Human precision ({found.reviews:,} reviews by "
                      f"{found.reviewers} reviewer(s))", show_edge=False)  # fmt: skip
    for column in ("signal", "precision (95% CI)", "agree", "disagree", "ties", "both bad"):
        precision.add_column(column)
    for p in [*found.signals, *found.pairs]:
        name = p.name if p in found.signals else f"pairs: {p.name}"
        precision.add_row(name, interval(p), str(p.agree), str(p.disagree), str(p.ties),
                          str(p.both_bad))  # fmt: skip
    out.print(precision)
    levels = Table(title="Reward levels against rubric scores (Spearman)", show_edge=False)
    dimensions = list(dict.fromkeys(c.dimension for c in found.reward_levels))
    levels.add_column("level")
    for dimension in dimensions:
        levels.add_column(dimension)
    for level in dict.fromkeys(c.level for c in found.reward_levels):
        cells = {c.dimension: c for c in found.reward_levels if c.level == level}
        levels.add_row(level, *(
            "n/a" if cells[d].spearman is None else f"{cells[d].spearman:.2f} ({cells[d].n})"
            for d in dimensions
        ))  # fmt: skip
    if found.reward_levels:
        out.print(levels)
    agreement = found.agreement
    kappa = "n/a" if agreement.kappa is None else f"{agreement.kappa:.2f}"
    observed = "n/a" if agreement.observed is None else f"{agreement.observed:.2f}"
    out.print(f"agreement between reviewers: {agreement.items} item(s) reviewed twice, "
              f"observed {observed}, Cohen's kappa {kappa}")  # fmt: skip


@review_app.command("suggest-policy")
def review_suggest_policy(
    policy: Annotated[
        Path | None,
        typer.Option(
            help="The policy file to compare with. Default: FLYWHEEL_TRANSFORMS__POLICY_FILE, "
            "else the shipped one."
        ),
    ] = None,
    queue: QueueOption = None,
    min_reviews: Annotated[
        int, typer.Option(min=1, help="Decided verdicts a signal needs for a new weight.")
    ] = 20,
) -> None:
    """Print, as a unified diff of the policy file, the weights the reviews suggest. Nothing is
    written: read it, then apply it (`patch FILE < weights.diff`, or by hand).

    Example: flywheel review suggest-policy --policy policy.toml > weights.diff
    """
    from review.service import suggest_policy

    settings = settings_and_logging()
    require_data_dir(settings)
    suggestion = suggest_policy(settings, policy_file=policy, queue_id=queue,
                                min_reviews=min_reviews)  # fmt: skip
    for weight in suggestion.weights:
        err.print(f"{weight.signal}: {weight.current:g} -> {weight.suggested:g} "
                  f"({weight.n} verdicts; {weight.reason})", markup=False,
                  soft_wrap=True)  # fmt: skip
    if suggestion.diff:
        sys.stdout.write(suggestion.diff)
    else:
        err.print("no change suggested", markup=False)


@app.command()
def schedule(
    once: Annotated[
        bool, typer.Option(help="Run every job once now (transforms first), then exit.")
    ] = False,
    max_runs: Annotated[
        int | None,
        typer.Option(help="Exit after this many job runs (default: run until stopped)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus /metrics on this port: job runs, quality gate results, "
            "last publication per dataset, lake commits (default: none)."
        ),
    ] = None,
) -> None:
    """Run the transforms and the exports on the cron expressions of the datasets file.

    Jobs that find nothing new are skipped; every run is logged; a failed run is logged and
    retried at its next time. SIGTERM stops it once the running job is done (Ctrl-C at once).
    With --once, the exit code is 1 if any job failed (for cron).

    Example: flywheel schedule; flywheel schedule --once
    """
    import signal
    import threading

    from export.catalog import open_catalog
    from export.policy import load_datasets
    from flywheel.shell.schedule import Scheduler, SchedulerMetrics, build_jobs, next_time
    from privacy.keys import keyring_for
    from warehouse.lake import open_lake
    from warehouse.table import LakeTable, TableMetrics

    if max_runs is not None and max_runs < 1:
        raise ConfigError(f"--max-runs must be at least 1, not {max_runs}")
    from transforms.policy import load_policy

    settings = settings_and_logging()
    load_policy(settings.transforms.policy_file)  # a bad policy file is named before any job
    lake = open_lake(settings)
    catalog = open_catalog(settings)
    datasets = load_datasets(settings.export.datasets_file)
    metrics = SchedulerMetrics()
    jobs = build_jobs(
        settings.data_dir,
        datasets,
        keyring_for(settings),
        lake_retention_days=settings.privacy.lake_retention_days,
        lake=lake,
        table=LakeTable.of(settings, lake, metrics=TableMetrics(metrics.registry)),
        catalog=catalog,
        spark=settings.spark if settings.transforms.engine == "spark" else None,
        metrics=metrics,
        policy_file=settings.transforms.policy_file,
        models_dir=settings.transforms.models_dir,
    )
    if not jobs:
        raise ConfigError("the datasets file schedules nothing (no transforms or dataset schedule)")
    scheduler = Scheduler(jobs, stop=threading.Event(), metrics=metrics)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        metrics.export.seed(catalog, [n for n, p in datasets.datasets.items() if p.schedule])
        start_http_server(metrics_port, registry=metrics.registry)
    if once:
        failed = [job.name for job in jobs if not scheduler.run_job(job)]
        if failed:
            raise FlywheelError(f"scheduled job(s) failed: {', '.join(failed)} (see the log above)")
        return
    signal.signal(signal.SIGTERM, lambda *_: scheduler.stop.set())
    now = scheduler.clock()
    for job in jobs:
        err.print(
            f"{job.name}: '{job.cron}', next at {next_time(job.cron, now):%Y-%m-%d %H:%M} UTC"
        )
    try:
        scheduler.run_forever(max_runs=max_runs)
    except KeyboardInterrupt:
        scheduler.stop.set()


@app.command()
def erase(
    user: Annotated[
        list[str] | None, typer.Option("--user", "-u", help="Raw user id to erase; repeatable.")
    ] = None,
    users_file: Annotated[
        Path | None,
        typer.Option(help="UTF-8 file with one raw user id per line (blank lines skipped)."),
    ] = None,
    unfinished: Annotated[
        bool,
        typer.Option(
            "--unfinished",
            help="Finish the requests the erasure log shows unfinished (failed, or cut off).",
        ),
    ] = False,
) -> None:
    """Erase users from the lake, the warehouse and the published datasets, and suppress their
    future events. Safe to run again; every request is recorded in the erasure log (pseudonyms
    only, never a raw id).

    Example: flywheel erase --user u-123 --user u-456; flywheel erase --users-file ids.txt;
    flywheel erase --unfinished
    """
    from export.catalog import open_catalog
    from privacy.keys import keyring_for
    from privacy.requests import begin_erasure, unfinished_erasures

    ids = list(user or [])
    if users_file is not None:
        try:
            lines = users_file.read_text().split("\n")  # newlines translated on reading
        except OSError as exc:
            raise ConfigError(f"cannot read {users_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{users_file} is not UTF-8 text") from None
        # Only the line ends go: an id is taken as the frontend sent it, padding included.
        from_file = [line for line in lines if line.strip()]
        if not from_file:
            raise ConfigError(f"{users_file} holds no user id (one per line)")
        ids += from_file
    if not ids and not unfinished:
        raise ConfigError(
            "name the users to erase: --user ID (repeatable) or --users-file FILE; "
            "or finish earlier requests: --unfinished"
        )
    settings = settings_and_logging()
    check_lake(settings)
    open_catalog(settings)  # the datasets' store answers before a request is logged
    require_data_dir(settings)
    keyring = keyring_for(settings)
    # Read before this command logs a request of its own, which is not an earlier one.
    earlier = [(r, True) for r in unfinished_erasures(settings.data_dir)] if unfinished else []
    if unfinished and not earlier:
        out.print("no unfinished erasure request in the erasure log")
    records = [(begin_erasure(settings, ids, keyring), False)] if ids else []
    records += earlier
    for record, resumed in records:
        _finish_erasure(settings, record, keyring, resumed=resumed)


def _finish_erasure(
    settings: Settings, record: ErasureRecord, keyring: Keyring, *, resumed: bool
) -> None:
    """Finish one erasure request, its step on a status line; then one line: what it did."""
    from flywheel.shell.erasure import finish_erasure

    with err.status(f"erasure {record.request}") as status:
        finished = finish_erasure(
            settings, record, keyring, fault=_fault_hook(), resumed=resumed,
            on_step=lambda step: status.update(f"erasure {record.request}: {step}"),
        )  # fmt: skip
    if finished is None:
        out.print(f"erasure {record.request}: completed meanwhile by another process")
        return
    datasets = "; ".join(
        f"{d['dataset']}: {', '.join(d['superseded'])} superseded"
        + (f" by {d['published']}" if d["published"] else "")
        for d in record.datasets
    )
    deleted = sum(record.warehouse_rows_deleted.values())
    out.print(
        f"erasure {record.request}{' (resumed)' if resumed else ''}: "
        f"{len(record.all_pseudonyms())} pseudonym(s); "
        f"{record.lake_events_removed:,} events removed from {len(record.lake_files_rewritten)} "
        f"lake files; warehouse rows deleted: {deleted:,}; "
        f"datasets: {datasets or 'none held them'}",
        soft_wrap=True,
    )
    if record.kafka_raw_until:
        # Kafka deletes records by age only: say what the erasure could not reach.
        err.print(
            f"[yellow]erasure {record.request}: Kafka keeps their raw events until retention "
            "passes: "
            + "; ".join(f"{t['topic']} until {t['until']}" for t in record.kafka_raw_until)
            + "[/]",
            soft_wrap=True,
        )


@app.command()
def demo(
    events: Annotated[int, typer.Option(min=1, help="How many simulated events to send.")] = 20_000,
    seed: Annotated[
        int, typer.Option(help="Random seed of the traffic (a new seed adds new traffic).")
    ] = 0,
    fresh: Annotated[
        bool,
        typer.Option(help="Remove the data dir's lake, warehouse and datasets first (keys stay)."),
    ] = False,
    kafka: Annotated[
        bool,
        typer.Option(help="Go through a local Kafka broker and an ingest worker (needs Java)."),
    ] = False,
    rounds: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=20,
            help="Turn the flywheel: round 0, then N rounds each served by the best of --best-of "
            "answers by a reward model trained on the previous round's dataset (--events each).",
        ),
    ] = None,  # fmt: skip
    best_of: Annotated[
        int, typer.Option(min=2, max=16, help="With --rounds: candidates per answer served.")
    ] = 4,
    control: Annotated[
        bool,
        typer.Option(
            help="With --rounds: also run a control whose reward models learn from shuffled labels."
        ),
    ] = True,  # fmt: skip
) -> None:
    """Run the main job end to end: simulated chat traffic through the real HTTP API, landed,
    transformed, checked by the quality gate and published as a TRL-ready dataset.

    Re-running continues on the same data dir (the same seed sends the same events: nothing new);
    --fresh starts over. Published versions are never modified.

    With --rounds N, the flywheel turns: each round is served by the previous round's reward
    model and the users' hidden satisfaction is reported per round, as a table and a chart,
    beside a control run (in <data dir>/rounds/, cleared at the start; docs/evaluate.md).

    Example: flywheel demo; flywheel demo --seed 1; flywheel demo --fresh --kafka;
    flywheel demo --rounds 3 --events 5000
    """
    from flywheel.shell.demo import run_demo

    if rounds is not None:
        if kafka or fresh:
            raise typer.BadParameter("not with --kafka or --fresh", param_hint="--rounds")
        from flywheel.shell.rounds import run_rounds

        run_rounds(settings=settings_and_logging(), rounds=rounds, events=events, seed=seed,
                   best_of=best_of, control=control, console=out)  # fmt: skip
        return
    run_demo(
        settings=settings_and_logging(),
        events=events,
        seed=seed,
        fresh=fresh,
        kafka=kafka,
        console=out,
    )


EXIT_CODES: tuple[tuple[type[FlywheelError], int], ...] = (
    (ReviewInputError, 2),
    (QueryError, 2),
    (ReviewConflictError, 1),
    (ManifestVersionError, 7),
    (QualityGateError, 5),
    (WarehouseBusyError, 4),
    (ExportBusyError, 4),
    (TransientError, 4),
    (ConfigError, 3),
    (NotFoundError, 6),
)
"""What a scheduler needs to know, by the error's class (the first that matches): 3 fix the
configuration, 4 busy or unavailable (try again later), 5 the quality gate stopped the export
(nothing published), 6 what the command names does not exist, 7 a dataset manifest written by a
newer release (upgrade); 1 for any other error, 2 for a command line that is wrong (from the
command-line parser, a review queue's parameters, a statement given to ``flywheel sql``).
docs/development.md lists them."""


def exit_code(exc: FlywheelError) -> int:
    """The exit code of a platform error (``EXIT_CODES``, else 1)."""
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)


def main() -> None:
    """Entry point: run the CLI, turning platform errors into one red line and an exit code
    that says what kind of failure it was (``EXIT_CODES``)."""
    try:
        app()
    except FlywheelError as exc:
        first, _, rest = str(exc).partition("\n")
        err.print(f"[bold red]error:[/] {escape(first)}", soft_wrap=True)
        if rest:
            err.print(rest, markup=False, style="dim")
        sys.exit(exit_code(exc))
    except OSError as exc:
        # The file system refused (read-only, full, a file where a folder belongs): the
        # machine's state, not a bug; the path and the system's reason say what to fix.
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"[bold red]error:[/] {escape(where + str(exc.strerror or exc))}", soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        sys.exit(130)
