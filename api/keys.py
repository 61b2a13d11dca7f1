"""The API's keys and what each may do.

- write keys (backends): post events of every type;
- publishable keys (browsers): post events, only from their origins, only their event types,
  at most their rate (``api.ratelimit``); being public, they are never also another kind;
- reader keys: read the published datasets;
- admin keys: erasure, read the datasets, manage review queues and read their calibration;
- reviewer keys: read review queues and answer their items, nothing else; each names its
  reviewer, whom the review stage knows only by pseudonym.

A key is never logged nor counted in a metric: a publishable key is known there by its name.
Every configured key is also masked in every log record (``flywheel.logs.hide``), since a
publishable key travels in a URL (``/v1/beacon?key=``), which an access log would write.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from api.ratelimit import TokenBucket
from flywheel.logs import hide
from flywheel.settings import ApiSettings

Scope = Literal["write", "publishable", "reader", "admin", "reviewer"]


@dataclass(frozen=True)
class BrowserKey:
    """What a publishable key may do, and its token bucket (per API process)."""

    name: str
    """The key's name in logs and metrics."""
    origins: frozenset[str]
    event_types: frozenset[str]
    bucket: TokenBucket


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the scopes of the key it carried (none for an unknown key)."""

    scopes: frozenset[Scope]
    browser: BrowserKey | None = None
    """Set for a publishable key."""
    reviewer: str | None = None
    """Set for a reviewer key: the reviewer's id as configured (pseudonymised before it is
    stored or logged)."""


NOBODY = Caller(scopes=frozenset())


class ApiKeys:
    """Every configured key, each with its scope; built once per app."""

    def __init__(self, api: ApiSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys: list[tuple[bytes, Scope, BrowserKey | None]] = []
        self._reviewers: dict[bytes, str] = {}
        secret: tuple[tuple[Scope, list[SecretStr]], ...] = (
            ("write", api.write_keys),
            ("reader", api.reader_keys),
            ("admin", api.admin_keys),
        )
        for scope, keys in secret:
            self._keys.extend((key.get_secret_value().encode(), scope, None) for key in keys)
        for position, browser in enumerate(api.publishable_keys, start=1):
            bucket = TokenBucket(rate=browser.rate_per_second, burst=browser.burst, clock=clock)
            described = BrowserKey(
                name=browser.name or f"publishable-{position}",
                origins=frozenset(browser.origins),
                event_types=frozenset(browser.event_types),
                bucket=bucket,
            )
            self._keys.append((browser.key.get_secret_value().encode(), "publishable", described))
        for reviewer in api.reviewer_keys:
            key = reviewer.key.get_secret_value().encode()
            self._keys.append((key, "reviewer", None))
            self._reviewers[key] = reviewer.reviewer
        for key, _, _ in self._keys:
            hide(key.decode())

    def identify(self, token: str) -> Caller:
        """The caller a token names (``NOBODY`` for an unknown token)."""
        presented = token.encode()
        scopes: set[Scope] = set()
        browser = None
        reviewer = None
        # compare_digest against every key, so timing does not tell which key was close.
        for key, scope, described in self._keys:
            if hmac.compare_digest(presented, key):
                scopes.add(scope)
                browser = described or browser
                if scope == "reviewer":
                    reviewer = self._reviewers[key]
        return Caller(frozenset(scopes), browser, reviewer) if scopes else NOBODY
