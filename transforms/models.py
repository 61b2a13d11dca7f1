"""The models: one ``.sql`` file per table under transforms/models/ and two Python steps
(transforms/checks.py, transforms/edits.py), run in dependency order.

A model file is a ``SELECT``; its first lines name what it reads (``-- depends_on: events, x``)
and, for a model built incrementally, the keys its rows are replaced by
(``-- refresh_by: conversation_id``; see transforms/incremental.py). A full build is
``CREATE OR REPLACE TABLE <name> AS SELECT * FROM (<select>) ORDER BY <keys>``, with names
quoted by one helper; an incremental one deletes the rows of the touched keys and inserts them
recomputed. The policy's values are bound as DuckDB variables
(``getvariable('edit_min_change')``): SQL never has data formatted into it.

A model is built in full when its table or its recorded state is missing, when its fingerprint
(its SQL or code, the policy and its upstream models' fingerprints) changed, when a
model it reads was built in full in the same run, on ``--full-refresh``, and always when it names
no keys. Otherwise it is built incrementally from the events of the lake files loaded since its
last build (``model_state.through_seq``), or left as it is when there are none.

A team's own models (``FLYWHEEL_TRANSFORMS__MODELS_DIR``, ``discover(custom=...)``) are files of
the same shape in a folder of theirs, run beside these under the same rules. They may read the
shipped models and each other; a name the platform already uses (a shipped model, a warehouse
table) is refused rather than replaced, and so is a file that is not one ``SELECT``.

Each build counts the rows it added and removed (transforms/changes.py): a full build keeps the
previous table under another name until the new one is counted against it (renaming is free,
and the old table is dropped in the same transaction ``CREATE OR REPLACE`` dropped it in), an
incremental one copies the touched keys' rows before it deletes them.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from flywheel.errors import ConfigError
from flywheel.files import packaged
from transforms import incremental
from transforms.changes import Changes, count_changes, count_rows
from transforms.policy import Policy

MODELS = packaged("transforms", "models")
FUNCTIONS = (
    # round(x, digits) rounds a DOUBLE by its binary value on DuckDB and by its shortest decimal
    # form on Spark, so the two disagreed on halves such as 3/640 = 0.0296875 (0.029687 on
    # DuckDB, 0.029688 on Spark). Both round the same DECIMAL half up (away from zero).
    "CREATE OR REPLACE TEMP MACRO round_half_up(x, digits) AS "
    "round(CAST(x AS DECIMAL(38, 12)), digits)::DOUBLE",
)
"""Functions the models call that DuckDB does not have under that name (transforms/dialect.py
writes each for Spark)."""
SOURCES = frozenset({"events", "lake_files", "lake_texts"})
"""What models read besides each other: the warehouse's tables, and ``lake_texts`` (texts read
from the lake for the run: see ``read_texts``)."""
MODEL_NAME = r"^[a-z][a-z0-9_]{0,62}$"
"""What a team's model file may be called (its stem): a table name that needs no quoting
anywhere it is read (SQL, a dataset policy's ``extra_columns``, a Dagster asset key)."""
_DEPENDS = re.compile(r"^--\s*depends_on:\s*(.*)$", re.MULTILINE)
_REFRESH_BY = re.compile(r"^--\s*refresh_by:\s*(.*)$", re.MULTILINE)

TEXTS_KEPT = (
    "landed.type = 'edit' OR contains(landed.response, '```') "
    "OR contains(landed.response, '<SECRET:') "
    "OR landed.response_id IN (SELECT response_id FROM events WHERE type = 'edit')"
)
"""Which lake texts the models need: edits, the responses they edit, and responses with a code
fence or a secret placeholder (the code checks). Other texts are not kept."""


@dataclass(frozen=True)
class Model:
    """One model: a SQL ``SELECT``, or a Python step that computes its rows from the relations it
    is given (by the name of what it depends on: a table name, or a parenthesised ``SELECT`` of
    the scope on an incremental build) and returns them as a ``SELECT`` with its parameters."""

    name: str
    sql: str
    depends_on: tuple[str, ...]
    build: Callable[[Any, dict[str, str]], Any] | None = None
    refresh_by: tuple[str, ...] = ()
    """Key columns whose touched values an incremental build replaces; none: always in full."""
    source: str = ""
    """What the fingerprint hashes besides the SQL (a Python step's code)."""
    path: Path | None = None
    """The file of a team's own model (``discover(custom=...)``), named in its errors; None for
    the shipped ones."""

    @property
    def label(self) -> str:
        """How errors name the model: its name, and its file when it is a team's own."""
        return f"{self.name} ({self.path})" if self.path is not None else self.name


def _python_models() -> dict[str, Model]:
    from transforms import checks, edits, lint

    # The checks' rows follow from the principles and the linter as much as from the code.
    checks_source = "\0".join(
        [
            *(packaged("transforms", f).read_text() for f in ("checks.py", "lint.py")),
            f"principles {checks.principles().digest}",
            f"ruff {lint.ruff_version()}",
        ]
    )
    return {
        "code_checks": Model(
            "code_checks",
            "",
            ("responses", "lake_texts"),
            build=checks.code_checks,
            refresh_by=("response_id",),
            source=checks_source,
        ),
        "edit_changes": Model(
            "edit_changes",
            "",
            ("events", "responses", "lake_texts"),
            build=edits.edit_changes,
            refresh_by=("response_id",),
            source=packaged("transforms", "edits.py").read_text(),
        ),
    }


def _names(found: re.Match[str] | None) -> tuple[str, ...]:
    return tuple(d.strip() for d in found.group(1).split(",") if d.strip()) if found else ()


def quote(identifier: str) -> str:
    """An identifier quoted for DuckDB (the only way names enter SQL text)."""
    return '"' + identifier.replace('"', '""') + '"'


def discover(folder: Path = MODELS, *, custom: Path | None = None) -> dict[str, Model]:
    """Every model: the ``.sql`` files in ``folder`` and the Python steps, by name, and with
    ``custom`` the team's own ``.sql`` files in that folder (``custom_models``)."""
    models = _python_models()
    for path in sorted(folder.glob("*.sql")):
        sql = path.read_text()
        depends, keys = _names(_DEPENDS.search(sql)), _names(_REFRESH_BY.search(sql))
        models[path.stem] = Model(path.stem, sql, depends, refresh_by=keys)
    if custom is not None:
        models.update(custom_models(custom, shipped=models))
    return models


def _reserved() -> set[str]:
    """Names a team's model cannot take: what models read besides each other, and the
    warehouse's own tables (a model's build replaces the table of its name)."""
    from warehouse.schema import metadata

    return {*SOURCES, *metadata.tables, "alembic_version"}


def custom_models(folder: Path, *, shipped: dict[str, Model]) -> dict[str, Model]:
    """A team's own models: the ``.sql`` files in ``folder``, with the shipped models' headers.

    Refused, as a ``ConfigError`` naming the file: a folder that is not there, a name that a
    ``shipped`` model or the warehouse already uses (it would replace that table), and a file
    that is not one ``SELECT`` (DuckDB's parser decides, so a second statement cannot ride
    along). A model keyed by anything but ``conversation_id`` is keyed by response ids, which
    an incremental run knows once ``responses`` is rebuilt: such a model reads it, said or not.
    """
    import duckdb

    if not folder.is_dir():
        raise ConfigError(
            f"the models folder {folder} (FLYWHEEL_TRANSFORMS__MODELS_DIR) is not a directory"
        )
    reserved = _reserved()
    found: dict[str, Model] = {}
    for path in sorted(folder.glob("*.sql")):
        name = path.stem
        if not re.match(MODEL_NAME, name):
            raise ConfigError(
                f"model {name} ({path}): a model's file is named after its table, in lower-case "
                "letters, digits and _ (starting with a letter)"
            )
        if name in shipped:
            raise ConfigError(
                f"model {name} ({path}) has the name of a shipped model: rename the file "
                "(a team's model cannot replace one of the platform's)"
            )
        if name in reserved:
            raise ConfigError(f"model {name} ({path}) has the name of a warehouse table: rename it")
        sql = path.read_text()
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"model {name} ({path}) is not valid SQL: {first[:300]}") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise ConfigError(f"model {name} ({path}) is not one SELECT statement")
        depends, keys = _names(_DEPENDS.search(sql)), _names(_REFRESH_BY.search(sql))
        if any(key != "conversation_id" for key in keys) and "responses" not in depends:
            depends = (*depends, "responses")
        found[name] = Model(name, sql, depends, refresh_by=keys, path=path)
    return found


def ordered(models: dict[str, Model], select: list[str] | None = None) -> list[Model]:
    """Models in dependency order; with ``select``, those models and what they depend on."""
    for model in models.values():
        unknown = [d for d in model.depends_on if d not in models and d not in SOURCES]
        if unknown:
            raise ConfigError(f"model {model.label} depends on unknown {', '.join(unknown)}")
    graph = {name: [d for d in m.depends_on if d in models] for name, m in models.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        cycle = " -> ".join(models[name].label for name in exc.args[1])
        raise ConfigError(f"the models depend on each other in a cycle: {cycle}") from None
    if select:
        missing = [name for name in select if name not in models]
        if missing:
            raise ConfigError(f"no model named {', '.join(missing)} (have: {', '.join(models)})")
        wanted: set[str] = set()
        stack = list(select)
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(graph[name])
        order = [name for name in order if name in wanted]
    return [models[name] for name in order]


def define_functions(db: Any) -> None:
    """Create ``FUNCTIONS`` on the connection the models run on."""
    for statement in FUNCTIONS:
        db.execute(statement)


def policy_variables(policy: Policy) -> dict[str, float]:
    """The policy flattened to DuckDB variable names: ``weights.copy`` -> ``weights_copy``."""
    flat: dict[str, float] = {}
    for section, values in policy.model_dump(by_alias=True).items():
        for key, value in values.items():
            flat[f"{section}_{key}"] = value
    return flat


def fingerprints(models: dict[str, Model], policy: Policy) -> dict[str, str]:
    """Per model, a hash of what its rows follow from: its SQL or code, the policy, and its
    upstream models' fingerprints."""
    found: dict[str, str] = {}
    for model in ordered(models):
        digest = hashlib.sha256()
        # What lake_texts holds is an input too.
        texts = TEXTS_KEPT if "lake_texts" in model.depends_on else ""
        parts = (policy.digest, model.sql, model.source, ",".join(model.refresh_by), texts)
        for part in parts:
            digest.update(part.encode() + b"\0")
        for upstream in sorted(model.depends_on):
            digest.update(found.get(upstream, upstream).encode() + b"\0")
        found[model.name] = digest.hexdigest()
    return found


@dataclass
class Built:
    """One model built: its rows afterwards, its time, how it was built, and what it changed."""

    name: str
    rows: int
    seconds: float
    mode: str
    """``full``, ``incremental`` or ``unchanged`` (incremental with no new events)."""
    added: int | None = None
    """Rows the build added (a changed row is one added and one removed); None: not counted
    (the Spark engine does not count them)."""
    removed: int | None = None
    """Rows the build removed; None: not counted."""


PREVIOUS_SUFFIX = "__previous"
"""What a full build renames the model's previous table to, until its changes are counted."""


def _tables(db: Any) -> set[str]:
    return {row[0] for row in db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
        "AND table_catalog = current_database()").fetchall()}  # fmt: skip


def _plan(
    db: Any, models: list[Model], prints: dict[str, str], *, full_refresh: bool
) -> tuple[set[str], int | None]:
    """Which models are built in full, and from which ``seq`` on the others are (None: none)."""
    tables = _tables(db)
    state = {
        name: (fingerprint, seq)
        for name, fingerprint, seq in db.execute(
            "SELECT model, fingerprint, through_seq FROM model_state"
        ).fetchall()
    }
    full: set[str] = set()
    for model in models:
        if (
            full_refresh
            or not model.refresh_by
            or model.name not in tables
            or state.get(model.name, ("", 0))[0] != prints[model.name]
            or any(upstream in full for upstream in model.depends_on)
        ):
            full.add(model.name)
    seqs = [state[m.name][1] for m in models if m.name not in full]
    return full, (min(seqs) if seqs else None)


def _relations(model: Model, *, scoped: bool) -> dict[str, str]:
    """What a Python step reads, by name: the tables, or (``scoped``, an incremental build) the
    scope's rows where ``incremental.SHADOWS`` limits them."""
    return {
        name: f"({incremental.SHADOWS[name]})" if scoped and name in incremental.SHADOWS else name
        for name in model.depends_on
    }


def _build_full(db: Any, model: Model) -> None:
    # Sorted by its keys: the table's rows of a key sit together, and its row groups are full
    # but the last. A parallel build left partly filled row groups in the middle, and DuckDB's
    # checkpoint after the next incremental run merged them, rewriting most of the table.
    order = f" ORDER BY {', '.join(map(quote, model.refresh_by))}" if model.refresh_by else ""
    if model.build is None:
        db.execute(
            f"CREATE OR REPLACE TABLE {quote(model.name)} AS SELECT * FROM (\n{model.sql}\n){order}"
        )
        return
    select, parameters = model.build(db, _relations(model, scoped=False))
    db.execute(
        f"CREATE OR REPLACE TABLE {quote(model.name)} AS SELECT * FROM ({select}){order}",
        parameters,
    )


def _build_incremental(db: Any, model: Model) -> None:
    touched = incremental.key_filter(model.refresh_by, quote)
    db.execute(f"DELETE FROM {quote(model.name)} WHERE {touched}")
    if model.build is None:
        db.execute(
            f"INSERT INTO {quote(model.name)} BY NAME SELECT * FROM ("
            f"{incremental.shadowing(model.depends_on)}SELECT * FROM (\n{model.sql}\n)) "
            f"WHERE {touched}"
        )
        return
    select, parameters = model.build(db, _relations(model, scoped=True))
    db.execute(
        f"INSERT INTO {quote(model.name)} BY NAME SELECT * FROM ({select}) WHERE {touched}",
        parameters,
    )


def _full_counted(
    db: Any, model: Model, existed: bool, after_build: Callable[[Any, str], None] | None
) -> Changes:
    """Build ``model`` in full; the rows it added and removed against the previous table."""
    table = quote(model.name)
    previous = quote(model.name + PREVIOUS_SUFFIX)
    if existed:
        db.execute(f"DROP TABLE IF EXISTS {previous}")
        db.execute(f"ALTER TABLE {table} RENAME TO {previous}")
    _build_full(db, model)
    if after_build is not None:
        after_build(db, model.name)
    if not existed:  # built for the first time: every row is new
        return Changes(added=count_rows(db, table), removed=0)
    changes = count_changes(db, previous, table)
    db.execute(f"DROP TABLE {previous}")
    return changes


def _incremental_counted(
    db: Any, model: Model, after_build: Callable[[Any, str], None] | None
) -> Changes:
    """Build ``model`` incrementally; the rows it added and removed, found among the touched
    keys' rows only (no other row is deleted or inserted)."""
    touched = (
        f"(SELECT * FROM {quote(model.name)} WHERE "
        + incremental.key_filter(model.refresh_by, quote)
        + ")"
    )
    db.execute(f"CREATE OR REPLACE TEMP TABLE touched_before AS SELECT * FROM {touched}")
    _build_incremental(db, model)
    if after_build is not None:
        after_build(db, model.name)
    # Before ``responses_rebuilt`` widens the touched responses: the same keys as the delete.
    changes = count_changes(db, "touched_before", touched)
    db.execute("DROP TABLE touched_before")
    return changes


def read_texts(db: Any, lake_root: Path, *, scoped: bool) -> None:
    """Read the texts the models need from the lake into ``lake_texts``: of every generation and
    edit, or (``scoped``, an incremental build) of those in the scope's events."""
    from warehouse.texts import fetch_texts

    events = "scope_events" if scoped else "events"
    fetch_texts(
        db,
        lake_root,
        f"SELECT event_id, lake_file, source_offset FROM {events} "
        "WHERE type IN ('generation', 'edit')",
        prompts=False,
        keep=TEXTS_KEPT,
    )


def run_models(
    db: Any,
    policy: Policy,
    *,
    lake_root: Path,
    select: list[str] | None = None,
    full_refresh: bool = False,
    run_id: str = "",
    on_progress: Callable[[int, int], None] | None = None,
    overhead: dict[str, float] | None = None,
    models_dir: Path | None = None,
    after_build: Callable[[Any, str], None] | None = None,
) -> list[Built]:
    """Build the models (each in its own statement), in full or incrementally; returns what was
    built and the rows each added and removed. ``overhead``, if given, receives the seconds
    spent outside the models: ``plan`` (variables, fingerprints, state), ``scope`` (what the new
    events touch) and ``texts`` (reading the texts the models compare from the lake,
    ``lake_root``). ``models_dir``: the team's own models, built beside the shipped ones
    (``custom_models``). ``after_build(db, name)``, if given, is called after each model is
    built and before its changes are counted (rows the caller adds to a model's table count as
    built)."""
    import duckdb

    started = time.perf_counter()
    define_functions(db)
    for name, value in policy_variables(policy).items():
        db.execute(f"SET VARIABLE {quote(name)} = $value", {"value": value})
    every = discover(custom=models_dir)
    models = ordered(every, select)
    prints = fingerprints(every, policy)
    full, since = _plan(db, models, prints, full_refresh=full_refresh)
    [(head,)] = db.execute("SELECT coalesce(max(seq), 0) FROM lake_files").fetchall()
    changed = since is not None and since < head
    planned = time.perf_counter()
    if since is not None and changed:
        incremental.prepare(db, since=since)
    scoped = time.perf_counter()
    # A model built in full needs every text; incremental builds only the scope's.
    readers = [m for m in models if "lake_texts" in m.depends_on and (m.name in full or changed)]
    if readers:
        read_texts(db, lake_root, scoped=all(m.name not in full for m in readers))
    if overhead is not None:
        overhead["plan"] = planned - started
        overhead["scope"] = scoped - planned
        overhead["texts"] = time.perf_counter() - scoped
    results = []
    tables = _tables(db)
    for model in models:
        started = time.perf_counter()
        try:
            if model.name in full:
                changes = _full_counted(db, model, model.name in tables, after_build)
                mode = "full"
            elif changed:
                changes = _incremental_counted(db, model, after_build)
                if model.name == "responses":
                    incremental.responses_rebuilt(db)
                mode = "incremental"
            else:
                changes = Changes(added=0, removed=0)
                mode = "unchanged"
        except duckdb.Error as exc:
            # A team's model that DuckDB refuses: the file is what to fix (the run's
            # transaction is rolled back by the caller, the tables stay as they were). Memory,
            # disk and interruptions are the machine's, not the file's: reported as ever.
            machine = duckdb.IOException | duckdb.OutOfMemoryException | duckdb.InterruptException
            if model.path is None or isinstance(exc, machine):
                raise
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"model {model.label} failed in DuckDB: {first[:300]}") from None
        rows = count_rows(db, quote(model.name))
        seconds = time.perf_counter() - started
        results.append(Built(model.name, rows, seconds, mode, changes.added, changes.removed))
        if on_progress is not None:
            on_progress(len(results), len(models))
    # Every model's state in one statement (in the run's transaction, like the tables).
    db.execute(
        "INSERT OR REPLACE INTO model_state (model, fingerprint, through_seq, run_id, built_at, "
        "full_build) SELECT unnest($models), unnest($prints), $seq, $run, $now, unnest($full)",
        {"models": [b.name for b in results], "prints": [prints[b.name] for b in results],
         "seq": head, "run": run_id, "now": datetime.now(UTC),
         "full": [b.mode == "full" for b in results]},
    )  # fmt: skip
    return results
