"""The models' SQL on Spark: DuckDB SQL transpiled with SQLGlot, and the rewrites it needs.

The models are written once, in DuckDB's dialect (transforms/models/*.sql). SQLGlot turns most of
their syntax into Spark SQL; where the same words would mean something else on Spark, the model
is written so that it means the same on both engines (a sorted list is sorted with ``list_sort``,
never by an ``ORDER BY`` inside the aggregate, which SQLGlot drops; ``list_distinct`` is always
sorted, since DuckDB does not keep its order), and the constructs below are rewritten on the
syntax tree:

- ``getvariable('name')`` (a policy value bound as a DuckDB variable) becomes the value as a
  literal node of the syntax tree, ``CAST(<value> AS DOUBLE)`` (a DuckDB variable holds a
  DOUBLE, where Spark reads ``0.5`` as a DECIMAL and would do the arithmetic in decimals). The
  values are the policy's validated floats, put in the tree, never formatted into text. (Spark's
  named parameters were tried first: a parameter inside a CTE that is read twice failed the
  query with an internal error in Spark 4.1.)
- ``unnest(arg_min(struct_pack(...), (k1, k2)))`` (the first row of a group, whole) becomes
  ``inline(array(min_by(struct(...), struct(k1, k2))))``: DuckDB compares the tuple key field
  by field and so does Spark's struct ordering, where SQLGlot's own output (``explode`` of a
  ``min_by`` over a bare tuple) does not run.

- ``round_half_up(x, digits)`` (a macro on DuckDB: ``transforms.models.FUNCTIONS``) becomes
  ``CAST(ROUND(CAST(x AS DECIMAL(38, 12)), digits) AS DOUBLE)``: both engines round the same
  DECIMAL half up. (A DOUBLE's ``round`` disagreed: DuckDB rounds the binary value, Spark its
  shortest decimal form, so 0.0296875 became 0.029687 and 0.029688.)
- ``list_concat(a, b, ...)`` reads a NULL list as empty (DuckDB), where Spark's ``concat``
  returns NULL: it becomes ``flatten(filter(array(a, b, ...), part -> part IS NOT NULL))``.
- ``list_distinct(x)`` drops NULLs (DuckDB), where Spark's ``array_distinct`` keeps one: it
  becomes ``array_distinct(filter(x, item -> item IS NOT NULL))``.

Anything else the transpiler cannot do is a ``ConfigError`` naming the model, found by the parity
tests (tests/transforms/test_spark_parity.py), which run every model on both engines.
"""

from __future__ import annotations

from typing import Any

from flywheel.errors import ConfigError

VARIABLE = "getvariable"
ROUND_HALF_UP = "round_half_up"
MAX_NESTING = 20


def _rewriter(variables: dict[str, float], model: str) -> Any:
    from sqlglot import exp

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == VARIABLE:
            [name] = node.expressions
            if name.this not in variables:
                raise ConfigError(f"model {model or '?'} reads an unknown variable {name.this!r}")
            value = float(variables[name.this])
            return exp.Cast(this=exp.Literal.number(repr(value)), to=exp.DataType.build("DOUBLE"))
        return _rewrite(node)

    return rewrite


def _without_nulls(items: Any, name: str) -> Any:
    """Spark's ``filter(items, name -> name IS NOT NULL)``, as a syntax tree."""
    from sqlglot import exp

    kept = exp.Lambda(
        this=exp.column(name).is_(exp.null()).not_(), expressions=[exp.to_identifier(name)]
    )
    return exp.Anonymous(this="filter", expressions=[items, kept])


def _rewrite(node: Any) -> Any:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous) and str(node.this).lower() == ROUND_HALF_UP:
        value, digits = node.expressions
        decimal = exp.DataType.build("DECIMAL(38, 12)")
        rounded = exp.Round(this=exp.Cast(this=value, to=decimal), decimals=digits)
        return exp.Cast(this=rounded, to=exp.DataType.build("DOUBLE"))
    # Built of Anonymous nodes, which this function leaves alone; the transform then goes on
    # into their arguments, so a list_concat inside a list_distinct is rewritten too.
    if isinstance(node, exp.ArrayConcat):
        lists = exp.Array(expressions=[node.this, *node.expressions])
        return exp.Anonymous(this="flatten", expressions=[_without_nulls(lists, "part")])
    if isinstance(node, exp.ArrayDistinct):
        return exp.Anonymous(this="array_distinct", expressions=[_without_nulls(node.this, "item")])
    if (
        isinstance(node, exp.Explode)
        and isinstance(node.this, exp.ArgMin)
        and isinstance(node.this.this, exp.Struct)
    ):
        key = node.this.expression
        keys = key.expressions if isinstance(key, exp.Tuple) else [key]
        first = exp.Anonymous(
            this="min_by", expressions=[node.this.this, exp.Struct(expressions=list(keys))]
        )
        return exp.Anonymous(this="inline", expressions=[exp.Array(expressions=[first])])
    return node


def to_spark(sql: str, variables: dict[str, float] | None = None, *, model: str = "") -> str:
    """A DuckDB ``SELECT`` (a model's) as Spark SQL, with the policy's ``variables``."""
    from flywheel.extras import require

    sqlglot = require("sqlglot", extra="spark")
    from sqlglot.errors import SqlglotError

    try:
        [tree] = sqlglot.parse(sql, read="duckdb")
    except SqlglotError as exc:
        raise ConfigError(f"model {model or '?'}: SQLGlot cannot read its SQL: {exc}") from None
    if tree is None:
        raise ConfigError(f"model {model or '?'} has no SQL statement")
    rewrite = _rewriter(variables or {}, model)
    # SQLGlot's transform does not descend into a node it replaced: one pass per nesting level.
    for _ in range(MAX_NESTING):
        if not any(_rewritten(node) for node in tree.walk()):
            break
        tree = tree.transform(rewrite)
    else:
        raise ConfigError(f"model {model or '?'} nests lists deeper than {MAX_NESTING} levels")
    return str(tree.sql(dialect="spark", comments=False))


def _rewritten(node: Any) -> bool:
    """Whether ``_rewriter`` replaces ``node``."""
    from sqlglot import exp

    return (
        (isinstance(node, exp.Anonymous) and str(node.this).lower() in (VARIABLE, ROUND_HALF_UP))
        or isinstance(node, exp.ArrayConcat | exp.ArrayDistinct)
        or (isinstance(node, exp.Explode) and isinstance(node.this, exp.ArgMin))
    )
