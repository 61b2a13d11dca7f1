"""A real browser for tests: the system's Chromium driven by Playwright's Python library (the dev
extra), which downloads no browser of its own, and a static site to serve test pages from an
origin other than the API's. A plugin of the root conftest (``pytest_plugins``); a test that
uses ``browser`` is marked ``integration`` automatically and is skipped, saying why, where no
Chromium is found.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it); ``FLYWHEEL_TEST_CHROMIUM``
names another executable (a Chrome on a developer's machine, say).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = os.environ.get("FLYWHEEL_TEST_CHROMIUM")
"""An executable to use instead of the ``chromium`` on ``PATH``."""

CACHE_SECONDS = 600
"""How long the browser may keep a served file without asking again (``Cache-Control``)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def chromium_executable() -> str | None:
    """The Chromium to drive: ``FLYWHEEL_TEST_CHROMIUM``, else ``chromium`` (Debian's name) or
    ``chromium-browser`` on ``PATH``; None when there is none."""
    if CHROMIUM:
        return CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium, one per test module (each test opens contexts of its own)."""
    executable = chromium_executable()
    if executable is None:
        pytest.skip(
            "Chromium not found: install it (Debian: apt-get install chromium; .ci/run does) "
            "or name it in FLYWHEEL_TEST_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    # Chromium refuses to start its sandbox as root, which CI is.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield launched
        finally:
            launched.close()


class _Handler(SimpleHTTPRequestHandler):
    """Serves the site's files only, each cacheable for ``CACHE_SECONDS``, and logs nothing."""

    def __init__(self, *args: Any, files: Mapping[str, Path], **kwargs: Any) -> None:
        self.files = files
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        name = path.split("?", 1)[0].split("#", 1)[0].lstrip("/")
        found = self.files.get(name)
        # A folder that does not exist: any other name is a 404.
        return str(found) if found is not None else "/nonexistent/"

    def end_headers(self) -> None:
        self.send_header("Cache-Control", f"max-age={CACHE_SECONDS}")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_site(files: Mapping[str, Path]) -> Iterator[str]:
    """Serves ``files`` (URL path without the leading slash -> file) over HTTP on a free
    loopback port, an origin of its own; yields its base URL, ``http://127.0.0.1:<port>``.

    Every answer may be cached for ``CACHE_SECONDS``, so a page opened again while the browser
    is offline comes from the browser's cache, as a product's cached page would."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, files=files))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
