"""``flywheel demo``: the main job end to end, from simulated chat traffic to a published dataset.

1. Simulated traffic (``flywheel.dev.simulator``, with its hidden ground truth) is posted over real
   HTTP to the ingest API, served in this process on a free loopback port.
2. Embedded mode (the default): the API's in-process sink validates, anonymises and lands every
   accepted event in the lake before answering. With ``kafka=True`` a local broker is started
   (or reused), the API produces to it, and an ingest worker (``flywheel ingest`` as a child
   process) lands the topic in the lake.
3. A transform run loads the new lake files and builds the models; an export runs the quality
   gate and publishes the next version of the ``default`` dataset (or says nothing is new).
4. A summary: events by type, pairs and labels by signal with each signal's precision against
   the simulator's ground truth beside its calibrated agreement, the gate's result, and where the
   dataset and the Data Docs report are.

Re-running continues on the same data dir: the lake is append-only and versions are immutable, so
an earlier version is never touched (the same seed sends the same events, which are dropped as
already landed: nothing new). ``fresh=True`` removes the demo's lake, warehouse and datasets first.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from api.server import running_api
from flywheel.errors import ConfigError, FlywheelError
from flywheel.settings import Settings
from flywheel.shell.erasure import finish_erasure
from privacy.keys import DEMO_KEY_FILE

if TYPE_CHECKING:
    from evaluate.utility import EvaluationPublic
    from export.manifest import ConfigCounts
    from warehouse.lake import Lake

DATASET = "default"
KAFKA_HOME = "kafka-local"


@dataclass
class SignalRow:
    """One signal's line of the summary."""

    signal: str
    pairs: int = 0
    judged: int = 0
    """Pairs whose two responses the ground truth covers (edit pairs have no second response)."""
    right: int = 0
    labels: int = 0
    agreement: dict[str, tuple[float | None, int]] = field(default_factory=dict)
    """Calibrated agreement with each explicit signal: (share, count)."""

    @property
    def precision(self) -> float | None:
        return self.right / self.judged if self.judged else None


@dataclass
class DemoSummary:
    """What the demo did and found."""

    posted: int
    accepted: int
    events_by_type: dict[str, int]
    files_loaded: int
    events_loaded: int
    signals: list[SignalRow]
    version: str
    published: bool
    dataset_path: Path
    report_path: Path
    quality_passed: bool
    warnings: list[str]
    counts: dict[str, ConfigCounts]
    evaluation: EvaluationPublic | None = None
    """``flywheel evaluate`` of the version, ground truth included."""


def demo_keyring_path(settings: Settings, console: Console) -> Path:
    """The configured pseudonym key file, or a local one the demo creates (and says so)."""
    from privacy.keys import create_keyring

    if settings.privacy.hmac_key_file is not None:
        return settings.privacy.hmac_key_file
    path = settings.data_dir / DEMO_KEY_FILE
    if not path.exists():
        create_keyring(path)
        console.print(
            f"[yellow]created a local pseudonym key at {path}[/] (demo only: a deployment sets "
            "FLYWHEEL_PRIVACY__HMAC_KEY_FILE to a key kept outside the data dir)"
        )
    return path


def clear_data(data_dir: Path, console: Console) -> None:
    """Remove the lake (with its catalog), the warehouse, the datasets and the demo's local
    broker of a data dir (not its keys)."""
    from export.catalog import DATASETS_DIR
    from flywheel.dev import localkafka
    from warehouse.db import WAREHOUSE_FILE
    from warehouse.lake import CACHE_FOLDER, SPOOL_FOLDER
    from warehouse.table import CATALOG_FILE

    removed = []
    kafka_home = data_dir / KAFKA_HOME
    if kafka_home.exists():  # the demo's own broker: its topics hold earlier runs' events
        localkafka.stop(kafka_home)
    # The lake's catalog goes with the lake: it names the lake's files, which go.
    lake = ("lake", CATALOG_FILE, CACHE_FOLDER, SPOOL_FOLDER)
    for name in (*lake, DATASETS_DIR, WAREHOUSE_FILE, WAREHOUSE_FILE + ".wal", KAFKA_HOME):
        path = data_dir / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(name)
        elif path.exists():
            path.unlink()
            removed.append(name)
    if removed:
        console.print(f"--fresh: removed {', '.join(removed)} from {data_dir}")


def run_demo(
    *,
    settings: Settings,
    events: int,
    seed: int,
    console: Console,
    fresh: bool = False,
    kafka: bool = False,
) -> DemoSummary:
    """Simulate, post, land, transform, gate and publish; print and return the summary."""
    from export.policy import load_datasets
    from flywheel.dev import simulator
    from warehouse.lake import open_lake

    load_datasets(settings.export.datasets_file).dataset(DATASET)  # before any event is sent
    lake = open_lake(settings, local_only="flywheel demo")
    if fresh:
        if settings.lake_location.local_path().resolve() != (settings.data_dir / "lake").resolve():
            # Not the data dir's: a folder this command did not create, left to its owner.
            raise ConfigError(
                f"--fresh removes the data dir's lake, but FLYWHEEL_LAKE__URL puts the lake at "
                f"{settings.lake_location}: remove its events folder yourself, or unset the setting"
            )
        clear_data(settings.data_dir, console)
    settings, write_key, keyring = with_demo_keys(settings, console)
    simulation = simulator.simulate(simulator.SimulationConfig(events=events, seed=seed))
    traffic = list(simulation)  # the ground truth is complete once every event was generated
    posted, run, exported = land_and_publish(settings, traffic, write_key, keyring, lake, console,
                                             kafka=kafka)  # fmt: skip
    by_type = Counter(event["type"] for event in traffic)
    summary = DemoSummary(
        posted=posted.events,
        accepted=posted.accepted,
        events_by_type=dict(sorted(by_type.items())),
        files_loaded=run.files_loaded,
        events_loaded=run.events_loaded,
        signals=signal_rows(settings.data_dir, simulation.truth),
        evaluation=_evaluation(settings, exported["version"], traffic, simulation.truth, console),
        **exported,
    )
    print_summary(summary, settings, console)
    return summary


def _evaluation(
    settings: Settings, version: str, traffic: list[dict[str, Any]], truth: list[dict[str, Any]],
    console: Console,
) -> EvaluationPublic | None:  # fmt: skip
    """What the published version teaches: ``flywheel evaluate`` on it, the simulator's ground
    truth included. None when the version has too few pairs to train on."""
    from evaluate.utility import evaluate_version, truth_pairs
    from export.catalog import Catalog
    from export.publish import MIN_TRAIN_PAIRS

    catalog = Catalog.in_data_dir(settings.data_dir)
    pairs = catalog.read_manifest(DATASET, version).counts.get("dpo")
    train = pairs.splits.get("train") if pairs is not None else None
    if train is None or train.rows < MIN_TRAIN_PAIRS:
        return None
    with console.status("training a reward model on the version"):
        return evaluate_version(catalog, DATASET, version, truth=truth_pairs(traffic, truth))


def with_demo_keys(settings: Settings, console: Console) -> tuple[Settings, str, Any]:
    """The demo's settings: a write key of its own for the API it serves, the pseudonym key file
    (the configured one, else a local one it creates); with the write key and the keyring."""
    from privacy.keys import keyring_for

    key_file = demo_keyring_path(settings, console)
    write_key = secrets.token_urlsafe(24)
    settings = settings.model_copy(
        update={
            "api": settings.api.model_copy(update={"write_keys": [SecretStr(write_key)]}),
            "privacy": settings.privacy.model_copy(update={"hmac_key_file": key_file}),
        }
    )
    return settings, write_key, keyring_for(settings)


def land_and_publish(
    settings: Settings, traffic: list[dict[str, Any]], write_key: str, keyring: Any, lake: Lake,
    console: Console, *, kafka: bool = False, evaluated: bool = True,
) -> tuple[Any, Any, dict[str, Any]]:  # fmt: skip
    """Post ``traffic`` over HTTP, land it, run the transforms and export the demo's dataset:
    what was posted, the transform run, and the export (``_export``; ``evaluated``: with the
    evaluation its policy asks for in the manifest and the card)."""
    from transforms.runner import run_transforms
    from warehouse.table import LakeTable

    posted = (
        _through_kafka(settings, traffic, write_key, console)
        if kafka
        else _embedded(settings, traffic, write_key, keyring, console)
    )
    with console.status("transform run"):
        run = run_transforms(settings.data_dir, lake=lake, table=LakeTable.of(settings, lake))
    with console.status("quality gate and export"):
        exported = _export(settings, keyring, lake, evaluated=evaluated)
    return posted, run, exported


def _embedded(
    settings: Settings, traffic: list[dict[str, Any]], write_key: str, keyring: Any,
    console: Console,
) -> Any:  # fmt: skip
    from ingest.embedded import embedded_sink

    settings = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": None})}
    )
    sink = embedded_sink(settings, keyring)
    result = _post(settings, sink, traffic, write_key, console)
    console.print(
        f"embedded mode: {result.accepted:,} events accepted over real HTTP "
        f"({result.accepted / max(result.seconds, 1e-9):,.0f} events/s); {sink.landed:,} landed, "
        f"{sink.without_consent:,} dropped for lack of training consent, {sink.duplicates:,} "
        f"dropped as resends or already landed"
    )
    return result


def _post(
    settings: Settings, sink: Any, traffic: list[dict[str, Any]], write_key: str,
    console: Console,
) -> Any:  # fmt: skip
    from flywheel.dev import simulator

    with (
        running_api(settings, sink, erasure=finish_erasure) as base_url,
        Progress(console=console, transient=True, disable=not console.is_terminal) as bar,
    ):
        task = bar.add_task("posting simulated traffic", total=len(traffic))
        return simulator.post_events(
            traffic, url=f"{base_url}/v1/events", key=write_key,
            on_batch=lambda n: bar.advance(task, n),
        )  # fmt: skip


def _through_kafka(
    settings: Settings, traffic: list[dict[str, Any]], write_key: str, console: Console
) -> Any:
    """Start (or reuse) a local broker, post through the Kafka-backed API, run a worker."""
    from api.producer import KafkaSink
    from flywheel.dev import localkafka
    from flywheel.kafka import create_topics

    home = settings.data_dir / KAFKA_HOME
    state = localkafka.read_state(home)
    started = not localkafka.is_running(state)
    if started:
        with console.status("starting a local Kafka broker"):
            state = localkafka.start(home)
    assert state is not None
    kafka_settings = settings.kafka.model_copy(
        update={"bootstrap_servers": state.bootstrap_servers}
    )
    settings = settings.model_copy(update={"kafka": kafka_settings})
    try:
        create_topics(kafka_settings)
        result = _post(settings, KafkaSink(kafka_settings), traffic, write_key, console)
        console.print(f"{result.accepted:,} events accepted over real HTTP into Kafka")
        environment = {
            **os.environ,
            "FLYWHEEL_DATA_DIR": str(settings.data_dir),
            "FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS": state.bootstrap_servers,
            "FLYWHEEL_PRIVACY__HMAC_KEY_FILE": str(settings.privacy.hmac_key_file),
        }
        with console.status("ingest worker: Kafka to the lake"):
            worker = subprocess.run(
                [sys.executable, "-m", "flywheel", "ingest", "--idle-exit", "5"],
                env=environment, capture_output=True, text=True, check=False,
            )  # fmt: skip
        if worker.returncode != 0:
            raise FlywheelError(f"the ingest worker failed: {worker.stderr.strip()[-500:]}")
        console.print(f"ingest worker: {worker.stdout.strip()}")
    finally:
        if started:
            localkafka.stop(home)
    return result


def _export(settings: Settings, keyring: Any, lake: Lake, *, evaluated: bool) -> dict[str, Any]:
    from export.policy import load_datasets
    from export.publish import export_dataset
    from flywheel.shell.evaluation import export_evaluator

    result = export_dataset(
        settings.data_dir,
        DATASET,
        keyring,
        datasets=load_datasets(settings.export.datasets_file),
        keep_failed=settings.export.keep_failed_attempts,
        lake=lake,
        evaluator=export_evaluator() if evaluated else None,
    )
    manifest = result.manifest  # the new version's, or the latest's when nothing was new
    version = manifest.version
    path = settings.data_dir / "datasets" / DATASET / version
    return {
        "version": version,
        "published": result.published,
        "dataset_path": path,
        "report_path": path / "quality" / "index.html",
        "quality_passed": manifest.quality.success,
        "warnings": manifest.quality.warnings,
        "counts": manifest.counts,
    }


def signal_rows(data_dir: Path, truth: list[dict[str, Any]]) -> list[SignalRow]:
    """Pairs and labels per signal in the warehouse, each pair judged against the ground truth
    where the simulator recorded both responses' quality, and the calibration beside them."""
    import duckdb

    from flywheel.dev.simulator import hidden_quality
    from warehouse.db import warehouse_path
    from warehouse.lineage import RESPONSE_SIGNALS

    quality = hidden_quality(truth)
    rows: dict[str, SignalRow] = {}
    with duckdb.connect(str(warehouse_path(data_dir)), read_only=True) as db:
        pairs = db.execute(
            "SELECT chosen_response_id, rejected_response_id, signals FROM preference_pairs"
        ).fetchall()
        labels = db.execute(
            f"SELECT {RESPONSE_SIGNALS} FROM labels AS l JOIN responses AS r USING (response_id)"
        ).fetchall()
        calibration = db.execute(
            "SELECT signal, explicit, agreement, n FROM signal_calibration"
        ).fetchall()
    for chosen, rejected, signals in pairs:
        judged = chosen in quality and rejected in quality
        for signal in signals:
            row = rows.setdefault(signal, SignalRow(signal))
            row.pairs += 1
            if judged:
                row.judged += 1
                row.right += quality[chosen] > quality[rejected]
    for (signals,) in labels:
        for signal in signals:
            rows.setdefault(signal, SignalRow(signal)).labels += 1
    for signal, explicit, agreement, n in calibration:
        rows.setdefault(signal, SignalRow(signal)).agreement[explicit] = (agreement, n)
    return [rows[name] for name in sorted(rows)]


def _share(value: float | None, n: int) -> str:
    return "n/a" if value is None or n == 0 else f"{value:.2f} ({n:,})"


def print_summary(summary: DemoSummary, settings: Settings, console: Console) -> None:
    """The demo's closing report."""
    events = Table(title="Events posted, by type", show_edge=False)
    events.add_column("type")
    events.add_column("events", justify="right")
    for name, count in summary.events_by_type.items():
        events.add_row(name, f"{count:,}")
    console.print(events)
    console.print(
        f"transform run: {summary.files_loaded} new lake files, {summary.events_loaded:,} new "
        "events loaded"
    )
    signals = Table(title="Training signal, by user action (whole warehouse)", show_edge=False)
    for column in ("signal", "pairs", "precision vs ground truth", "labels",
                   "agrees with A/B", "agrees with ratings"):  # fmt: skip
        signals.add_column(column, justify="left" if column == "signal" else "right")
    for row in summary.signals:
        signals.add_row(
            row.signal,
            f"{row.pairs:,}",
            _share(row.precision, row.judged),
            f"{row.labels:,}",
            _share(*row.agreement.get("ab_choice", (None, 0))),
            _share(*row.agreement.get("rating", (None, 0))),
        )
    console.print(signals)
    console.print(
        "precision: share of pairs whose chosen response the simulator made better (pairs "
        "judged); agreement: how often the signal agrees with explicit choices on the same "
        "responses (calibration, responses compared)"
    )
    verdict = "[green]passed[/]" if summary.quality_passed else "[red]failed[/]"
    rows = ", ".join(f"{kind} {c.rows:,}" for kind, c in summary.counts.items())
    status = "published" if summary.published else "unchanged (nothing new to publish)"
    console.print(f"quality gate: {verdict}, {len(summary.warnings)} warning(s)")
    for warning in summary.warnings:
        console.print(f"  [yellow]warning[/] {escape(str(warning))}", soft_wrap=True)
    console.print(
        f"dataset {DATASET} {summary.version} {status} ({rows} rows): {summary.dataset_path}",
        soft_wrap=True,
    )
    console.print(f"quality report (Data Docs): {summary.report_path}", soft_wrap=True)
    console.print(
        f'load it: datasets.load_dataset("{summary.dataset_path}", "dpo")', soft_wrap=True
    )
    if summary.evaluation is not None:
        from flywheel.shell.evaluation import print_evaluation

        print_evaluation(summary.evaluation, console)
        console.print(
            "accuracy: share of held-out pairs whose chosen answer a reward model trained on the "
            "train split scores higher (0.5 is chance); ground_truth: sibling answers the "
            "simulator made better, pairs of the train split left out (docs/evaluate.md)"
        )
