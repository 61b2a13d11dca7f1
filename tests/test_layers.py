"""The import rules of docs/architecture.md, checked on every module's imports (those inside
functions too): the base layer imports no stage, ``privacy`` imports only the base, a stage
imports only what the rules allow of another and neither a dev tool nor the shell, the dev tools
import only the base and the Python client, the Python client (a distribution of its own)
imports nothing of the platform, and only the shell (the commands, the demo, the scheduler and
the erasure that walks every stage) wires the stages together."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "flywheel", "privacy", "api", "console", "ingest", "warehouse", "transforms", "export",
    "review", "evaluate",
    "migrations", "flywheel_client",
)  # fmt: skip

CLIENT = "flywheel_client"
"""The Python client, the distribution under clients/python: it imports nothing of the platform
(not even the base), so a chat backend installs it alone."""

SOURCES = {package: ROOT / package for package in PACKAGES if package != CLIENT} | {
    CLIENT: ROOT / "clients" / "python" / "src" / CLIENT
}
"""Where each package's modules are."""

BASE = {
    "flywheel", "flywheel.settings", "flywheel.errors", "flywheel.logs", "flywheel.kafka",
    "flywheel.files", "flywheel.net", "flywheel.tomlfile", "flywheel.extras", "flywheel.storage",
}  # fmt: skip
"""Imported by everyone; imports no stage and nothing else of ``flywheel``."""

SHELL = {"flywheel.shell", "flywheel.__main__"}
"""May import anything (the package with every module in it): they wire the stages together."""

DEV = "flywheel.dev"
"""The dev tools (local broker, simulator): free within their package, the base besides."""

ALLOWED = {
    "privacy": set(),
    "api": {
        "privacy", "ingest.contract", "ingest.fastcheck", "export.catalog", "export.manifest",
        "console", "review",
    },
    "console": {"privacy", "warehouse", "export.catalog", "export.manifest", "export.differences",
                "review.service",
                "review.queues", "review.calibration", "review.rubric"},
    "ingest": {"privacy", "warehouse.lake"},
    "warehouse": {"privacy"},
    "transforms": {"privacy", "warehouse"},
    "export": {"privacy", "warehouse"},
    "review": {"privacy", "warehouse", "transforms.policy"},
    # Reads published versions and trains a model on them; what it finds is a record of the
    # manifest's (an export is handed the evaluation by the shell); the statistics are review's.
    "evaluate": {"export.catalog", "export.manifest", "review.stats"},
    "migrations": {"privacy", "warehouse"},
    DEV: {CLIENT},
}  # fmt: skip
"""What a stage may import of the others, by module or whole package, besides the base. Each
departure from the design is in docs/architecture.md. The web console (``console``) reads the
warehouse and the published datasets as the API's datasets routes do, and the review stage's
service functions for its review pages; only the API mounts it; it imports nothing of the API.
No stage may import ``flywheel.dev``, ``flywheel.shell`` or the client; the dev tools import
only the base and the client (the simulator writes events as a frontend does, not with the
contract's classes, and posts them as a backend does, with the client)."""


def imports(path: Path) -> set[str]:
    """Every first-party module a file imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def module_name(path: Path, root: Path = ROOT) -> str:
    return ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")


def within(name: str, packages: set[str]) -> bool:
    """True if ``name`` is one of ``packages`` or a module inside one."""
    return any(name == package or name.startswith(package + ".") for package in packages)


def own_package(module: str) -> str | None:
    """The package ``module`` imports freely within: its stage, or the dev tools; none for the
    other ``flywheel`` modules (the base's and those between base and shell), each on its own."""
    if within(module, {DEV}):
        return DEV
    package = module.split(".")[0]
    return None if package == "flywheel" else package


def violations(module: str, imported: set[str]) -> list[str]:
    """The imports of ``module`` the rules forbid."""
    if within(module, SHELL):
        return []
    if within(module, {CLIENT}):
        return sorted(name for name in imported if not within(name, {CLIENT}))
    own = own_package(module)
    rules = ALLOWED.get(module, ALLOWED.get(own or module, set()))
    bad = []
    for name in sorted(imported):
        if name in BASE or name == module or (own is not None and within(name, {own})):
            continue
        if module in BASE:
            bad.append(name)  # the base imports nothing above it
        elif not within(name, rules):
            bad.append(name)
    return bad


def every_module() -> dict[str, set[str]]:
    return {
        module_name(path, directory.parent): imports(path)
        for directory in SOURCES.values()
        for path in sorted(directory.rglob("*.py"))
    }


def test_every_module_keeps_the_import_rules() -> None:
    broken = {m: bad for m, found in every_module().items() if (bad := violations(m, found))}
    assert broken == {}


@pytest.mark.parametrize(
    ("module", "imported"),
    [
        ("ingest.embedded", "api.sink"),  # a stage reaching into the API
        ("api.server", "flywheel.dev.localkafka"),  # a dev tool from a stage
        ("warehouse.load", "transforms.runner"),  # a lower stage importing a higher one
        ("flywheel.settings", "warehouse.db"),  # the base importing a stage
        ("export.publish", "api.main"),
        ("transforms.runner", "flywheel.shell.cli"),  # a stage importing the shell
        ("export.publish", "flywheel.shell.schedule"),
        ("ingest.worker", "flywheel.dev.simulator"),  # a stage importing a dev tool
        ("flywheel.dev.simulator.traffic", "ingest.contract"),  # a dev tool importing a stage
        ("flywheel.dev.localkafka", "flywheel.shell.demo"),  # a dev tool importing the shell
        ("flywheel", "flywheel.shell.cli"),  # the base importing the shell
        ("flywheel.logs", "flywheel.dev.localkafka"),  # the base importing a dev tool
        ("privacy.keys", "ingest.pipeline"),  # privacy importing a stage
        ("privacy.requests", "warehouse.erase"),  # erasure across stages is the shell's
        ("api.erasures", "flywheel.shell.erasure"),  # the API is handed the runner instead
        ("flywheel_client._client", "flywheel.settings"),  # the client importing the platform
        ("flywheel_client._events", "ingest.contract"),
        ("api.routes.events", "flywheel_client"),  # a stage importing the client
        ("flywheel.settings", "flywheel_client._client"),  # the base importing the client
        ("console.app", "api.keys"),  # the console reaching into the API that mounts it
        ("console.queries", "transforms.runner"),  # the console reads, it never builds models
        ("console.app", "export.publish"),  # the console reads versions, never publishes
        ("export.catalog", "console.app"),  # a stage importing the console
        ("warehouse.db", "console.reader"),
        ("review.queues", "export.build"),  # review reads the warehouse, not the export
        ("review.service", "api.keys"),  # a stage importing the API
        ("review.calibration", "transforms.runner"),  # only the policy file of the transforms
        ("warehouse.erase", "review.queues"),  # a lower stage importing review
        ("transforms.runner", "review.service"),
    ],
)
def test_a_wrong_import_is_caught(module: str, imported: str) -> None:
    assert violations(module, {imported}) == [imported]


def test_the_shell_and_the_allowed_imports_pass() -> None:
    assert violations("flywheel.shell.cli", {"api.main", "ingest.worker"}) == []
    assert violations("api.routes.events", {"ingest.contract", "flywheel.errors"}) == []
    assert violations("flywheel.shell.schedule", {"transforms.runner", "warehouse.retention"}) == []
    assert violations("flywheel.shell.demo", {"flywheel.dev.simulator", "api.server"}) == []
    assert violations("flywheel.__main__", {"flywheel.shell.cli"}) == []
    assert violations("flywheel.dev.simulator", {"flywheel.dev.simulator.traffic"}) == []
    assert violations("flywheel.dev.localkafka", {"flywheel.errors", "flywheel.net"}) == []
    assert violations("ingest.pipeline", {"privacy.keys", "privacy.suppression"}) == []
    assert violations("api.routes.privacy", {"privacy.requests", "privacy.keys"}) == []
    assert violations("flywheel.shell.erasure", {"warehouse.erase", "export.erasure"}) == []
    assert violations("api.routes.review", {"review.service", "review.queues"}) == []
    assert violations("review.service", {"warehouse.db", "privacy.keys", "transforms.policy"}) == []
    assert violations("flywheel.dev.simulator.poster", {"flywheel_client", "flywheel.errors"}) == []
    assert violations("flywheel_client._client", {"flywheel_client._protocol"}) == []
    assert violations("api.main", {"console.app"}) == []
    assert violations("console.app", {"warehouse.texts", "export.catalog", "flywheel.files"}) == []


def test_the_client_modules_are_checked() -> None:
    modules = every_module()
    assert "flywheel_client._client" in modules
    assert "flywheel_client" in modules["flywheel.dev.simulator.poster"]
