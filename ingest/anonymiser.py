"""The anonymiser interface the ingest pipeline calls on every batch before anything lands.

An anonymiser works on a whole micro-batch as a polars frame of lake columns that still holds
the raw ``user_id``: it returns the frame with every text scrubbed, ``user_pseudonym`` and
``pseudonym_key_version`` filled, ``scrubbed`` reporting what was removed (kinds and counts,
never values), and ``user_id`` gone. Working on columns lets detectors pre-filter whole batches
natively before any per-value Python work.

``PseudonymisingAnonymiser`` pseudonymises user ids and scrubs nothing (a building block, and the
benchmarks' baseline); ``ingest.scrubbing.ScrubbingAnonymiser``, the one the platform runs, adds
the PII and secret detectors of ``privacy.detectors`` (and person names when a model is
configured, ``privacy.detectors.names``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from privacy.keys import Keyring

if TYPE_CHECKING:
    import polars as pl

TEXT_COLUMNS = ("prompt", "response", "copy_text", "edited_text", "rating_reason")
"""Lake columns holding free text (``prompt`` holds it in each message's ``content``)."""

STRUCTURED_COLUMNS = ("metadata", "prompt_structure")
"""Lake columns holding texts inside structure: ``metadata``'s string values (its keys are
identifiers the client chose, kept), and in ``prompt_structure`` the text parts, image URLs and
tool call arguments (texts) and the tool call ids, function names and tool call ids answered
(identifiers, as in ``IDENTIFIER_COLUMNS``)."""

IDENTIFIER_COLUMNS = (
    "conversation_id", "response_id", "parent_id", "new_response_id", "response_a_id",
    "response_b_id", "app_name", "app_version", "consent_policy_version", "model_id",
    "model_version",
)  # fmt: skip
"""Lake columns holding an identifier or a label the client chose (and ``prompt``'s
``response_id``s): kept as sent unless they hold what the scrubber finds in texts, in which case
they are replaced whole by a keyed pseudonym (``Keyring.identifier``), the same for the same
value, so that joins on them still hold."""


def scrubbed_type() -> Any:
    """Polars type of the ``scrubbed`` report column: a list of ``{kind, count}``."""
    import polars as pl

    return pl.List(pl.Struct({"kind": pl.String, "count": pl.Int32}))


class Anonymiser(Protocol):
    """Turns a batch into one that identifies nobody and leaks no secret."""

    def anonymise(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Scrub the texts and replace ``user_id`` by its pseudonym."""
        ...


class PseudonymisingAnonymiser:
    """Pseudonymises user ids with HMAC-SHA256 under the keyring's current key."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        # Users post many events; the HMAC of a recent id is reused.
        self._cache: dict[str, str] = {}

    def pseudonym(self, user_id: str) -> str:
        """The current pseudonym of a raw user id."""
        pseudonym = self._cache.get(user_id)
        if pseudonym is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            pseudonym = self._cache[user_id] = self.keyring.pseudonym(user_id)
        return pseudonym

    def anonymise(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Replace ``user_id`` by its pseudonym; texts pass unchanged."""
        import polars as pl

        users = frame["user_id"].unique().to_list()
        mapping = {user: self.pseudonym(user) for user in users}
        return frame.drop("user_id").with_columns(
            user_pseudonym=frame["user_id"].replace_strict(mapping, return_dtype=pl.String),
            pseudonym_key_version=pl.lit(self.keyring.current, pl.Int32),
            scrubbed=pl.lit([], scrubbed_type()),
        )
