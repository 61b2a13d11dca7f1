"""Every model on Spark equals the same model on DuckDB, row for row and type for type, on the
same lake: simulated traffic, and rounds of late, duplicated and cross-conversation events
(both engines building incrementally round after round, and a full refresh on Spark equal to
its incremental result), and traffic with metadata, content parts and tool calls over a lake
landed before them. A
dataset exported from Spark's tables is byte for byte the one exported from DuckDB's, and a
model that fails on Spark leaves every table as it was (checked at the end of the rounds: a
Spark run costs tens of seconds here)."""

from __future__ import annotations

import json
import random
import shutil
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from export.catalog import Catalog
from export.policy import DatasetPolicy, DatasetsFile
from export.publish import export_dataset
from flywheel.dev.simulator import SimulationConfig, simulate
from flywheel.settings import SparkSettings
from privacy.keys import write_keyring
from tests.factories import generation, make_event
from tests.helpers.datasets import KEYRING
from tests.helpers.datasets import land as land_scrubbed
from tests.helpers.lake import create_table_before, land
from tests.helpers.scenarios import late_and_duplicated_rounds, with_extensions
from transforms.dialect import to_spark
from transforms.models import define_functions, discover
from transforms.runner import run_transforms
from transforms.spark import (
    CATALOG,
    RUNS_TABLE,
    SOURCE_TABLES,
    SparkModelError,
    SparkRun,
    open_session,
    run_transforms_on_spark,
    update_table,
)
from warehouse.db import open_warehouse, raw
from warehouse.lake import Lake
from warehouse.table import MODELS_NAMESPACE, LakeTable, default_catalog_uri

pytestmark = [
    pytest.mark.slow,
    # pyspark reads each result from the JVM over a local socket it leaves to the garbage
    # collector to close (pyspark.util._load_from_socket says so).
    pytest.mark.filterwarnings(
        r"ignore:Exception ignored in. <socket.socket fd=\d+, family=2, type=1, proto=6, "
        r"laddr=\('127.0.0.1', \d+\), raddr=\('127.0.0.1', \d+\)>"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]

MODELS = sorted(discover())


def _rows(table: Any) -> list[str]:
    """An Arrow table's rows as sorted JSON (timestamps in UTC ISO form)."""
    return sorted(json.dumps(row, default=str, sort_keys=True) for row in table.to_pylist())


def _types(table: Any) -> list[tuple[str, str]]:
    """Column names and Arrow types. Spelling alone may differ: a time zone written ``UTC`` or
    ``Etc/UTC`` or ``+00:00``, the name of a list's item field (DuckDB's ``l``, Iceberg's
    ``element``), and pyiceberg's large types for the columns of an empty table."""
    return [
        (
            field.name,
            str(field.type)
            .replace("+00:00", "UTC")
            .replace("Etc/UTC", "UTC")
            .replace("large_", "")
            .replace("list<element:", "list<")
            .replace("list<l:", "list<"),
        )
        for field in table.schema
    ]


def duckdb_tables(data_dir: Path) -> dict[str, Any]:
    engine = open_warehouse(data_dir)
    try:
        with engine.connect() as connection:
            db = raw(connection)
            return {name: db.sql(f"SELECT * FROM {name}").to_arrow_table() for name in MODELS}
    finally:
        engine.dispose()


def spark_tables(table: LakeTable) -> dict[str, Any]:
    """The model tables Spark wrote, read as an export host reads them: pyiceberg and Arrow."""
    catalog = table.catalog()
    return {name: catalog.load_table((MODELS_NAMESPACE, name)).scan().to_arrow() for name in MODELS}


def assert_same(data_dir: Path, table: LakeTable) -> dict[str, int]:
    duck, spark = duckdb_tables(data_dir), spark_tables(table)
    for name in MODELS:
        assert _types(spark[name]) == _types(duck[name]), name
        assert _rows(spark[name]) == _rows(duck[name]), name
    return {name: duck[name].num_rows for name in MODELS}


def lake_table(data_dir: Path) -> LakeTable:
    return LakeTable(Lake.in_data_dir(data_dir), default_catalog_uri(data_dir))


@pytest.fixture(scope="module")
def built_on_spark(
    simulated: tuple[Path, list[dict[str, Any]]],
    spark_settings: SparkSettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, LakeTable, SparkRun]:
    """A copy of the simulated data dir (its DuckDB warehouse built) whose models Spark built
    too, once for the module's tests: a Spark run is most of a minute here."""
    source, _ = simulated
    data_dir = tmp_path_factory.mktemp("spark") / "data"
    shutil.copytree(source, data_dir, ignore=shutil.ignore_patterns("lake-catalog.db"))
    table = lake_table(data_dir)
    return data_dir, table, run_transforms_on_spark(spark_settings, table)


def test_every_model_matches_duckdb_on_simulated_traffic(
    built_on_spark: tuple[Path, LakeTable, SparkRun],
) -> None:
    data_dir, table, run = built_on_spark
    assert [step.name for step in run.steps] == [
        step.name for step in run_transforms(data_dir).steps[1:]
    ]
    counts = assert_same(data_dir, table)
    # The traffic exercises every rule: no model is compared empty.
    assert all(counts[name] > 0 for name in MODELS if name != "unpaired_ab_choices"), counts
    assert CATALOG == "flywheel"


TEXTS = [
    "plain answer",
    "Here:\n```python\nprint('ok')\n```\n",
    'Broken:\n```py\ndef f(:\n```\nand\n```json\n{"a": 1}\n```',
    "```JSON\n{oops}\n```",
    "key <SECRET:api_key> inside\n```\nno tag\n```",
    "Ünïcödé ａｎｓｗｅｒ — ﬁne",
]


def tangled(seed: int, count: int, first: int) -> list[dict[str, Any]]:
    """``count`` events over small pools of conversations, responses, parents and times, so
    that ids collide across conversations, times tie, generations repeat a response id, signals
    come before their generations and events are sent again with other fields (the first
    landing wins): every rule, and every tie, on both engines."""
    draw = random.Random(seed)
    conversations = [f"c{i}" for i in range(4)]
    responses = [f"t{i}" for i in range(14)]
    times = [f"2026-01-0{day}T09:00:00Z" for day in (5, 5, 6, 7)]  # ties on purpose
    sent: list[dict[str, Any]] = []
    for n in range(count):
        kind = draw.choice(["generation"] * 4 + ["copy", "edit", "regenerate", "rating",
                                                  "ab_choice", "again"])  # fmt: skip
        common = {"conversation_id": draw.choice(conversations),
                  "occurred_at": draw.choice(times),
                  "event_id": str(uuid.UUID(int=seed * 100_000 + first + n))}  # fmt: skip
        if kind == "again" and sent:
            earlier = draw.choice(sent)
            sent.append({**earlier, "occurred_at": draw.choice(times)})
            continue
        if kind == "again" or kind == "generation":
            prompt = [{"role": "user", "content": "q"}]
            if draw.random() < 0.4:
                prompt += [{"role": "assistant", "content": "a",
                            "response_id": draw.choice(responses)}]  # fmt: skip
            event = generation(draw.choice(responses), draw.choice(["m1", "m2"]),
                               text=draw.choice(TEXTS), prompt=prompt, **common)  # fmt: skip
        elif kind == "copy":
            event = make_event("copy", response_id=draw.choice(responses), text="x",
                               code_block=draw.random() < 0.5, **common)  # fmt: skip
        elif kind == "edit":
            event = make_event("edit", response_id=draw.choice(responses),
                               edited_text=draw.choice(TEXTS) + draw.choice(["", " more", "!"]),
                               **common)  # fmt: skip
        elif kind == "regenerate":
            event = make_event("regenerate", response_id=draw.choice(responses),
                               new_response_id=draw.choice(responses), **common)  # fmt: skip
        elif kind == "rating":
            event = make_event("rating", response_id=draw.choice(responses),
                               value=draw.choice(["up", "down"]), **common)  # fmt: skip
        else:
            a, b = draw.sample(responses, 2)
            event = make_event(
                "ab_choice",
                response_a_id=a,
                response_b_id=b,
                choice=draw.choice(["a", "b", "a", "tie", "both_bad"]),
                **common,
            )
        sent.append(event)
    return sent


# About 4 minutes on a quiet machine; ten once on one loaded by other work.
@pytest.mark.timeout(1500)
def test_models_match_after_rounds_of_late_and_duplicated_events(
    tmp_path: Path, spark_settings: SparkSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    lake, table = Lake.in_data_dir(data_dir), lake_table(data_dir)
    scenario = late_and_duplicated_rounds()
    # Three runs: the late generations after their signals, then the rest.
    rounds = [scenario[0], scenario[1], scenario[2] + scenario[3]]
    # And a tangle of colliding ids and tied times, landed over the same rounds.
    for number, events in enumerate(rounds):
        events += tangled(number, 120, first=number * 1000)
    offset = 0
    modes = []
    for events in rounds:
        land(lake, events, first=offset)
        offset += len(events)
        run_transforms(data_dir)  # DuckDB: in full, then incrementally
        run = run_transforms_on_spark(spark_settings, table)  # the same on Spark
        modes.append({step.name: step.mode for step in run.steps})
        counts = assert_same(data_dir, table)
    assert set(modes[0].values()) == {"full"}
    assert modes[1]["preference_pairs"] == modes[1]["responses"] == "incremental"
    assert modes[1]["signal_calibration"] == "full"  # no keys: always in full
    assert counts["preference_pairs"] and counts["edit_changes"] and counts["unpaired_ab_choices"]
    # A full refresh on Spark gives what the incremental runs gave.
    run = run_transforms_on_spark(spark_settings, table, full_refresh=True)
    assert {step.mode for step in run.steps} == {"full"}
    assert_same(data_dir, table)
    # No new file: nothing is recomputed.
    run = run_transforms_on_spark(spark_settings, table)
    assert {step.name: step.mode for step in run.steps}["responses"] == "unchanged"
    assert_same(data_dir, table)
    assert_a_failed_run_changes_no_table(data_dir, table, spark_settings, monkeypatch, offset)


def assert_a_failed_run_changes_no_table(
    data_dir: Path,
    table: LakeTable,
    spark_settings: SparkSettings,
    monkeypatch: pytest.MonkeyPatch,
    offset: int,
) -> None:
    """A model that fails on Spark is one error naming it, and so is a write that fails after
    some tables were written; either way every
    table stays as it was (snapshot and properties), and the run is recorded as failed."""

    def states() -> dict[str, tuple[Any, dict[str, str]]]:
        catalog = table.catalog()
        found = {}
        for name in [*MODELS, *SOURCE_TABLES]:
            loaded = catalog.load_table((MODELS_NAMESPACE, name))
            found[name] = (loaded.current_snapshot(), dict(loaded.properties))
        return found

    before = states()
    land(Lake.in_data_dir(data_dir), [generation("r8", "m1", conversation_id="c8")], first=offset)
    every = discover()
    # The same columns, and a division by zero (NULL on DuckDB, an error on Spark).
    broken = replace(
        every["responses"], sql=f"SELECT * FROM ({every['responses'].sql}\n) WHERE 1 / 0 = 1"
    )
    with monkeypatch.context() as patched:
        patched.setattr("transforms.spark.discover", lambda **_: {**every, "responses": broken})
        with pytest.raises(SparkModelError, match=r"model responses failed on Spark "
                           r"\(\[DIVIDE_BY_ZERO\].*\); no table"):  # fmt: skip
            run_transforms_on_spark(spark_settings, table)
    assert states() == before
    # The second incremental table's write fails: the tables replaced in full and the first
    # table updated (a delete, an append, its properties) go back as they were.
    real, calls = update_table, []

    def fails_second(*args: Any, **kwargs: Any) -> None:
        calls.append(args[1].name)
        if len(calls) == 2:
            raise RuntimeError("the store went away")
        real(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr("transforms.spark.update_table", fails_second)
        failed = r"writing the model tables failed \(the store went away\); the tables written"
        with pytest.raises(SparkModelError, match=failed):
            run_transforms_on_spark(spark_settings, table)
    assert states() == before
    runs = table.catalog().load_table((MODELS_NAMESPACE, RUNS_TABLE)).scan().to_arrow()
    statuses = runs.sort_by("finished_at")["status"].to_pylist()
    assert statuses[-3:] == ["succeeded", "failed", "failed"]


def test_a_dataset_published_from_spark_is_byte_identical_to_duckdbs(
    built_on_spark: tuple[Path, LakeTable, SparkRun],
) -> None:
    data_dir, table, _ = built_on_spark
    from_duckdb = export_dataset(
        data_dir, "default", KEYRING, catalog=Catalog.in_data_dir(data_dir / "duckdb")
    )
    from_spark = export_dataset(
        data_dir, "default", KEYRING, catalog=Catalog.in_data_dir(data_dir / "spark"),
        models=table,
    )  # fmt: skip
    assert from_duckdb.path is not None and from_spark.path is not None
    files = sorted(p.relative_to(from_duckdb.path) for p in from_duckdb.path.rglob("*.parquet"))
    assert files and files == sorted(
        p.relative_to(from_spark.path) for p in from_spark.path.rglob("*.parquet")
    )
    for name in files:
        assert (from_spark.path / name).read_bytes() == (from_duckdb.path / name).read_bytes()
    duck, spark = from_duckdb.manifest, from_spark.manifest
    assert spark.fingerprint == duck.fingerprint
    assert spark.counts == duck.counts
    # The same lake files, named the same way; the run is Spark's.
    assert spark.source.lake == duck.source.lake
    assert spark.source.transform_run != duck.source.transform_run


def test_rounding_is_the_same_on_both_engines(
    tmp_path: Path, spark_settings: SparkSettings
) -> None:
    """The models round ratios of counts (agreement, confidence, weights): on every ratio a/n
    with n up to 2,000 (among them the halves such as 3/640 = 0.0046875 on which DuckDB's and
    Spark's own round disagree), round_half_up gives the same DOUBLE on both engines."""
    import duckdb
    import pyarrow as pa

    pairs = [(a, n) for n in range(1, 2001) for a in range(0, min(n, 50) + 1)]
    ratios = pa.table({"a": [a for a, _ in pairs], "n": [n for _, n in pairs]})
    sql = (
        "SELECT a, n, round_half_up(a / n, 6) AS r6, round_half_up(a / n, 9) AS r9, "
        "round_half_up(0.6 * least(1.0, 0.5 + 0.5 * (a / n) / 0.85), 6) AS weight FROM ratios"
    )
    db = duckdb.connect()
    define_functions(db)
    db.register("ratios", ratios)
    on_duckdb = sorted(db.sql(sql).fetchall())
    spark = open_session(
        spark_settings, catalog_uri=f"sqlite:///{tmp_path / 'catalog.db'}", lake_url=str(tmp_path)
    )
    spark.createDataFrame(pairs, "a BIGINT, n BIGINT").createOrReplaceTempView("ratios")
    on_spark = sorted(tuple(row) for row in spark.sql(to_spark(sql)).collect())
    assert len(on_spark) == ratios.num_rows
    assert on_spark == on_duckdb


def test_both_engines_agree_on_metadata_content_parts_and_tool_calls(
    tmp_path: Path, spark_settings: SparkSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lake landed before ``metadata`` and ``prompt_structure`` existed (a file and the table
    without them), then traffic with metadata, content parts and tool calls: the same models on
    both engines, the same ``events`` with the same metadata, and the same bytes of a dataset
    selected by metadata in the conversational format (tool calls as message fields)."""
    data_dir = tmp_path / "data"
    lake, table = Lake.in_data_dir(data_dir), lake_table(data_dir)
    create_table_before(table)
    land(lake, tangled(7, 60, first=0), before=True)
    with monkeypatch.context() as patched:
        patched.setattr(LakeTable, "_with_lake_columns", lambda self, found: found)
        table.commit()
    dressed = with_extensions(list(simulate(SimulationConfig(events=2_000, seed=9, ab_rate=0.3))))
    land_scrubbed(data_dir, dressed)  # the simulator plants PII, the quality gate looks for it
    write_keyring(KEYRING, tmp_path / "keys.json")

    run_transforms(data_dir)  # commits (the table gains the columns), loads both kinds of file
    run_transforms_on_spark(spark_settings, table)

    assert_same(data_dir, table)
    engine = open_warehouse(data_dir)
    with engine.connect() as connection:
        duck = raw(connection).sql("SELECT event_id, metadata FROM events").to_arrow_table()
    engine.dispose()
    spark = table.catalog().load_table((MODELS_NAMESPACE, "events")).scan().to_arrow()
    assert _rows(spark.select(["event_id", "metadata"])) == _rows(duck)
    assert sum(value is not None for value in duck["metadata"].to_pylist()) > 1000
    datasets = DatasetsFile(datasets={"exp7": DatasetPolicy(
        metadata_filter={"experiment": "exp-7"}, message_format="conversational", min_rows=1,
    )})  # fmt: skip
    published, versions = {}, {}
    for engine_name, models in (("duckdb", None), ("spark", table)):
        result = export_dataset(data_dir, "exp7", KEYRING, datasets=datasets, models=models,
                                catalog=Catalog.in_data_dir(data_dir / engine_name))  # fmt: skip
        assert result.path is not None
        versions[engine_name] = result.path
        published[engine_name] = {
            p.relative_to(result.path): p.read_bytes() for p in result.path.rglob("*.parquet")
        }
    assert published["duckdb"] and published["duckdb"] == published["spark"]
    prompts = [
        message
        for path in (versions["spark"] / "data" / "dpo").glob("*.parquet")
        for row in pq.read_table(path).column("prompt").to_pylist()
        for message in row
    ]
    assert any(m["tool_calls"] for m in prompts) and any(m["tool_call_id"] for m in prompts)
