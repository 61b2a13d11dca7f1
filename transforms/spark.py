"""The models on Apache Spark: the same SQL, read from the lake's Iceberg table, written as
Iceberg tables (``flywheel transform run --engine spark``).

DuckDB on one host stays the default. On Spark a run reads the lake's table
(``flywheel.flywheel.events``, the catalog the ingest workers commit to) and builds every model
into ``flywheel.models.<name>``, an Iceberg table in the same catalog, stored under
``<lake>/models/<name>``. What each part does, and its DuckDB twin:

- ``events``: the warehouse's ``events`` table as the loader (warehouse/load.py) makes it,
  computed from the lake's table: events whose time no reader can take left out, each event id
  once (its first landing: landing day, topic, partition, offset), those without training
  consent left out, and ``lake_file`` and ``prompt_response_ids`` as the loader writes them.
- ``lake_texts``: the texts of generations and edits (warehouse/texts.py reads them from the
  lake files; here they are columns of the same table).
- The SQL models: their DuckDB SQL transpiled (transforms/dialect.py), the policy bound as
  named parameters.
- The two Python steps (transforms/checks.py, transforms/edits.py): the same Python functions,
  run on the executors over Arrow batches (``mapInArrow``), and the same SQL around them.

Each model's columns are cast to the types DuckDB gives them (``duckdb_types``: the models built
on empty tables in an in-memory DuckDB), so that a table means the same whichever engine built
it, and an export from either publishes the same bytes.

A run computes every model before it writes any (each result is persisted on the executors),
then replaces the tables one after the other; a write that fails rolls the tables written
before it back to the snapshots they had, so a failed run leaves the previous tables as they
were.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from flywheel.errors import ConfigError, FlywheelError, TransientError
from flywheel.extras import require
from transforms import checks, edits, spark_scope
from transforms.dialect import to_spark
from transforms.models import (
    Built,
    Model,
    define_functions,
    discover,
    ordered,
    policy_variables,
    quote,
)
from transforms.policy import Policy
from warehouse.table import MODELS_NAMESPACE

if TYPE_CHECKING:
    from flywheel.settings import SparkSettings
    from warehouse.table import LakeTable

log = logging.getLogger(__name__)

ICEBERG_VERSION = "1.12.0"
PACKAGES = (
    f"org.apache.iceberg:iceberg-spark-runtime-4.1_2.13:{ICEBERG_VERSION}",
    f"org.apache.iceberg:iceberg-aws-bundle:{ICEBERG_VERSION}",
    "org.xerial:sqlite-jdbc:3.54.1.0",
    "org.postgresql:postgresql:42.7.14",
)
"""The jars a session needs besides Spark's own, pinned (Maven coordinates): Iceberg's Spark
runtime for Spark 4.1 (Scala 2.13), its AWS bundle (S3FileIO), and the JDBC drivers of the
catalogs the platform takes (SQLite for one host, PostgreSQL for several)."""
CATALOG = "flywheel"
"""The Spark catalog's name: the name pyiceberg's SQL catalog records (warehouse/table.py)."""
EVENTS_TABLE = f"{CATALOG}.flywheel.events"
TABLE_PROPERTIES = {
    "format-version": "2",
    # Counts only, as for the lake's table: column bounds would copy pseudonyms and ids into the
    # manifests.
    "write.metadata.metrics.default": "counts",
}
SOURCE_TABLES = ("events", "lake_files")
"""Written beside the models: what they were built from, which an export reads too."""
RUNS_TABLE = "transform_runs"
RUNS_SCHEMA = (
    "run_id STRING, started_at TIMESTAMP, finished_at TIMESTAMP, full_refresh BOOLEAN, "
    "files_loaded INT, events_loaded BIGINT, policy_hash STRING, status STRING, "
    "principles_hash STRING"
)
"""The warehouse's ``transform_runs`` columns: one row per Spark run that wrote its tables."""
RUN_PROPERTY = "flywheel.run-id"
FINGERPRINT_PROPERTY = "flywheel.fingerprint"

READABLE_TIME = (
    "coalesce(occurred_at BETWEEN TIMESTAMP '0001-01-01 00:00:00' "
    "AND TIMESTAMP '9999-12-31 23:59:59.999999', false)"
)
"""warehouse.load.READABLE_TIME in Spark SQL (the session's time zone is UTC)."""

EVENTS_SQL = """
WITH readable AS (
    SELECT
        *,
        element_at(split(_file, '/'), -2) AS landed_folder,
        element_at(split(_file, '/'), -1) AS landed_name
    FROM {table}
    WHERE {readable}
),
landings AS (
    SELECT
        *,
        row_number() OVER (
            PARTITION BY event_id
            ORDER BY landed_folder,
                     split(landed_name, '[+]')[0],
                     CAST(split(landed_name, '[+]')[1] AS INT),
                     CAST(split(landed_name, '[+]')[2] AS BIGINT),
                     source_offset
        ) AS landing
    FROM readable
)
SELECT
    {columns},
    concat(landed_folder, '/', landed_name) AS lake_file,
    filter(transform(prompt, m -> m.response_id), id -> id IS NOT NULL) AS prompt_response_ids
FROM landings
WHERE landing = 1 AND consent_training IS TRUE
"""
"""The warehouse's ``events`` from the lake's table: the loader's rules (warehouse/load.py), in
one statement. ``_file`` is Iceberg's metadata column: the data file a row is in."""


@dataclass
class SparkRun:
    """What a Spark run built, and where its time went."""

    run_id: str
    steps: list[Built] = field(default_factory=list)
    events: int = 0
    overhead: dict[str, float] = field(default_factory=dict)


def jdbc_catalog(catalog_uri: str) -> dict[str, str]:
    """The Iceberg JDBC catalog properties for a lake catalog given as a SQLAlchemy URL
    (``sqlite:///path`` or ``postgresql+driver://user:password@host:port/db``)."""
    parts = urlsplit(catalog_uri)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        # SQLAlchemy's form: sqlite:////abs/path.db, or sqlite:///relative.db (from the
        # working directory, resolved here: Spark runs elsewhere).
        path = unquote(parts.path)[1:]
        if parts.netloc or not path or path == ":memory:":
            raise ConfigError(
                f"Spark reaches a SQLite catalog as a file (sqlite:////abs/path.db), "
                f"not {catalog_uri!r}"
            )
        return {"uri": f"jdbc:sqlite:{Path(path).resolve()}"}
    if scheme in ("postgresql", "postgres"):
        host = parts.hostname or "localhost"
        host = f"[{host}]" if ":" in host else host  # IPv6
        port = f":{parts.port}" if parts.port else ""
        # The query (sslmode=require, ...) is the JDBC driver's too.
        query = f"?{parts.query}" if parts.query else ""
        properties = {"uri": f"jdbc:postgresql://{host}{port}{parts.path}{query}"}
        if parts.username:
            properties["jdbc.user"] = unquote(parts.username)
        if parts.password:
            properties["jdbc.password"] = unquote(parts.password)
        return properties
    raise ConfigError(
        f"Spark takes the lake catalog in SQLite or PostgreSQL, not {scheme or catalog_uri!r}"
    )


def session_properties(settings: SparkSettings) -> dict[str, str]:
    """The properties of the Spark application (fixed when its context starts): the jars, the
    Iceberg extensions, the time zone; the settings' own override them."""
    cache = settings.jars_cache or default_jars_cache()
    resolved = [cache / "jars" / _jar_name(package) for package in PACKAGES]
    if all(jar.is_file() for jar in resolved):
        # Resolved before: the jars as files, with no Ivy resolution (quiet, and offline).
        jars = {"spark.jars": ",".join(str(jar) for jar in resolved)}
    else:
        jars = {"spark.jars.packages": ",".join(PACKAGES), "spark.jars.ivy": str(cache)}
    properties = {
        **jars,
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # The models are small joins and aggregates; Spark's default of 200 shuffle partitions
        # makes 200 tasks of nothing on one host. Adaptive execution merges them on a cluster.
        "spark.sql.shuffle.partitions": "8",
    }
    properties.update(settings.properties)
    return properties


def catalog_properties(*, catalog_uri: str, lake_url: str) -> dict[str, str]:
    """The Spark SQL properties of the lake's catalog (``flywheel``): the same catalog database
    pyiceberg commits to, the lake as its warehouse, S3 through the standard AWS environment."""
    prefix = f"spark.sql.catalog.{CATALOG}"
    properties = {
        prefix: "org.apache.iceberg.spark.SparkCatalog",
        f"{prefix}.type": "jdbc",
        f"{prefix}.warehouse": lake_url,
    }
    properties.update({f"{prefix}.{k}": v for k, v in jdbc_catalog(catalog_uri).items()})
    if lake_url.startswith("s3://"):
        properties[f"{prefix}.io-impl"] = "org.apache.iceberg.aws.s3.S3FileIO"
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            properties[f"{prefix}.s3.endpoint"] = endpoint
            properties[f"{prefix}.s3.path-style-access"] = "true"
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            properties[f"{prefix}.client.region"] = region
    return properties


def _jar_name(package: str) -> str:
    """The file Ivy keeps a package's jar in, under ``<cache>/jars``."""
    group, artifact, version = package.split(":")
    return f"{group}_{artifact}-{version}.jar"


def default_jars_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flywheel" / "spark"


def open_session(settings: SparkSettings, *, catalog_uri: str, lake_url: str) -> Any:
    """A Spark SQL session of its own for one run, with the lake's catalog (``flywheel``).

    The application (its context: the JVM, the executors, the jars) is the one already running
    in this process if there is one (``spark-submit``'s, whose own properties then stand, or a
    test run's), else one started with ``session_properties``. Each run gets a new SQL session
    on it: its catalog, temporary views and SQL properties are its own, so two runs on two lakes
    in one process do not see each other's catalog."""
    require("pyspark", extra="spark")
    from pyspark.sql import SparkSession

    if settings.master.startswith("local"):
        # The Python steps run in Python workers, started by pyspark with PYSPARK_PYTHON: on
        # this host, this interpreter (whose environment has the platform installed), not
        # whichever python3 is first on PATH.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.master).appName("flywheel-transforms")
    for key, value in session_properties(settings).items():
        builder = builder.config(key, value)
    try:
        application = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - Py4J and the JVM raise their own kinds
        raise _session_error(exc, settings) from None
    application.sparkContext.setLogLevel("ERROR")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per connection it closes
    spark = application.newSession()
    # Times are UTC whoever started the application (spark-submit's may have another zone).
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    # Spark 4.1's constraint propagation failed on the union an incremental build makes (the
    # rows kept and the rows recomputed): "key not found" for a column of the union.
    spark.conf.set("spark.sql.constraintPropagation.enabled", "false")
    # ...and, with adaptive execution off, its planner took the two sides' hash partitionings
    # for the union's and zipped them ("Can't zip RDDs with unequal numbers of partitions").
    spark.conf.set("spark.sql.unionOutputPartitioning", "false")
    for key, value in catalog_properties(catalog_uri=catalog_uri, lake_url=lake_url).items():
        spark.conf.set(key, value)
    try:
        spark.sql(f"SHOW NAMESPACES IN {CATALOG}").collect()
    except Exception as exc:  # noqa: BLE001 - Py4J and the JVM raise their own kinds
        raise _catalog_error(exc) from None
    return spark


def _catalog_error(exc: BaseException) -> FlywheelError:
    """The session's first look at the lake's catalog failed: why, in one line."""
    text = str(exc)
    if "SparkCatalog" in text and ("ClassNotFound" in text or "Cannot find catalog" in text):
        return ConfigError(
            "Iceberg's Spark runtime is not on Spark's classpath: give spark-submit "
            f"--packages {PACKAGES[0]} (python -m transforms.spark_job --packages lists them all)"
        )
    if "No suitable driver" in text:
        return ConfigError(
            "Spark has no JDBC driver for the lake's catalog: add the SQLite or PostgreSQL "
            "driver to its jars (python -m transforms.spark_job --packages lists them)"
        )
    return TransientError(f"Spark could not open the lake's catalog: {_first_line(exc)}")


def _session_error(exc: BaseException, settings: SparkSettings) -> FlywheelError:
    text = str(exc)
    if "unresolved dependency" in text or "dependencies not found" in text.lower():
        return ConfigError(
            f"Spark could not fetch its jars ({', '.join(PACKAGES)}) from Maven Central; "
            "give them with spark.jars instead (docs/spark.md)"
        )
    if "Java gateway process exited" in text or "JAVA_HOME" in text:
        return ConfigError("Spark could not start a JVM: Java 17 or later must be on PATH")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return TransientError(f"Spark master {settings.master} is unreachable: {first[:300]}")


def duckdb_types(policy: Policy, models: list[Model]) -> dict[str, list[tuple[str, str]]]:
    """Each model's columns and their DuckDB types (and those of ``SOURCE_TABLES``): the models
    built on empty tables in an in-memory DuckDB (the types follow from the SQL and the inputs'
    types, not the rows)."""
    import duckdb
    import sqlalchemy as sa
    from sqlalchemy.schema import CreateTable

    from warehouse.schema import events

    db = duckdb.connect(":memory:")
    try:
        db.execute(str(CreateTable(events).compile(sa.create_engine("duckdb:///:memory:"))))
        db.execute("CREATE TABLE lake_texts (event_id VARCHAR, prompt JSON, text VARCHAR)")
        define_functions(db)
        for name, value in policy_variables(policy).items():
            db.execute(f"SET VARIABLE {quote(name)} = $value", {"value": value})
        db.execute(
            "CREATE TABLE lake_files (path VARCHAR, topic VARCHAR, partition INTEGER, "
            "first_offset BIGINT, last_offset BIGINT, rows BIGINT)"
        )
        found: dict[str, list[tuple[str, str]]] = {}
        for name in SOURCE_TABLES:
            found[name] = [
                (str(column), str(kind))
                for column, kind, *_ in db.execute(f"DESCRIBE {quote(name)}").fetchall()
            ]
        for model in models:
            try:
                if model.build is None:
                    select, parameters = model.sql, None
                else:
                    select, parameters = model.build(db, {n: n for n in model.depends_on})
                db.execute(
                    f"CREATE TABLE {quote(model.name)} AS SELECT * FROM ({select}) LIMIT 0",
                    parameters,
                )
            except duckdb.Error as exc:
                raise SparkModelError(
                    f"model {model.name} does not read as SQL ({_first_line(exc)}); no table "
                    "was changed"
                ) from None
            found[model.name] = [
                (str(name), str(kind))
                for name, kind, *_ in db.execute(f"DESCRIBE {quote(model.name)}").fetchall()
            ]
        return found
    finally:
        db.close()


_SPARK_TYPES = {
    "VARCHAR": "STRING",
    "BIGINT": "BIGINT",
    "INTEGER": "INT",
    "DOUBLE": "DOUBLE",
    "FLOAT": "FLOAT",
    "BOOLEAN": "BOOLEAN",
    "TINYINT": "TINYINT",
    "SMALLINT": "SMALLINT",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "TIMESTAMP": "TIMESTAMP_NTZ",
    "DATE": "DATE",
    "HUGEINT": "DECIMAL(38, 0)",
}


def spark_type(duckdb_type: str) -> str:
    """The Spark SQL type of a DuckDB column type."""
    if duckdb_type.endswith("[]"):
        return f"ARRAY<{spark_type(duckdb_type[:-2])}>"
    if duckdb_type.startswith("DECIMAL"):
        return duckdb_type
    try:
        return _SPARK_TYPES[duckdb_type]
    except KeyError:
        raise ConfigError(f"no Spark type for DuckDB's {duckdb_type}") from None


def _cast(frame: Any, columns: list[tuple[str, str]], model: str) -> Any:
    """``frame`` with DuckDB's columns, in DuckDB's order, cast to their types."""
    have = set(frame.columns)
    missing = [name for name, _ in columns if name not in have]
    if missing or len(have) != len(columns):
        raise ConfigError(
            f"model {model} gives other columns on Spark ({', '.join(sorted(have))}) than on "
            f"DuckDB ({', '.join(name for name, _ in columns)})"
        )
    return frame.selectExpr(
        *(f"CAST(`{name}` AS {spark_type(kind)}) AS `{name}`" for name, kind in columns)
    )


LAKE_FILE = "concat(element_at(split(_file, '/'), -2), '/', element_at(split(_file, '/'), -1))"
"""A row's lake file as ``events.lake_file`` names it (``landed_date=.../<name>``), from
Iceberg's ``_file`` metadata column."""

LAKE_FILES_SQL = """
SELECT
    {lake_file} AS path,
    split(element_at(split(_file, '/'), -1), '[+]')[0] AS topic,
    CAST(split(element_at(split(_file, '/'), -1), '[+]')[1] AS INT) AS partition,
    CAST(split(element_at(split(_file, '/'), -1), '[+]')[2] AS BIGINT) AS first_offset,
    CAST(split(split(element_at(split(_file, '/'), -1), '[+]')[3], '[.]')[0] AS BIGINT)
        AS last_offset,
    count(*) AS rows
FROM {table}
GROUP BY _file
"""
"""The lake files of the snapshot read, as the warehouse's ``lake_files`` lists them (path,
topic, partition, offsets and every row of the file, as its footer counts them)."""


def register_sources(spark: Any, table: str = EVENTS_TABLE, *, snapshot: int | None = None) -> int:
    """The ``events``, ``lake_texts`` and ``lake_files`` views of this run, from the lake's
    table (at ``snapshot``, else its current one); returns how many events."""
    from warehouse.load import COLUMNS

    if snapshot is not None:
        table = f"{table} VERSION AS OF {int(snapshot)}"
    events = spark.sql(
        EVENTS_SQL.format(table=table, readable=READABLE_TIME, columns=COLUMNS)
    ).localCheckpoint(eager=True)
    events.createOrReplaceTempView("events")
    # The texts of the rows events kept (an event landed twice has its first landing's).
    spark.sql(
        f"SELECT event_id, CAST(NULL AS STRING) AS prompt, coalesce(response, edited_text) AS text "
        f"FROM (SELECT *, {LAKE_FILE} AS lake_file FROM {table}) AS landed "
        f"LEFT SEMI JOIN events AS kept ON kept.event_id = landed.event_id "
        f"AND kept.lake_file = landed.lake_file AND kept.source_offset = landed.source_offset "
        f"AND kept.type IN ('generation', 'edit')"
    ).localCheckpoint(eager=True).createOrReplaceTempView("lake_texts")
    spark.sql(LAKE_FILES_SQL.format(table=table, lake_file=LAKE_FILE)).localCheckpoint(
        eager=True
    ).createOrReplaceTempView("lake_files")
    return int(events.count())


def build_sql_model(spark: Any, model: Model, variables: dict[str, float]) -> Any:
    """A SQL model's rows on Spark, as a DataFrame."""
    return spark.sql(to_spark(model.sql, variables, model=model.name))


_EDIT_VALUES_SQL = "edit_event_id STRING, real_edit BOOLEAN, change DOUBLE"


def _edit_values(batches: Iterator[Any]) -> Iterator[Any]:
    """On an executor: each edit's ``real_edit`` and ``change`` (transforms/edits.py)."""
    import pyarrow as pa

    schema = pa.schema(
        [("edit_event_id", pa.string()), ("real_edit", pa.bool_()), ("change", pa.float64())]
    )
    for batch in batches:
        columns = batch.to_pydict()
        real, changes = [], []
        for original, edited in zip(columns["original"], columns["edited"], strict=True):
            before, after = edits.words(original), edits.words(edited)
            real.append(edits.is_real(before, after))
            changes.append(edits.change(before, after))
        yield pa.RecordBatch.from_pydict(
            {"edit_event_id": columns["event_id"], "real_edit": real, "change": changes},
            schema=schema,
        )


def build_edit_changes(spark: Any, variables: dict[str, float]) -> Any:
    """``edit_changes`` on Spark: the texts compared by the same Python as on DuckDB."""
    candidates = spark.sql(
        to_spark(edits.CANDIDATES.format(events="events", responses="responses"))
    ).toDF("event_id", "original", "edited")
    computed = candidates.mapInArrow(_edit_values, _EDIT_VALUES_SQL)
    computed.createOrReplaceTempView("edit_values")
    sql = edits.ROWS.format(events="events", computed="edit_values")
    return spark.sql(to_spark(sql, variables, model="edit_changes"))


def _text_checks(batches: Iterator[Any]) -> Iterator[Any]:
    """On an executor: each text's block counts, constitutional score and secret flag, one row
    per response that has the text (transforms/checks.py). The distinct checkable blocks of a
    batch are checked together: one ruff process per batch."""
    import pyarrow as pa

    rules = checks.principles()
    schema = pa.schema(
        [("response_id", pa.string())]
        + [(name, pa.int32()) for name in checks.COUNTS]
        + [
            ("principles_broken", pa.list_(pa.string())),
            ("constitutional_score", pa.float64()),
            ("leaked_secret", pa.bool_()),
        ]
    )
    for batch in batches:
        columns = batch.to_pydict()
        blocks = [checks.text_blocks(text) for text in columns["text"]]
        checkable = sorted({b for found in blocks for b in found if b[0] in checks.KINDS})
        checked = dict(zip(checkable, checks.check_blocks(checkable, rules), strict=True))
        rows: dict[str, list[Any]] = {name: [] for name in schema.names}
        for text, found, response_ids in zip(
            columns["text"], blocks, columns["response_ids"], strict=True
        ):
            result = checks.text_checks(found, checked, rules)
            leaked = checks.SECRET in text
            for response_id in response_ids:
                rows["response_id"].append(response_id)
                for name in checks.COUNTS:
                    rows[name].append(result.counts[name])
                rows["principles_broken"].append(result.principles_broken)
                rows["constitutional_score"].append(result.constitutional_score)
                rows["leaked_secret"].append(leaked)
        yield pa.RecordBatch.from_pydict(rows, schema=schema)


def build_code_checks(spark: Any) -> Any:
    """``code_checks`` on Spark: each distinct text with a fence or a secret placeholder checked
    by the same Python as on DuckDB."""
    texts = spark.sql(to_spark(checks.TEXTS.format(responses="responses")))
    return texts.mapInArrow(
        _text_checks,
        "response_id STRING, "
        + ", ".join(f"{name} INT" for name in checks.COUNTS)
        + ", principles_broken ARRAY<STRING>, constitutional_score DOUBLE, leaked_secret BOOLEAN",
    )


def build_model(spark: Any, model: Model, variables: dict[str, float]) -> Any:
    if model.name == "edit_changes":
        return build_edit_changes(spark, variables)
    if model.name == "code_checks":
        return build_code_checks(spark)
    if model.build is not None:
        raise ConfigError(f"model {model.name} is a Python step with no Spark build")
    return build_sql_model(spark, model, variables)


def table_name(model: str) -> str:
    return f"{CATALOG}.{MODELS_NAMESPACE}.{model}"


@dataclass(frozen=True)
class TableState:
    """A model table as a run found it before writing: its current snapshot and properties."""

    snapshot: int | None
    properties: dict[str, str]


def _table_state(spark: Any, name: str) -> TableState | None:
    """The table's current snapshot (the ``main`` branch's) and its platform properties; None
    when the table does not exist."""
    table = table_name(name)
    if not spark.catalog.tableExists(table):
        return None
    rows = spark.sql(f"SELECT snapshot_id FROM {table}.refs WHERE name = 'main'").collect()
    properties = {
        str(row[0]): str(row[1])
        for row in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()
        if str(row[0]).startswith("flywheel.")
    }
    return TableState(int(rows[0][0]) if rows else None, properties)


def _restore(spark: Any, written: dict[str, TableState | None]) -> None:
    """Put the tables a failed run wrote back as they were before it: the snapshot they had
    made current again (a replaced table's new snapshot has no parent, so a rollback to an
    ancestor cannot reach the old one), their properties as they were; dropped when the run
    created them."""
    for name, before in written.items():
        table = table_name(name)
        try:
            if before is None or before.snapshot is None:
                spark.sql(f"DROP TABLE IF EXISTS {table}")
                continue
            spark.sql(
                f"CALL {CATALOG}.system.set_current_snapshot("
                f"table => '{MODELS_NAMESPACE}.{name}', snapshot_id => {before.snapshot})"
            )
            if before.properties:
                listed = ", ".join(f"'{k}' = '{v}'" for k, v in before.properties.items())
                spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({listed})")
        except Exception:  # noqa: BLE001 - the run's own error is the one to report
            log.error("could not restore a model table", extra={"fields": {"model": name}})


def run_models_on_spark(
    spark: Any,
    policy: Policy,
    *,
    run_id: str,
    select: list[str] | None = None,
    full_refresh: bool = False,
    events_table: str = EVENTS_TABLE,
    snapshot: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    models_dir: Path | None = None,
) -> SparkRun:
    """Build the models (those in ``select`` and what they need) on Spark from the lake's table
    at ``snapshot`` (else its current one): in full, or incrementally for what the files
    appended since a model's last build touch (transforms/spark_scope.py). The tables are
    written once every model is computed, with the ``events`` and ``lake_files`` they were built
    from (``SOURCE_TABLES``, what an export reads besides the models); a failure leaves every
    table as it was. The run is appended to ``transform_runs`` once every table is written.
    ``models_dir``: the team's own models, built beside the shipped ones."""
    from transforms.models import fingerprints

    run = SparkRun(run_id)
    begun = datetime.now(UTC)
    every = discover(custom=models_dir)
    models = ordered(every, select)
    prints = fingerprints(every, policy)
    started = time.perf_counter()
    types = duckdb_types(policy, models)
    variables = policy_variables(policy)
    full, since = spark_scope.plan(
        models, prints, _states(spark, models), full_refresh=full_refresh
    )
    if since is not None and (
        snapshot is None
        or not spark_scope.appended_only(_history(spark, events_table), since, snapshot)
    ):
        # Files were replaced or removed since (compaction, erasure, retention): their events
        # have no new file to be found by.
        full, since = {m.name for m in models}, None
    changed = since is not None and since != snapshot
    run.overhead["plan"] = time.perf_counter() - started
    started = time.perf_counter()
    run.events = register_sources(spark, events_table, snapshot=snapshot)
    if since is not None and snapshot is not None and changed:
        _new_files(spark, events_table, since, snapshot).createOrReplaceTempView("new_lake_files")
    # Each relation's full rows stay under full_<name> while a model reads the scope's rows
    # under <name> (spark_scope.shadow).
    full_views = {name: f"full_{name}" for name in ("events", *(m.name for m in models))}
    spark.table("events").createOrReplaceTempView(full_views["events"])
    for model in models:
        if model.name not in full:
            # The table as the last run left it, for the scope and the rows not recomputed.
            existing = spark.table(table_name(model.name)).localCheckpoint(eager=True)
            existing.createOrReplaceTempView(model.name)
            existing.createOrReplaceTempView(full_views[model.name])
    if changed:
        spark_scope.prepare(spark)
    run.overhead["scope"] = time.perf_counter() - started
    frames: dict[str, Any] = {}
    recomputed: dict[str, Any] = {}
    for model in models:
        started = time.perf_counter()
        try:
            if model.name in full:
                frame = _cast(build_model(spark, model, variables), types[model.name], model.name)
                mode = "full"
            elif changed:
                spark_scope.shadow(spark, model, full_views)
                rows = _cast(build_model(spark, model, variables), types[model.name], model.name)
                rows.createOrReplaceTempView("recomputed")
                condition = spark_scope.touched(model)
                recomputed[model.name] = spark.sql(
                    f"SELECT * FROM recomputed WHERE {condition}"
                ).localCheckpoint(eager=True)
                spark_scope.unshadow(spark, model, full_views)
                frame = spark.sql(
                    f"SELECT * FROM {full_views[model.name]} WHERE NOT {condition}"
                ).unionByName(recomputed[model.name])
                mode = "incremental"
            else:
                frame = spark.table(model.name)
                mode = "unchanged"
            # Computed once, here, and kept on the executors for the models that read it and
            # for the write; checkpointed rather than cached: caching the plan of
            # calibration_votes failed in Spark 4.1 with an internal error.
            frame = frame.localCheckpoint(eager=True)
        except FlywheelError:
            _record_failure(spark, run, begun, policy=policy)
            raise
        except Exception as exc:  # noqa: BLE001 - Spark's errors, as one line
            _record_failure(spark, run, begun, policy=policy)
            raise SparkModelError(
                f"model {model.name} failed on Spark ({_first_line(exc)}); no table was changed"
            ) from exc
        count = frame.count()
        frame.createOrReplaceTempView(model.name)
        frame.createOrReplaceTempView(full_views[model.name])
        if model.name == "responses" and mode == "incremental":
            spark_scope.responses_rebuilt(spark)
        frames[model.name] = frame
        run.steps.append(Built(model.name, int(count), time.perf_counter() - started, mode))
        if on_progress is not None:
            on_progress(len(run.steps), len(models))
    started = time.perf_counter()
    try:
        _write(spark, run, models, frames, recomputed, full, types, prints=prints,
               snapshot=snapshot)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - Spark's and the catalog's errors, as one line
        _record_failure(spark, run, begun, policy=policy)
        raise SparkModelError(
            f"writing the model tables failed ({_first_line(exc)}); the tables written were "
            "put back as they were"
        ) from exc
    run.overhead["write"] = time.perf_counter() - started
    files = spark.table("lake_files").count()
    _record_run(spark, run, begun, policy=policy, files=int(files), full_refresh=full_refresh)
    return run


def _states(spark: Any, models: list[Model]) -> dict[str, tuple[str, int] | None]:
    """Per model, the fingerprint and lake snapshot its table records; None without a table
    (or one a run of an earlier release wrote, without them)."""
    found: dict[str, tuple[str, int] | None] = {}
    for model in models:
        state = _table_state(spark, model.name)
        snapshot = state.properties.get(spark_scope.SNAPSHOT_PROPERTY, "") if state else ""
        found[model.name] = (
            (state.properties.get(FINGERPRINT_PROPERTY, ""), int(snapshot))
            if state is not None and snapshot.isdigit()
            else None
        )
    return found


def _history(spark: Any, events_table: str) -> list[tuple[int, int | None, str]]:
    """The lake table's snapshots: id, parent id, operation."""
    rows = spark.sql(f"SELECT snapshot_id, parent_id, operation FROM {events_table}.snapshots")
    return [(int(r[0]), None if r[1] is None else int(r[1]), str(r[2])) for r in rows.collect()]


def _new_files(spark: Any, events_table: str, since: int, current: int) -> Any:
    """The lake files (as ``events.lake_file`` names them) appended after snapshot ``since``."""
    rows = (
        spark.read.format("iceberg")
        .option("start-snapshot-id", str(since))
        .option("end-snapshot-id", str(current))
        .load(events_table)
    )
    return rows.selectExpr(f"{LAKE_FILE} AS lake_file").distinct()


def _write(
    spark: Any,
    run: SparkRun,
    models: list[Model],
    frames: dict[str, Any],
    recomputed: dict[str, Any],
    full: set[str],
    types: dict[str, list[tuple[str, str]]],
    *,
    prints: dict[str, str],
    snapshot: int | None,
) -> None:
    """Write what the run computed: a model built in full replaces its table, one built
    incrementally loses the rows of the touched keys and gets them recomputed (a delete and an
    append), the source tables are replaced. A failure puts back every table written."""
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {CATALOG}.{MODELS_NAMESPACE}")
    properties = {RUN_PROPERTY: run.run_id, spark_scope.SNAPSHOT_PROPERTY: str(snapshot or "")}
    replaced = {m.name: frames[m.name] for m in models if m.name in full}
    for name in SOURCE_TABLES:
        replaced[name] = _cast(spark.table(name), types[name], name)
    written: dict[str, TableState | None] = {}
    try:
        for name, frame in replaced.items():
            written[name] = _table_state(spark, name)
            replace_table(frame, name, {**properties, FINGERPRINT_PROPERTY: prints.get(name, "")})
        for model in models:
            if model.name in recomputed:
                written[model.name] = _table_state(spark, model.name)
                update_table(spark, model, recomputed[model.name], properties)
    except BaseException:
        _restore(spark, written)
        raise
    _expire_snapshots(spark, sorted(written))


def _expire_snapshots(spark: Any, names: list[str]) -> None:
    """Keep only the current snapshot of each table written, deleting the files of the others:
    a replaced or deleted row (an erased user's, an expired event's) does not stay in an old
    snapshot, and a table does not grow run after run."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    for name in names:
        try:
            spark.sql(
                f"CALL {CATALOG}.system.expire_snapshots(table => '{MODELS_NAMESPACE}.{name}', "
                f"older_than => TIMESTAMP '{now}', retain_last => 1)"
            ).collect()
        except Exception as exc:  # noqa: BLE001 - the run's tables are written; say so, go on
            log.warning(
                "could not expire a model table's old snapshots",
                extra={"fields": {"model": name, "error": _first_line(exc)}},
            )


def replace_table(frame: Any, name: str, properties: dict[str, str]) -> None:
    """Replace the table ``name`` by ``frame``'s rows (one commit)."""
    writer = frame.writeTo(table_name(name)).using("iceberg")
    for key, value in {**TABLE_PROPERTIES, **properties}.items():
        writer = writer.tableProperty(key, value)
    writer.createOrReplace()


def update_table(spark: Any, model: Model, rows: Any, properties: dict[str, str]) -> None:
    """Replace the rows of the keys the new events touch by ``rows``: a delete, an append."""
    table = table_name(model.name)
    spark.sql(f"DELETE FROM {table} WHERE {spark_scope.touched(model)}")
    rows.writeTo(table).append()
    listed = ", ".join(f"'{key}' = '{value}'" for key, value in properties.items())
    spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ({listed})")


class SparkModelError(FlywheelError):
    """A model could not be computed on Spark; the run changed no table."""


def _record_failure(spark: Any, run: SparkRun, begun: datetime, *, policy: Policy) -> None:
    """Record a run that failed, if the catalog takes even that."""
    try:
        _record_run(spark, run, begun, policy=policy, files=0, status="failed")
    except Exception:  # noqa: BLE001 - the run's own error is the one to report
        log.warning("could not record the failed run", extra={"fields": {"run": run.run_id}})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _record_run(
    spark: Any,
    run: SparkRun,
    begun: datetime,
    *,
    policy: Policy,
    files: int,
    status: str = "succeeded",
    full_refresh: bool = False,
) -> None:
    """Append the run to ``flywheel.models.transform_runs`` (the warehouse's columns)."""
    row = [(run.run_id, begun, datetime.now(UTC), full_refresh, files, run.events, policy.digest,
            status, checks.principles().digest)]  # fmt: skip
    frame = spark.createDataFrame(row, RUNS_SCHEMA)
    if spark.catalog.tableExists(table_name(RUNS_TABLE)):
        # A table written before runs recorded the principles' hash gets the column (Iceberg
        # adds it as a change of metadata; the earlier rows read NULL, as in the warehouse).
        if "principles_hash" not in spark.table(table_name(RUNS_TABLE)).columns:
            spark.sql(f"ALTER TABLE {table_name(RUNS_TABLE)} ADD COLUMN principles_hash STRING")
        frame.writeTo(table_name(RUNS_TABLE)).append()
    else:
        writer = frame.writeTo(table_name(RUNS_TABLE)).using("iceberg")
        for key, value in TABLE_PROPERTIES.items():
            writer = writer.tableProperty(key, value)
        writer.create()


def run_transforms_on_spark(
    spark_settings: SparkSettings,
    table: LakeTable,
    *,
    policy_file: Path | None = None,
    select: list[str] | None = None,
    full_refresh: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    models_dir: Path | None = None,
) -> SparkRun:
    """``flywheel transform run --engine spark``: commit the landed files to the lake's table,
    then build the models (with the team's own in ``models_dir``) from its current snapshot on
    Spark into ``flywheel.models.*``, in full or incrementally (``run_models_on_spark``)."""
    import uuid

    from transforms.policy import load_policy

    policy = load_policy(policy_file)
    # An unknown model, a cycle or a bad file of the team's fails before anything runs; so does
    # a team's model whose SQL cannot be written for Spark as the shipped ones are.
    every = discover(custom=models_dir)
    ordered(every, select)
    for model in every.values():
        if model.path is not None:
            to_spark(model.sql, policy_variables(policy), model=model.label)
    started = time.perf_counter()
    table.commit()  # also refuses a catalog whose table lies elsewhere than this lake
    # The snapshot the run reads, whatever the ingest workers commit meanwhile.
    current = table.table().current_snapshot()
    committed = time.perf_counter() - started
    started = time.perf_counter()
    spark = open_session(
        spark_settings, catalog_uri=table.catalog_uri, lake_url=table.location.rsplit("/", 1)[0]
    )
    opened = time.perf_counter() - started
    run = run_models_on_spark(
        spark,
        policy,
        run_id=uuid.uuid4().hex,
        select=select,
        full_refresh=full_refresh,
        snapshot=current.snapshot_id if current is not None else None,
        on_progress=on_progress,
        models_dir=models_dir,
    )
    run.overhead = {"commit_lake": committed, "session": opened, **run.overhead}
    return run
