"""The API's keys of every scope for tests, a publishable key's origin, and a clock to drive the
rate limits by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flywheel.settings import Settings, load_settings
from tests.factories import WRITE_KEY

PUBLISHABLE_KEY = "pk-browser-key-0123456789"
READER_KEY = "reader-key-0123456789abcdef"
ADMIN_KEY = "admin-key-for-scopes-0123456789"
ORIGIN = "https://chat.example.com"
"""The publishable key's origin."""
OTHER_ORIGIN = "https://elsewhere.example.net"

KEYS = {
    "write": WRITE_KEY,
    "publishable": PUBLISHABLE_KEY,
    "reader": READER_KEY,
    "admin": ADMIN_KEY,
}
"""Each scope's key."""


def key_settings(data_dir: Path | None = None, **publishable: Any) -> Settings:
    """Settings with a key of every scope; ``publishable`` overrides the publishable key's
    fields (``burst``, ``rate_per_second``, ``event_types``...)."""
    browser = {"key": PUBLISHABLE_KEY, "name": "web", "origins": [ORIGIN], **publishable}
    api = {
        "write_keys": [WRITE_KEY],
        "publishable_keys": [browser],
        "reader_keys": [READER_KEY],
        "admin_keys": [ADMIN_KEY],
    }
    return load_settings(api=api, **({"data_dir": data_dir} if data_dir else {}))


def bearer(key: str, origin: str | None = ORIGIN) -> dict[str, str]:
    """The headers of a request sending ``key`` as a bearer token (from ``origin``)."""
    headers = {"Authorization": f"Bearer {key}"}
    return {**headers, "Origin": origin} if origin else headers


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds
