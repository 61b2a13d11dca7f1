"""What every detector family shares: the kinds and their placeholders, a finding, the text
under scrutiny with the cheap facts the gates share (``Probe``), and the tests that tell a
machine-made secret from words and placeholders."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

PII_KINDS = ("email", "phone", "card", "iban", "ip", "ssn", "url_credentials")
"""Kinds of personal data, each replaced by ``<KIND>`` in upper case."""

SECRET_KINDS = (
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "slack_webhook",
    "stripe_key",
    "openai_key",
    "anthropic_key",
    "google_api_key",
    "jwt",
    "private_key",
    "password",
)
"""Kinds of secrets, each replaced by ``<SECRET:kind>``."""


def placeholder(kind: str) -> str:
    """The text that replaces a value of ``kind``."""
    return f"<{kind.upper()}>" if kind in PII_KINDS else f"<SECRET:{kind}>"


PLACEHOLDERS = {kind: placeholder(kind) for kind in PII_KINDS + SECRET_KINDS}


@dataclass(frozen=True, slots=True)
class Finding:
    """One value to remove: ``text[start:end]`` is replaced by the placeholder of ``kind``."""

    start: int
    end: int
    kind: str


# --- Telling secrets from words ----------------------------------------------------------------

_WORDS = re.compile(r"[A-Za-z]+(?:[._/-]+[A-Za-z]+)+")
_CAMEL_WORDS = re.compile(r"[A-Za-z][a-z]*(?:[A-Z]{1,3}[a-z]{2,})*[A-Z]{0,3}")


def entropy(value: str) -> float:
    """Shannon entropy of the value's characters, in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def char_classes(value: str) -> int:
    """How many of lower case, upper case, digits and symbols the value uses."""
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def looks_random(value: str, *, min_length: int = 12) -> bool:
    """True for a machine-made token: long, mixed characters, high entropy, no words."""
    if len(value) < min_length or any(c.isspace() for c in value):
        return False
    if _WORDS.fullmatch(value):
        return False  # "settings.SECRET_KEY", "bert-base-uncased": words, however mixed
    classes = char_classes(value)
    if classes < 2:
        return False
    if classes < 3 and not any(c.isdigit() for c in value):
        # Letters only: random if long and mixed, never if made of words ("MyFancyName").
        if len(value) < 16 or _CAMEL_WORDS.fullmatch(value):
            return False
    # Random strings over 16+ symbols reach ~3.5 bits per character by length 16; words and
    # repeated patterns ("aaaa1111", "abcabc123") stay well below.
    return entropy(value) >= min(3.0, math.log2(len(value)) - 0.7)


_PLACEHOLDER_VALUE = re.compile(
    r"""^(?:
        <[^>]*> | \$\{[^}]*\}? | \$\([^)]*\) | \$[A-Z_][A-Z0-9_]* | \{\{.*\}\}? | %\([^)]*\)s
        | %s | \{\w*\} | \*+ | x{3,} | X{3,} | \.{3,} | …
        | (?i:(?:your|my|the|some|insert|enter|put|add)[_ -].*|.*[_-]here|changeme|change[_-]me
             |example\w*|dummy\w*|sample\w*|placeholder\w*|redacted|secret|password|passwd|token
             |none|null|nil|true|false|undefined|todo|fixme|test|foo|bar|baz|qwerty|string|str
             |required|optional|env|environ)
    )$""",
    re.VERBOSE,
)


def is_placeholder(value: str) -> bool:
    """True for values that stand for a secret without being one (templates, env references)."""
    return _PLACEHOLDER_VALUE.match(value) is not None


def is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


# --- The text under scrutiny ---------------------------------------------------------------------

# ASCII digits only, here and in the detectors: PREFILTER must hold for Rust's regex too.
DIGIT_RUN = re.compile(r"\d(?:[ ().-]{0,3}\d){6}", re.ASCII)


class Probe:
    """A text and the cheap facts about it that the detectors' gates share (computed once)."""

    __slots__ = ("_facts", "lower", "text", "vendors")

    def __init__(self, text: str, token_literals: Sequence[tuple[str, str]]) -> None:
        """``token_literals``: ``(literal, kind)`` of every vendor token (the secrets family's
        ``TOKEN_LITERALS``, passed in since that family builds on this module)."""
        self.text = text
        lower = text.lower()
        # Lower-casing may change the length of a few characters ("İ"); offsets must hold.
        self.lower = lower if len(lower) == len(text) else None
        self._facts: dict[str, bool] = {}
        # The vendor tokens the text may hold: one pass over all their literals.
        self.vendors: set[str] = {kind for literal, kind in token_literals if literal in text}

    def has(self, literals: tuple[str, ...]) -> bool:
        """True if the text contains one of the literals."""
        return any(literal in self.text for literal in literals)

    def has_folded(self, literals: tuple[str, ...]) -> bool:
        """True if the text contains one of the (lower-case) literals, in any case."""
        folded = self.lower if self.lower is not None else self.text.lower()
        return any(literal in folded for literal in literals)

    def matches(self, name: str, pattern: re.Pattern[str]) -> bool:
        """True if the pattern occurs in the text (remembered under ``name``)."""
        fact = self._facts.get(name)
        if fact is None:
            fact = self._facts[name] = pattern.search(self.text) is not None
        return fact
