"""Incremental builds on Spark: what a run rebuilds, and the scope transforms/incremental.py
defines, computed as temporary views of the run's Spark session.

The rules are DuckDB's, from the same statements: each of ``incremental._PREPARE`` and
``incremental._AFTER_RESPONSES`` is read with SQLGlot and becomes a view of the same name, three
of them rewritten where DuckDB's form does not carry over:

- ``new_events``: DuckDB takes the events of the lake files loaded after the model's last build
  (``lake_files.seq``); here, the events of the files the lake's table appended after the
  snapshot the model was built from (an Iceberg incremental read between two snapshots).
- ``scope_events`` and ``scope_responses`` find their rows by DuckDB's ``rowid``, a speed-up;
  here by the condition itself.

A model's state is in its table's properties: the fingerprint it was built with and the lake
table's snapshot it was built from (``SNAPSHOT_PROPERTY``). A model is built in full when
transforms/models.py would build it in full (no table or state, another fingerprint, an upstream
model built in full, no keys, ``--full-refresh``), and every model is when the lake's table did
more than append files since (a compaction, an erasure or retention replaced files: the events
of replaced files have no new file to be found by).
"""

from __future__ import annotations

from typing import Any

from transforms import incremental
from transforms.dialect import to_spark
from transforms.models import Model

SNAPSHOT_PROPERTY = "flywheel.events-snapshot"
"""On a model's table: the snapshot of the lake's table the model was built from."""

NEW_EVENTS = """
SELECT conversation_id, response_id, response_a_id, response_b_id, prompt_response_ids
FROM events
WHERE lake_file IN (SELECT lake_file FROM new_lake_files)
"""
"""``new_events`` on Spark: the (kept) events of the files appended since the last build."""


def appended_only(snapshots: list[tuple[int, int | None, str]], since: int, current: int) -> bool:
    """Whether the lake's table went from snapshot ``since`` to ``current`` by appends only
    (``snapshots``: id, parent id and operation of each snapshot the table still has)."""
    parents = {snapshot: (parent, operation) for snapshot, parent, operation in snapshots}
    node: int | None = current
    while node != since:
        if node is None or node not in parents:
            return False  # ``since`` expired, or is not an ancestor (a rollback)
        parent, operation = parents[node]
        if operation != "append":
            return False
        node = parent
    return True


def plan(
    models: list[Model],
    prints: dict[str, str],
    state: dict[str, tuple[str, int] | None],
    *,
    full_refresh: bool,
) -> tuple[set[str], int | None]:
    """Which models are built in full, and from which snapshot on the others are (None: none);
    ``state``: per model, its table's fingerprint and snapshot, or None without a table."""
    full: set[str] = set()
    for model in models:
        found = state.get(model.name)
        if (
            full_refresh
            or not model.refresh_by
            or found is None
            or found[0] != prints[model.name]
            or any(upstream in full for upstream in model.depends_on)
        ):
            full.add(model.name)
    built_from = [state[m.name][1] for m in models if m.name not in full]  # type: ignore[index]
    return full, (min(built_from) if built_from else None)


def _statement(sql: str) -> tuple[str, str, bool]:
    """A DuckDB ``CREATE OR REPLACE TEMP TABLE x AS ...`` or ``INSERT INTO x ...`` as (x, its
    ``SELECT`` in DuckDB SQL without ``rowid`` lookups, whether it adds to x)."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="duckdb")
    name = tree.this.name if isinstance(tree, exp.Create) else tree.this.this.name
    select = tree.expression

    def by_condition(node: Any) -> Any:
        # rowid IN (SELECT rowid FROM t WHERE condition) -> condition
        if (
            isinstance(node, exp.In)
            and isinstance(node.this, exp.Column)
            and node.this.name == "rowid"
            and node.args.get("query") is not None
        ):
            inner = (
                node.args["query"].this
                if isinstance(node.args["query"], exp.Subquery)
                else node.args["query"]
            )
            where = inner.args.get("where")
            if where is not None:
                return where.this
        return node

    return name, select.transform(by_condition).sql(dialect="duckdb"), isinstance(tree, exp.Insert)


def _view(spark: Any, name: str, select: str, *, adds: bool = False) -> None:
    """Compute ``select`` (DuckDB SQL) on Spark as the view ``name`` (or add its rows to it)."""
    rows = spark.sql(to_spark(select, model=name)).localCheckpoint(eager=True)
    if adds:
        rows = spark.table(name).unionByName(rows).localCheckpoint(eager=True)
    rows.createOrReplaceTempView(name)


def prepare(spark: Any) -> int:
    """The scope of the events in ``new_lake_files``, as views (``responses`` is the table as
    the last run left it); returns how many conversations are touched."""
    for sql in incremental._PREPARE:
        name, select, adds = _statement(sql)
        _view(spark, name, NEW_EVENTS if name == "new_events" else select, adds=adds)
    return int(spark.table("touched_conversations").count())


def responses_rebuilt(spark: Any) -> None:
    """After ``responses`` is rebuilt (the view ``responses`` holds its new rows): the response
    ids the other models recompute, and the rows they read."""
    for sql in incremental._AFTER_RESPONSES:
        name, select, adds = _statement(sql)
        _view(spark, name, select, adds=adds)


def touched(model: Model) -> str:
    """A Spark SQL condition true for rows whose key the new events touch."""
    parts = []
    for key in model.refresh_by:
        table, column = incremental.KEY_SETS.get(key, incremental.RESPONSE_KEYS)
        parts.append(f"`{key}` IN (SELECT {column} FROM {table})")
    return "coalesce(" + " OR ".join(parts) + ", false)"


def shadow(spark: Any, model: Model, full_views: dict[str, str]) -> None:
    """Register, for each relation ``model`` reads that the scope limits
    (``incremental.SHADOWS``), the scope's rows under the relation's name; ``full_views``: the
    view holding each relation's full rows."""
    import sqlglot
    from sqlglot import exp

    for name in model.depends_on:
        if name not in incremental.SHADOWS:
            continue
        tree = sqlglot.parse_one(incremental.SHADOWS[name], read="duckdb")
        for table in tree.find_all(exp.Table):
            if table.name == name:
                table.set("this", exp.to_identifier(full_views[name]))
        _view(spark, name, tree.sql(dialect="duckdb"))


def unshadow(spark: Any, model: Model, full_views: dict[str, str]) -> None:
    """Put back the full rows under the names ``shadow`` limited."""
    for name in model.depends_on:
        if name in incremental.SHADOWS:
            spark.table(full_views[name]).createOrReplaceTempView(name)
