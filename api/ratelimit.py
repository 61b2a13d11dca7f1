"""A token bucket over events, one per publishable key and API process.

A bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second; a request of ``n``
events takes ``n`` tokens. A request of more events than the bucket holds would never fit, so a
request is admitted once the bucket holds ``min(n, burst)`` tokens, and may leave it below
zero: the requests after it wait until the debt is refilled. The average stays at ``rate``.

Written here rather than taken from a library: the rate-limiting libraries considered
(pyrate-limiter, limits, aiolimiter) bound counts within time windows, or make the caller wait;
the protocol is a bucket of events that refuses at once and says how long to wait.

The API serves one event loop per process and ``take`` never awaits, so no lock is needed; each
server process (``flywheel serve --workers N``) keeps buckets of its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` held; starts full."""

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def _refill(self) -> float:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        return self._tokens

    def wait_s(self, events: int) -> float:
        """Seconds until a request of ``events`` events would be admitted (0: now)."""
        needed = min(events, self.burst)
        missing = needed - self._refill()
        return max(0.0, missing / self.rate)

    def take(self, events: int) -> float:
        """Take ``events`` tokens and answer 0, or take nothing and answer the seconds to wait."""
        wait = self.wait_s(events)
        if wait == 0:
            self._tokens -= events
        return wait


def retry_after(wait_s: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
