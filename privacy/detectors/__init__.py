"""Find PII and secrets in free text, and replace each by a typed placeholder.

The detectors live by family: ``secrets`` (vendor tokens, PEM private keys, AWS secret keys,
credentials in URLs, assigned secrets), ``contact`` (e-mail addresses, IPs, phone numbers),
``numbers`` (cards, IBANs, SSNs), ``names`` (person names, with a model), and what they share in
``common`` (findings, placeholders, the probe, the randomness tests). This module puts them in
one list (``DETECTORS``, with their priorities and gates), builds ``PREFILTER``, and holds the
``Scrubber`` that runs them on a text. The ingest anonymiser (``ingest.scrubbing``) applies it to
every batch; the export gate (``export.quality``) searches published texts with ``RAW_SECRETS``.

Detection is a set of regular expressions, each narrow enough to stand on its own, followed by a
validator where the format carries one:

- *Tokens with a vendor prefix* (AWS ``AKIA...``, GitHub ``ghp_...``, GitLab ``glpat-...``, Slack
  ``xoxb-...`` and webhooks, Stripe ``sk_live_...``/``rk_``/``whsec_`` (``pk_`` keys are public
  by design), OpenAI ``sk-...``, Anthropic ``sk-ant-...``, Google ``AIza...``, JWTs, PEM private
  key blocks): the prefix and the length make them near-certain, so only the loosest (a bare
  ``sk-``) also has to look random. The formats follow the vendors' documentation and the
  patterns of detect-secrets and gitleaks, written out here: those tools scan files, not a
  stream of short texts, and would cost more than the scan itself. A token broken across lines
  (a wrapped terminal) goes whole when its prefix ends a line and its body goes on at the start
  of the next ones (``secrets.split_tokens``).
- *Checksummed numbers*: card numbers must pass Luhn (``stdnum.luhn``) and start with a card
  network's prefix; IBANs must pass ISO 7064 mod 97 and their country's length (``stdnum.iban``).
- *Phone numbers* are the hard case: any run of digits might be one. A run must be written like
  a phone number (a ``+``/``00`` country code, an area code in parentheses, the US 3-3-4 shape,
  a national trunk ``0``, a few national groupings) and ``phonenumbers`` must accept it; a bare
  digit run counts only after a word such as "phone" or "call". Dates, versions, ids and IPs
  never take these shapes.
- *IP addresses* are checked octet by octet and with ``ipaddress``; loopback, unspecified and
  netmask values, and addresses in version-like company (``v1.2.3.4``, ``==1.2.3.4``,
  ``pkg-1.2.3.4.tgz``, "1.2.3.4 is the firmware version") stay.
- *US SSNs* must have a valid area, group and serial; *AWS secret keys* (40 random base64
  characters, no prefix) count after words that name them, and alone only when they look random
  (every class of letters and digits, class changes and entropy, neither a path of words nor
  base64 of text).
- *Disguises*: every detector reads the NFKC-folded text without invisible characters
  (``_folded``), and findings map back to the original characters.
- *Spelled-out addresses* (``jane (at) example (dot) com``, ``jane at example dot com``): a
  bracketed "(at)" with any domain, the bare words only with a spelled "dot", a known top-level
  domain and no function word around them, so prose keeps its "at" and "dot".
- *Credentials in URLs* (``scheme://user:password@host``) lose only the ``user:password`` part,
  so a connection string stays readable.
- *Assignments* (``password = "..."``, ``API_KEY=...``, ``"client_secret": "..."``, ``--password
  ...``, ``Authorization: Bearer ...``) lose only their value, and only if the key names a
  secret and the value is one: a literal (not a call or a variable) that is not a placeholder
  and, unless the key names a password, looks random (length, character classes, entropy).
  Quotes and key names stay, so scrubbed code still parses.

Speed comes from running little: every detector has a gate of substring checks (``"@" in text``,
``"ghp_" in text``...) or one cheap search shared through ``Probe``, and runs only if it passes;
prose with none of the triggers costs a handful of substring searches. Patterns start with a
literal or a character class (boundaries are checked in Python) so ``re`` can skip ahead.
``PREFILTER`` is the union of the gates as one pattern that both Python's ``re`` and Rust's
``regex`` (polars) accept: the anonymiser (``ingest.scrubbing``) runs it natively over whole
columns and looks at the matching rows only.

Overlapping hits are resolved by priority (a GitHub token in a URL's password is a GitHub
token), and each becomes a typed placeholder: ``<EMAIL>``, ``<SECRET:github_token>``... The
report is the count per kind, never a value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from privacy.detectors.common import (
    DIGIT_RUN,
    PII_KINDS,
    PLACEHOLDERS,
    SECRET_KINDS,
    Finding,
    Probe,
    placeholder,
)
from privacy.detectors.contact import (
    IPV4_HINT,
    IPV6_HINT,
    RAW_EMAIL,
    SPELLED_HINT,
    SPELLED_LITERALS,
    emails,
    ipv4,
    ipv6,
    phones,
    spelled_emails,
)
from privacy.detectors.numbers import IBAN_HINT, cards, ibans, ssns
from privacy.detectors.secrets import (
    BASE64_40,
    KEY_LITERALS,
    RAW_TOKENS,
    TOKEN_LITERALS,
    TOKEN_RULES,
    assignments,
    aws_secret_keys,
    split_tokens,
    token_finder,
    url_credentials,
    xml_secrets,
)

__all__ = [
    "DETECTORS",
    "PII_KINDS",
    "PREFILTER",
    "RAW_SECRETS",
    "SECRET_KINDS",
    "Finding",
    "Scrubber",
    "placeholder",
]


RAW_SECRETS = [RAW_EMAIL, *RAW_TOKENS]
"""Raw values no published text may hold, as the export gate (``export.quality``) searches for
them: e-mail addresses and every vendor's token format (``secrets.TOKEN_RULES``, the scrubber's
own table). Patterns, not detectors: polars runs them natively over whole columns, so each reads
alike in Python's ``re`` and Rust's ``regex``, and they go without the scrubber's checks of
context, so a value of a vendor's shape that the scrubber left (judged not to be one, or a text
that was never scrubbed) stops the export instead of being published."""


# Characters that hide a value from the detectors without changing how it reads: invisible ones
# (zero-width spaces and joiners, soft hyphens, direction marks) and the compatibility forms that
# NFKC folds to ASCII (fullwidth "ｕｓｅｒ＠..."). ``PREFILTER`` holds this class,
# so such texts reach ``Scrubber.find``, which detects on a folded view of them.
_INVISIBLE = frozenset(
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\ufeff"
)
_DISGUISE = r"[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\uff01-\uff5e]"


# --- All detectors, their gates, and the prefilter -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Detector:
    """One detector: what it finds, its priority in an overlap, and its cheap gate."""

    find: Callable[[Probe], Iterator[Finding]]
    priority: int  # the higher wins an overlap
    gate: Callable[[Probe], bool]  # cheap: False means the detector cannot find anything


def _vendor_gate(kind: str) -> Callable[[Probe], bool]:
    return lambda probe: kind in probe.vendors


def _digit_gate(probe: Probe) -> bool:
    return probe.matches("digits", DIGIT_RUN)


DETECTORS = (
    *(
        Detector(token_finder(kind, pattern), 100, _vendor_gate(kind))
        for kind, _, pattern in TOKEN_RULES
    ),
    Detector(split_tokens, 100, lambda p: bool(p.vendors) and p.has(("\n", "\\n"))),
    Detector(url_credentials, 90, lambda p: p.has(("://",))),
    Detector(emails, 80, lambda p: p.has(("@",))),
    Detector(spelled_emails, 80, lambda p: p.has_folded(SPELLED_LITERALS)),
    Detector(aws_secret_keys, 70, lambda p: p.matches("base64", BASE64_40)),
    Detector(assignments, 60, lambda p: p.has_folded(KEY_LITERALS)),
    Detector(xml_secrets, 60, lambda p: p.has(("</",))),
    Detector(ibans, 50, lambda p: p.matches("iban", IBAN_HINT)),
    Detector(cards, 40, _digit_gate),
    Detector(ssns, 35, _digit_gate),
    Detector(ipv4, 30, lambda p: p.matches("ipv4", IPV4_HINT)),
    Detector(ipv6, 30, lambda p: p.has(("::",)) or p.matches("ipv6", IPV6_HINT)),
    Detector(phones, 20, _digit_gate),
)
"""Every detector of the structured families (person names need a model, and the anonymiser runs
them apart: ``names.NameDetector``)."""

# The union of the gates as one pattern for Python's re and Rust's regex alike: a detector runs
# only if its gate passes, so a text this does not match has nothing to remove.
PREFILTER = "|".join(
    (
        *(re.escape(literal) for _, literals, _ in TOKEN_RULES for literal in literals),
        "://",
        "@",
        "</",
        SPELLED_HINT,
        BASE64_40.pattern,
        "(?i:" + "|".join(KEY_LITERALS) + ")",
        IBAN_HINT.pattern,
        DIGIT_RUN.pattern,
        IPV4_HINT.pattern,
        "::",
        IPV6_HINT.pattern,
        _DISGUISE,
    )
).replace(r"\d", "[0-9]")  # Rust's \d is any Unicode digit; the gates' is ASCII


def _folded(text: str) -> tuple[str, list[int] | None]:
    """The text as detectors should read it, and where each of its characters came from.

    NFKC-folded and without invisible characters; ``None`` instead of the origins when it is the
    text itself. ``origins[i]`` is the index in ``text`` of the view's character ``i`` (one more
    entry holds ``len(text)``), so a finding on the view replaces the original characters.
    """
    if text.isascii():
        return text, None
    if unicodedata.is_normalized("NFKC", text) and _INVISIBLE.isdisjoint(text):
        return text, None
    parts: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        if char in _INVISIBLE:
            continue
        folded = char if char.isascii() else unicodedata.normalize("NFKC", char)
        parts.append(folded)
        origins.extend([index] * len(folded))
    origins.append(len(text))
    return "".join(parts), origins


class Scrubber:
    """Finds PII and secrets in text and replaces each by a typed placeholder."""

    def find(self, text: str) -> list[Finding]:
        """Every value to remove from ``text``, in order, without overlaps."""
        view, origins = _folded(text)
        found = self._find(view)
        if origins is None:
            return found
        return [Finding(origins[f.start], origins[f.end - 1] + 1, f.kind) for f in found]

    def _find(self, text: str) -> list[Finding]:
        probe = Probe(text, TOKEN_LITERALS)
        ranked: list[tuple[int, Finding]] = []
        for detector in DETECTORS:
            if detector.gate(probe):
                ranked.extend((detector.priority, found) for found in detector.find(probe))
        if not ranked:
            return []
        # The highest priority wins an overlap, then the earlier, then the longer match.
        ranked.sort(key=lambda item: (-item[0], item[1].start, item[1].start - item[1].end))
        kept: list[Finding] = []
        for _, found in ranked:
            if all(found.end <= k.start or found.start >= k.end for k in kept):
                kept.append(found)
        kept.sort(key=lambda f: f.start)
        return kept

    def scrub(self, text: str) -> tuple[str, dict[str, int]]:
        """The text with every finding replaced by its placeholder, and the count per kind."""
        findings = self.find(text)
        if not findings:
            return text, {}
        parts: list[str] = []
        counts: dict[str, int] = {}
        position = 0
        for found in findings:
            parts.append(text[position : found.start])
            parts.append(PLACEHOLDERS[found.kind])
            counts[found.kind] = counts.get(found.kind, 0) + 1
            position = found.end
        parts.append(text[position:])
        return "".join(parts), counts


def fingerprint() -> str:
    """A short hash of the detectors' code (every module of this package): two lakes scrubbed
    under the same fingerprint were scrubbed by the same rules. The rescrub log records it."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.name.encode() + b"\0" + module.read_bytes())
    return digest.hexdigest()[:16]
