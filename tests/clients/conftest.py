"""The browser tracker package, installed and built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import jsclient


@pytest.fixture(scope="session")
def js_package() -> Path:
    """clients/js with its dependencies installed and dist/ built."""
    jsclient.build()
    return jsclient.PACKAGE
