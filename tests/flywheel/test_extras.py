"""Roles as extras: a command that needs an extra which is not installed says so in one line,
with the pip command, and exits 3 (a configuration to fix); nothing is published."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flywheel.errors import MissingExtraError
from flywheel.extras import EXTRAS, install_hint, require
from flywheel.shell.cli import exit_code

WITHOUT_GREAT_EXPECTATIONS = textwrap.dedent("""
    import sys
    from importlib.metadata import entry_points

    sys.modules["great_expectations"] = None  # as if the export extra were not installed
    [script] = entry_points(group="console_scripts", name="flywheel")
    sys.argv = ["flywheel", *sys.argv[1:]]
    script.load()()
""")


def test_a_missing_extra_is_one_clear_error_with_its_pip_command() -> None:
    with pytest.raises(MissingExtraError) as caught:
        require("a_module_no_one_installed", extra="export")
    message = str(caught.value)
    assert message == (
        f"{EXTRAS['export']} needs the 'export' extra, which is not installed: "
        "pip install 'feedback-flywheel[export]'"
    )
    assert install_hint("names") == "pip install 'feedback-flywheel[names]'"
    assert exit_code(caught.value) == 3


def test_an_installed_module_is_returned() -> None:
    assert require("json", extra="export") is sys.modules["json"]


def test_a_broken_install_is_not_reported_as_a_missing_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The extra's module is there but one of its own dependencies is not: the real error."""
    (tmp_path / "half_installed.py").write_text("import a_dependency_that_is_gone\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        require("half_installed", extra="export")
    assert caught.value.name == "a_dependency_that_is_gone"


def test_the_demo_without_the_export_extra_stops_at_the_gate_in_one_line(tmp_path: Path) -> None:
    """The core install runs the API, the embedded ingest and the transforms; the export's
    quality gate then asks for its extra (the CLI as installed, in a fresh process)."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_GREAT_EXPECTATIONS, "demo", "--events", "300"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "events accepted over real HTTP" in done.stdout  # it got that far on the core alone
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and line.endswith("pip install 'feedback-flywheel[export]'")
    assert not list((tmp_path / "data" / "datasets").glob("*/v*")), "nothing was published"
