"""The import rules of docs/architecture.md, checked on every module's imports (those inside
functions too): the base layer imports no stage, a stage imports only what the rules allow of
another, and only the shell (the CLI and the demo) wires the API to the rest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flywheel", "api", "ingest", "warehouse", "transforms", "export", "migrations")

BASE = {
    "flywheel", "flywheel.settings", "flywheel.errors", "flywheel.logs", "flywheel.kafka",
    "flywheel.files", "flywheel.net", "flywheel.tomlfile",
}  # fmt: skip
"""Imported by everyone; imports no stage and nothing else of ``flywheel``."""

SHELL = {"flywheel.cli", "flywheel.demo", "flywheel.__main__"}
"""May import anything: they wire the stages together."""

ALLOWED = {
    "api": {"ingest.contract", "ingest.fastcheck", "ingest.keys", "export.catalog",
            "export.manifest",
            "flywheel.privacy"},
    "ingest": {"warehouse.lake"},
    "warehouse": set(),
    "transforms": {"warehouse"},
    "export": {"warehouse", "ingest.keys", "transforms.runner"},
    "migrations": {"warehouse"},
    "flywheel.privacy": {"ingest.keys", "ingest.suppression", "warehouse", "export.erasure"},
}  # fmt: skip
"""What a stage (or a ``flywheel`` module between base and shell) may import of the others,
by module or whole package, besides the base. Each departure from the design is in
docs/architecture.md."""


def imports(path: Path) -> set[str]:
    """Every first-party module a file imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def violations(module: str, imported: set[str]) -> list[str]:
    """The imports of ``module`` the rules forbid."""
    if module in SHELL:
        return []
    package = module.split(".")[0]
    rules = ALLOWED.get(module, ALLOWED.get(package, set()))
    bad = []
    for name in sorted(imported):
        if name.split(".")[0] == package and package != "flywheel":
            continue  # within its own package
        if name in BASE or name == module:
            continue
        if module in BASE:
            bad.append(name)  # the base imports nothing above it
        elif not any(name == allowed or name.startswith(allowed + ".") for allowed in rules):
            bad.append(name)
    return bad


def every_module() -> dict[str, set[str]]:
    return {
        module_name(path): imports(path)
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_every_module_keeps_the_import_rules() -> None:
    broken = {m: bad for m, found in every_module().items() if (bad := violations(m, found))}
    assert broken == {}


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("ingest.embedded", "api.sink"),  # a stage reaching into the API
        ("api.server", "flywheel.localkafka"),  # a dev tool from a stage
        ("warehouse.load", "transforms.runner"),  # a lower stage importing a higher one
        ("flywheel.settings", "warehouse.db"),  # the base importing a stage
        ("export.publish", "api.main"),
        ("transforms.runner", "flywheel.cli"),  # a stage importing the shell
    ],
)
def test_a_wrong_import_is_caught(module: str, imported: str) -> None:
    assert violations(module, {imported}) == [imported]


def test_the_shell_and_the_allowed_imports_pass() -> None:
    assert violations("flywheel.cli", {"api.main", "ingest.worker"}) == []
    assert violations("api.routes.events", {"ingest.contract", "flywheel.errors"}) == []
    assert violations("export.schedule", {"transforms.runner", "warehouse.retention"}) == []
