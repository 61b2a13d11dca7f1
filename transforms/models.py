"""The SQL models: one ``.sql`` file per table under transforms/models/, run in dependency order.

A model file is a ``SELECT``; its first lines name what it reads (``-- depends_on: events, x``).
The runner builds ``CREATE OR REPLACE TABLE <name> AS <select>`` with the name quoted by one
helper, and binds the policy's values as DuckDB variables (``getvariable('edit_min_change')``):
SQL never has data formatted into it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from flywheel.errors import ConfigError
from transforms.policy import Policy

MODELS = Path(__file__).with_name("models")
SOURCES = frozenset({"events", "lake_files"})
_DEPENDS = re.compile(r"^--\s*depends_on:\s*(.*)$", re.MULTILINE)

MACROS = (
    # The distinct lower-case words of a text (for edit sizes).
    "CREATE OR REPLACE TEMP MACRO words(text) AS "
    "list_distinct(list_filter(regexp_split_to_array(lower(text), '[^[:alnum:]]+'), "
    "lambda w: w <> ''))",
)
"""SQL helpers the models may call, created (as temporary macros) before they run."""


@dataclass(frozen=True)
class Model:
    """One model: a SQL ``SELECT``, or a Python step that creates its table itself."""

    name: str
    sql: str
    depends_on: tuple[str, ...]
    build: Callable[[Any], None] | None = None


def _python_models() -> dict[str, Model]:
    from transforms.checks import build_code_checks

    return {"code_checks": Model("code_checks", "", ("responses",), build_code_checks)}


def quote(identifier: str) -> str:
    """An identifier quoted for DuckDB (the only way names enter SQL text)."""
    return '"' + identifier.replace('"', '""') + '"'


def discover(folder: Path = MODELS) -> dict[str, Model]:
    """Every model: the ``.sql`` files in ``folder`` and the Python steps, by name."""
    models = _python_models()
    for path in sorted(folder.glob("*.sql")):
        sql = path.read_text()
        found = _DEPENDS.search(sql)
        depends = tuple(d.strip() for d in found.group(1).split(",") if d.strip()) if found else ()
        models[path.stem] = Model(path.stem, sql, depends)
    return models


def ordered(models: dict[str, Model], select: list[str] | None = None) -> list[Model]:
    """Models in dependency order; with ``select``, those models and what they depend on."""
    for model in models.values():
        unknown = [d for d in model.depends_on if d not in models and d not in SOURCES]
        if unknown:
            raise ConfigError(f"model {model.name} depends on unknown {', '.join(unknown)}")
    graph = {name: [d for d in m.depends_on if d in models] for name, m in models.items()}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise ConfigError(f"the models depend on each other in a cycle: {exc.args[1]}") from None
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


def policy_variables(policy: Policy) -> dict[str, float]:
    """The policy flattened to DuckDB variable names: ``weights.copy`` -> ``weights_copy``."""
    flat: dict[str, float] = {}
    for section, values in policy.model_dump(by_alias=True).items():
        for key, value in values.items():
            flat[f"{section}_{key}"] = value
    return flat


def run_models(
    db: Any,
    policy: Policy,
    *,
    select: list[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[tuple[str, int, float]]:
    """Build the models (each in its own statement); returns (name, rows, seconds) per model."""
    for name, value in policy_variables(policy).items():
        db.execute(f"SET VARIABLE {quote(name)} = $value", {"value": value})
    for macro in MACROS:
        db.execute(macro)
    results = []
    models = ordered(discover(), select)
    for model in models:
        started = time.perf_counter()
        if model.build is not None:
            model.build(db)
        else:
            db.execute(f"CREATE OR REPLACE TABLE {quote(model.name)} AS\n{model.sql}")
        [(rows,)] = db.execute(f"SELECT count(*) FROM {quote(model.name)}").fetchall()
        seconds = time.perf_counter() - started
        results.append((model.name, int(rows), seconds))
        if on_progress is not None:
            on_progress(len(results), len(models))
    return results
