"""Shared test helpers live in modules of their own: no file under tests/ imports a test module
(``test_*.py``) or a conftest.py, at module level or inside a function.

Importing a test module runs its module-level code a second time under another name and can make
pytest collect its tests twice; importing a conftest bypasses pytest's fixture discovery. Helpers
go to tests/helpers/ (or tests/factories.py, tests/filesystems.py), fixtures to a conftest.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def is_test_module(name: str) -> bool:
    """True if the dotted ``name`` is, or is inside, a test module or a conftest of tests/."""
    parts = name.split(".")
    return parts[0] == "tests" and any(p.startswith("test_") or p == "conftest" for p in parts[1:])


def absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` names, relative ones resolved against ``package``."""
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def forbidden_imports(source: str, package: str) -> list[str]:
    """The import statements of ``source`` (a module of ``package``) that import a test module
    or a conftest, as ``line N: <statement>``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = absolute(node, package)
            # ``from tests.export import conftest`` names the module in the imported names.
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        if any(is_test_module(name) for name in names):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def package_of(path: Path) -> str:
    return ".".join(path.relative_to(TESTS.parent).parent.parts)


def test_no_file_under_tests_imports_a_test_module_or_a_conftest() -> None:
    offenders = {
        path.relative_to(TESTS.parent).as_posix(): found
        for path in sorted(TESTS.rglob("*.py"))
        if (found := forbidden_imports(path.read_text(), package_of(path)))
    }
    assert offenders == {}, "move the helper to tests/helpers/ (fixtures to a conftest.py)"


@pytest.mark.parametrize(
    "source",
    [
        "from tests.flywheel.test_cli import assert_one_line_error, flywheel",
        "import tests.flywheel.test_cli",
        "import pytest, tests.warehouse.test_load as load",
        "from tests.export.conftest import KEYRING",
        "from tests.export import conftest",
        "from tests.transforms import test_preference_pairs",
        "from .test_cli import flywheel",
        "from ..export.conftest import land",
        "def test_it():\n    from tests.warehouse.test_load import land, query\n",
    ],
)
def test_the_check_finds_an_import_of_a_test_module_or_a_conftest(source: str) -> None:
    assert len(forbidden_imports(source, "tests.flywheel")) == 1


@pytest.mark.parametrize(
    "source",
    [
        "from tests.helpers.cli import assert_one_line_error, flywheel",
        "from tests.factories import make_event",
        "import tests.helpers.lake",
        "from tests.integration.kafka_tools import produce",
        "from . import helpers",
        "from .kafka_tools import produce",
        "import pytest\nfrom flywheel.settings import Settings",
        "from testing.test_x import y",
    ],
)
def test_the_check_lets_helper_modules_through(source: str) -> None:
    assert forbidden_imports(source, "tests.flywheel") == []


def test_a_relative_import_is_resolved_against_the_package() -> None:
    assert forbidden_imports("from ..test_layers import imports", "tests.flywheel") == [
        "line 1: from ..test_layers import imports"
    ]
    assert forbidden_imports("from .. import helpers", "tests.flywheel") == []
