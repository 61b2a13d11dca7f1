"""The models' DuckDB SQL as Spark SQL: the rewrites where the same words mean something else."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from transforms.dialect import to_spark
from transforms.models import define_functions, discover, policy_variables
from transforms.policy import load_policy
from transforms.spark import jdbc_catalog, spark_type


def test_a_policy_variable_becomes_its_value_as_a_double() -> None:
    sql = to_spark("SELECT getvariable('weights_copy') * 2 AS w", {"weights_copy": 0.1})
    assert sql == "SELECT CAST(0.1 AS DOUBLE) * 2 AS w"


def test_an_unknown_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="model m reads an unknown variable 'nope'"):
        to_spark("SELECT getvariable('nope')", {}, model="m")


def test_lists_keep_duckdb_null_rules_even_nested() -> None:
    sql = to_spark("SELECT list_sort(list_distinct(list_concat([a], b, c))) FROM t")
    # A NULL list is empty in list_concat, and list_distinct drops NULL items, on both engines.
    assert sql == (
        "SELECT ARRAY_SORT(ARRAY_DISTINCT(FILTER(FLATTEN(FILTER(ARRAY(ARRAY(a), b, c), "
        "part -> NOT part IS NULL)), item -> NOT item IS NULL))) FROM t"
    )


def test_the_first_row_of_a_group_keeps_its_tuple_key() -> None:
    sql = to_spark("SELECT unnest(arg_min(struct_pack(a, b), (x, y))) FROM t GROUP BY k")
    assert sql == "SELECT INLINE(ARRAY(MIN_BY(STRUCT(a, b), STRUCT(x, y)))) FROM t GROUP BY k"


def test_every_shipped_model_transpiles_without_duckdb_only_functions() -> None:
    variables = policy_variables(load_policy(None))
    for model in discover().values():
        if model.sql:
            sql = to_spark(model.sql, variables, model=model.name).lower()
            for duckdb_only in (
                "getvariable",
                "list_concat",
                "struct_pack",
                "explode(min_by",
                "round_half_up",
            ):
                assert duckdb_only not in sql, (model.name, duckdb_only)


def test_unreadable_sql_is_one_line_naming_the_model() -> None:
    with pytest.raises(ConfigError, match="model broken: SQLGlot cannot read its SQL"):
        to_spark("SELECT (", model="broken")


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:////srv/data/lake-catalog.db", {"uri": "jdbc:sqlite:/srv/data/lake-catalog.db"}),
        (
            "postgresql+psycopg2://flywheel:s%40cret@db.internal:5433/lake",
            {
                "uri": "jdbc:postgresql://db.internal:5433/lake",
                "jdbc.user": "flywheel",
                "jdbc.password": "s@cret",
            },
        ),
    ],
)
def test_the_lake_catalog_as_spark_reaches_it(uri: str, expected: dict[str, str]) -> None:
    assert jdbc_catalog(uri) == expected


def test_a_relative_sqlite_catalog_is_resolved_where_the_command_runs(tmp_path: Path) -> None:
    # The autouse fixture runs each test in its tmp_path.
    assert jdbc_catalog("sqlite:///lake.db") == {"uri": f"jdbc:sqlite:{tmp_path / 'lake.db'}"}


@pytest.mark.parametrize("uri", ["sqlite:///:memory:", "sqlite://", "mysql://h/db"])
def test_a_catalog_spark_cannot_reach_is_refused(uri: str) -> None:
    with pytest.raises(ConfigError):
        jdbc_catalog(uri)


def test_duckdb_types_have_spark_twins() -> None:
    assert spark_type("VARCHAR[]") == "ARRAY<STRING>"
    assert spark_type("TIMESTAMP WITH TIME ZONE") == "TIMESTAMP"
    assert spark_type("DECIMAL(18,3)") == "DECIMAL(18,3)"
    with pytest.raises(ConfigError, match="no Spark type for DuckDB's MAP"):
        spark_type("MAP(VARCHAR, INTEGER)")


def test_round_half_up_rounds_the_decimal_half_up_on_duckdb() -> None:
    import duckdb

    db = duckdb.connect()
    define_functions(db)
    # 3/640 is 0.0046875 in decimal and a hair below it in binary: DuckDB's round(x, 6) on the
    # DOUBLE gives 0.004687, Spark's 0.004688; round_half_up gives 0.004688 on both.
    rounded = db.sql(
        "SELECT round(3 / 640, 6), round_half_up(3 / 640, 6), round_half_up(-3 / 640, 6)"
    ).fetchall()
    assert rounded == [(0.004687, 0.004688, -0.004688)]


def test_round_half_up_is_written_for_spark_as_a_decimal_round() -> None:
    sql = to_spark("SELECT round_half_up(a / n, 6) FROM t")
    assert sql == "SELECT CAST(ROUND(CAST(a / n AS DECIMAL(38, 12)), 6) AS DOUBLE) FROM t"


def test_a_postgresql_catalog_keeps_its_query_and_an_ipv6_host() -> None:
    found = jdbc_catalog("postgresql+psycopg://u@[::1]:5432/lake?sslmode=require")
    assert found["uri"] == "jdbc:postgresql://[::1]:5432/lake?sslmode=require"
