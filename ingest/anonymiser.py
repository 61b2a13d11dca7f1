"""The anonymiser interface the ingest pipeline calls on every event before anything lands.

``Anonymiser.anonymise`` returns the event with every text scrubbed, the user's pseudonym and its
key version, and a report of what was removed (kinds and counts, never values).
``PseudonymisingAnonymiser`` replaces user ids with keyed HMAC pseudonyms and scrubs nothing;
the PII and secret detectors plug in behind the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ingest.contract import Event
from ingest.keys import Keyring


@dataclass(frozen=True, slots=True)
class Anonymised:
    """An event made safe to land."""

    event: Event
    """The event with its texts scrubbed (its ``user_id`` is still raw: use ``user_pseudonym``)."""
    user_pseudonym: str
    key_version: int
    scrubbed: dict[str, int] = field(default_factory=dict)
    """How many values of each kind were replaced, e.g. ``{"email": 2}``."""


class Anonymiser(Protocol):
    """Turns a validated event into one that identifies nobody and leaks no secret."""

    def anonymise(self, event: Event) -> Anonymised:
        """Scrub the event's texts and pseudonymise its identifiers."""
        ...


class PseudonymisingAnonymiser:
    """Pseudonymises user ids with HMAC-SHA256 under the keyring's current key."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        # Users post many events; the HMAC of a recent id is reused.
        self._cache: dict[str, str] = {}

    def anonymise(self, event: Event) -> Anonymised:
        """Replace the user id by its pseudonym; texts pass unchanged."""
        pseudonym = self._cache.get(event.user_id)
        if pseudonym is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            pseudonym = self._cache[event.user_id] = self.keyring.pseudonym(event.user_id)
        return Anonymised(event=event, user_pseudonym=pseudonym, key_version=self.keyring.current)
