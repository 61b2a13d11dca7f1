"""Find PII and secrets in free text, and replace each by a typed placeholder.

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
  of the next ones (``_split_tokens``).
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
``"ghp_" in text``...) or one cheap search shared through ``_Probe``, and runs only if it passes;
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

import base64
import ipaddress
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

__all__ = [
    "PII_KINDS",
    "PREFILTER",
    "SECRET_KINDS",
    "Finding",
    "Scrubber",
    "placeholder",
]

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


_PLACEHOLDERS = {kind: placeholder(kind) for kind in PII_KINDS + SECRET_KINDS}


@dataclass(frozen=True, slots=True)
class Finding:
    """One value to remove: ``text[start:end]`` is replaced by the placeholder of ``kind``."""

    start: int
    end: int
    kind: str


# --- Telling secrets from words ----------------------------------------------------------------

_WORDS = re.compile(r"[A-Za-z]+(?:[._/-]+[A-Za-z]+)+")
_CAMEL_WORDS = re.compile(r"[A-Za-z][a-z]*(?:[A-Z]{1,3}[a-z]{2,})*[A-Z]{0,3}")


def _entropy(value: str) -> float:
    """Shannon entropy of the value's characters, in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _classes(value: str) -> int:
    """How many of lower case, upper case, digits and symbols the value uses."""
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def _looks_random(value: str, *, min_length: int = 12) -> bool:
    """True for a machine-made token: long, mixed characters, high entropy, no words."""
    if len(value) < min_length or any(c.isspace() for c in value):
        return False
    if _WORDS.fullmatch(value):
        return False  # "settings.SECRET_KEY", "bert-base-uncased": words, however mixed
    classes = _classes(value)
    if classes < 2:
        return False
    if classes < 3 and not any(c.isdigit() for c in value):
        # Letters only: random if long and mixed, never if made of words ("MyFancyName").
        if len(value) < 16 or _CAMEL_WORDS.fullmatch(value):
            return False
    # Random strings over 16+ symbols reach ~3.5 bits per character by length 16; words and
    # repeated patterns ("aaaa1111", "abcabc123") stay well below.
    return _entropy(value) >= min(3.0, math.log2(len(value)) - 0.7)


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


def _is_placeholder(value: str) -> bool:
    """True for values that stand for a secret without being one (templates, env references)."""
    return _PLACEHOLDER_VALUE.match(value) is not None


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


# --- The text under scrutiny -----------------------------------------------------------------


# ASCII digits only, here and in the detectors: PREFILTER must hold for Rust's regex too.
_DIGIT_RUN = re.compile(r"\d(?:[ ().-]{0,3}\d){6}", re.ASCII)
_IPV4_HINT = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}", re.ASCII)
_IPV6_HINT = re.compile(r"[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:")
_IBAN_HINT = re.compile(r"[A-Z]{2}\d{2}", re.ASCII)
_BASE64_40 = re.compile(r"[A-Za-z0-9/+]{40}")


class _Probe:
    """A text and the cheap facts about it that the detectors' gates share (computed once)."""

    __slots__ = ("_facts", "lower", "text", "vendors")

    def __init__(self, text: str) -> None:
        self.text = text
        lower = text.lower()
        # Lower-casing may change the length of a few characters ("İ"); offsets must hold.
        self.lower = lower if len(lower) == len(text) else None
        self._facts: dict[str, bool] = {}
        # The vendor tokens the text may hold: one pass over all their literals.
        self.vendors: set[str] = {kind for literal, kind in _TOKEN_LITERALS if literal in text}

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


# --- Vendor tokens ---------------------------------------------------------------------------

# (kind, literals one of which every such token contains, pattern)
_TOKEN_RULES = (
    ("private_key", ("PRIVATE KEY",), r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"),
    ("jwt", ("eyJ",), r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*"),
    (
        "aws_access_key",
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",
    ),
    (
        "github_token",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        r"gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{50,251}",
    ),
    (
        "gitlab_token",
        tuple(
            "glpat- gldt- glrt- glptt- glcbt- gloas- glsoat- glimt- glagent- glffct- glft- glwt- "
            "glcf- GR1348941".split()
        ),
        r"gl(?:pat|dt|rt|ptt|cbt|oas|soat|imt|agent|ffct|ft|wt|cf)-[A-Za-z0-9_-]{20,}"
        r"(?:\.[A-Za-z0-9_-]+)*|GR1348941[A-Za-z0-9_-]{20,}",
    ),
    (
        "slack_webhook",
        ("hooks.slack.com",),
        r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{16,}",
    ),
    (
        "slack_token",
        ("xox", "xapp-"),
        r"xox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{20,}",
    ),
    (
        "stripe_key",
        ("_live_", "_test_", "whsec_"),
        r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}|whsec_[A-Za-z0-9]{24,}",
    ),
    ("anthropic_key", ("sk-ant-",), r"sk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_-]{20,}"),
    ("openai_key", ("sk-",), r"sk-(?!ant-)(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{20,}"),
    ("google_api_key", ("AIza",), r"AIza[0-9A-Za-z_-]{35}"),
)
_TOKEN_LITERALS = tuple(
    (literal, kind) for kind, literals, _ in _TOKEN_RULES for literal in literals
)
_PEM_END = re.compile(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----")
# One more line of a block cut off before its END line: base64 or a header ("Proc-Type: ..."),
# after a newline or the two characters "\n" of a JSON string.
_PEM_LINE = re.compile(r"(?:\r?\n|\\n)(?:[A-Za-z0-9+/=]{8,}|[A-Za-z-]+: [^\n\\]*)")


def _token_finder(kind: str, pattern: str) -> Callable[[_Probe], Iterator[Finding]]:
    """The detector of one vendor's tokens."""
    compiled = re.compile(pattern)

    def find(probe: _Probe) -> Iterator[Finding]:
        text = probe.text
        for match in compiled.finditer(text):
            start, end = match.span()
            if kind == "private_key":
                close = _PEM_END.search(text, end, end + 20_000)
                if close is not None:
                    end = close.end()
                else:  # cut off: remove the key lines that follow
                    while (line := _PEM_LINE.match(text, end)) is not None:
                        end = line.end()
                yield Finding(start, end, kind)
                continue
            while text[end - 1] in "-.":  # tokens never end in "-" or ".", sentences do
                end -= 1
            before = text[start - 1] if start else " "
            after = text[end] if end < len(text) else " "
            if _is_word_char(before) or _is_word_char(after):
                continue  # part of a longer word: "xAKIA...", an identifier
            if kind == "openai_key" and not _openai_body(text[start + 3 : end]):
                continue
            yield Finding(start, end, kind)

    return find


def _openai_body(body: str) -> bool:
    """True if what follows ``sk-`` is a key: "sk-learn-..." and CSS class names are none."""
    if body.startswith(("proj-", "svcacct-", "admin-")) or "T3BlbkFJ" in body:
        return True
    return len(body) >= 32 and _looks_random(body)


# Tokens broken across lines, as a wrapped terminal or an editor pastes them: the vendor's prefix
# and the start of the body end a line, and the body goes on at the start of the next one (after
# a newline, CRLF or the two characters "\n" of a JSON string, and maybe indentation). Per kind:
# the prefix and the body's characters (as loose as the vendor's pattern: the joined token must
# match that pattern). The prefix itself must be whole on the first line.
_SPLIT_RULES = {
    "aws_access_key": (r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)", "A-Z0-9"),
    "github_token": (r"(?:gh[pousr]_|github_pat_)", "A-Za-z0-9_"),
    "gitlab_token": (
        r"(?:gl(?:pat|dt|rt|ptt|cbt|oas|soat|imt|agent|ffct|ft|wt|cf)-|GR1348941)",
        "A-Za-z0-9_.-",
    ),
    "slack_token": (r"(?:xox[a-z](?:\.xox[a-z])?-|xapp-)", "A-Za-z0-9-"),
    "slack_webhook": (r"https?://hooks\.slack\.com/", "A-Za-z0-9_/+-"),
    "stripe_key": (r"(?:(?:sk|rk)_(?:live|test)_|whsec_)", "A-Za-z0-9"),
    "anthropic_key": (r"sk-ant-(?:api|admin|oat|sid)\d{2}-", "A-Za-z0-9_-"),
    "openai_key": (r"sk-(?!ant-)", "A-Za-z0-9_-"),
    "google_api_key": (r"AIza", "0-9A-Za-z_-"),
    "jwt": (r"eyJ", "A-Za-z0-9_.-"),
}
_LINE_BREAK = r"\r?\n|\\r\\n|\\n"
_SPLIT_HEADS = {
    kind: re.compile(rf"{prefix}[{body}]*+(?={_LINE_BREAK})")
    for kind, (prefix, body) in _SPLIT_RULES.items()
}
_SPLIT_BODIES = {kind: re.compile(rf"[{body}]+") for kind, (_, body) in _SPLIT_RULES.items()}
_TOKEN_PATTERNS = {kind: re.compile(pattern) for kind, _, pattern in _TOKEN_RULES}
_VENDOR_LITERALS = tuple(literal for literal, _ in _TOKEN_LITERALS)
_CONTINUATION = re.compile(rf"(?:{_LINE_BREAK})[ \t]*")
_MAX_LINES = 5


def _split_tokens(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    for kind in probe.vendors:
        head_pattern = _SPLIT_HEADS.get(kind)
        if head_pattern is None:
            continue
        for head in head_pattern.finditer(text):
            start = head.start()
            if start and _is_word_char(text[start - 1]):
                continue
            end = _split_token_end(text, kind, head.group(), head.end())
            if end is not None:
                yield Finding(start, end, kind)


def _split_token_end(text: str, kind: str, value: str, end: int) -> int | None:
    """Where a token whose first line is ``value`` (ending at ``end``) ends, if it goes on."""
    full, body = _TOKEN_PATTERNS[kind], _SPLIT_BODIES[kind]
    found = None
    for _ in range(_MAX_LINES):
        gap = _CONTINUATION.match(text, end)
        part = body.match(text, gap.end()) if gap is not None else None
        if part is None:
            break
        following = text[part.end()] if part.end() < len(text) else " "
        piece = part.group()
        if _is_word_char(following) or following in "=:(":
            break  # the next line is code of its own: "AWS_REGION=eu-west-1", "url: ..."
        if piece.startswith(_VENDOR_LITERALS):
            break  # the next token of a list
        if full.fullmatch(value) and not _machine_made(piece):
            break  # the token was whole; a word follows on the next line
        value, end = value + piece, part.end()
        # The longest reading that is a token: the line after it may be a date or a number.
        if full.fullmatch(value) and (kind != "openai_key" or _openai_body(value[3:])):
            found = end
    if found is None:
        return None
    while text[found - 1] in "-.":  # tokens never end in "-" or ".", sentences do
        found -= 1
    return found


def _machine_made(piece: str) -> bool:
    """True if the start of a line reads as the rest of a token, not as a word ("Thanks", "OK")."""
    if any(c.isdigit() or c in "_-" for c in piece):
        return True
    return any(c.isupper() for c in piece[1:]) and any(c.islower() for c in piece)


# --- AWS secret keys ---------------------------------------------------------------------------

_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}")
_AWS_CONTEXT = re.compile(r"(?i)aws|secret.?access|credential|AKIA|ASIA")
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+")


def _aws_secret_keys(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _AWS_SECRET.finditer(text):
        start, end = match.span()
        if (start and text[start - 1] in _BASE64_CHARS) or (
            end < len(text) and (text[end] in _BASE64_CHARS or text[end] == "=")
        ):
            continue  # part of a longer base64 run (which may end in "=" padding)
        value = match.group()
        if not _looks_random(value) or _classes(value) < 3:
            continue  # git SHA-1s (hex), paths, long words
        # Forty random base64 characters are an AWS secret key only after words that say so
        # (on its line or the one before: "aws_secret_access_key = ...", "AKIA...,<secret>");
        # elsewhere they are as likely base64 data, or a token under a key of its own.
        previous_line = text.rfind("\n", 0, max(0, text.rfind("\n", 0, start)))
        if _AWS_CONTEXT.search(text, max(previous_line + 1, start - 120), start):
            yield Finding(start, end, "aws_secret_key")
        elif _bare_secret(text, start, end):
            yield Finding(start, end, "aws_secret_key")


# Words (letters of either case, as "Users" or "API" or "camelCase") then digits, or digits. Written
# as nested words ((?:[A-Z]?[a-z]+|[A-Z]+)+) it meant the same, and backtracked exponentially on
# a long run of capitals that did not match to the end: half the scrubber's time on the
# benchmark's corpus.
_PATH_SEGMENT = re.compile(r"[A-Za-z]+\d*|\d+")


def _bare_secret(text: str, start: int, end: int) -> bool:
    """True if 40 base64 characters with no key naming them are still a machine-made secret.

    AWS secret keys are pasted alone too. Random base64 mixes all three classes of letters and
    digits and changes class at most characters; git SHAs and hex digests lack upper case,
    identifiers and paths are words, and base64 of text decodes to printable characters.
    """
    value = text[start:end]
    if not (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    ):
        return False
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before in "-_.%\\" or after in "-_%\\":
        return False  # part of a longer identifier, file name or escape
    changes = sum(_char_class(a) != _char_class(b) for a, b in zip(value, value[1:], strict=False))
    if changes < 16 or _entropy(value) < 4.0:
        return False  # words: "CamelCaseIdentifierWithNumbers1234"
    segments = [part for part in re.split(r"[/+]", value) if len(part) >= 4]
    if segments and all(_PATH_SEGMENT.fullmatch(part) for part in segments):
        return False  # a path: "api/v2/Users/12345/Orders"
    try:
        decoded = base64.b64decode(value, validate=True)
    except ValueError:
        return True
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in decoded)
    return printable < len(decoded) - 2  # base64 of text is data, not a key


def _char_class(char: str) -> int:
    return 0 if char.islower() else 1 if char.isupper() else 2 if char.isdigit() else 3


# --- URLs and emails ---------------------------------------------------------------------------

_URL_CREDENTIALS = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]{1,20}://(?P<cred>[^\s:/?#@'\"`<>\[\]]*:[^\s/@'\"`<>]+)@"
    r"(?=[A-Za-z0-9\[])"
)


def _url_credentials(probe: _Probe) -> Iterator[Finding]:
    for match in _URL_CREDENTIALS.finditer(probe.text):
        password = match.group("cred").split(":", 1)[1]
        if _is_placeholder(password):
            continue  # postgres://user:${PASSWORD}@db: a template, not a credential
        yield Finding(match.start("cred"), match.end("cred"), "url_credentials")


_EMAIL_LOCAL = re.compile(r"[\w%+-]+(?:\.[\w%+-]+)*\Z")
# Labels of any script (IDN: bücher.de, 例え.jp); the top-level label is ASCII letters, punycode
# or letters of one other script.
_EMAIL_DOMAIN = re.compile(
    r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?"
    r"(?:\.[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?)*"
    r"\.(?:[A-Za-z]{2,24}|xn--[A-Za-z0-9-]{2,59}|[^\W\d_A-Za-z]{2,24})(?![\w-])"
)
_QUOTED_LOCAL = re.compile(r'"[^"\n\\]{1,64}"\Z')
_IN_URL = re.compile(r"://[^\s/@]*:\Z")
_RETINA = re.compile(
    r"\d+(?:\.\d+)?x\.(?:png|jpe?g|gif|webp|svg|avif|bmp|ico|tiff?)(?![\w-])",
    re.ASCII | re.IGNORECASE,
)
"""logo@2x.png: an image at a pixel density, not an address (a@0x.aa is an address)."""


def _emails(probe: _Probe) -> Iterator[Finding]:
    # Scanning from each "@" outwards is far cheaper than matching a local part at every word.
    text = probe.text
    at = text.find("@")
    while at >= 0:
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        local = _EMAIL_LOCAL.search(text, max(0, at - 128), at) if domain else None
        if domain is not None and local is None and at and text[at - 1] == '"':
            local = _QUOTED_LOCAL.search(text, max(0, at - 66), at)  # "john doe"@example.com
        if domain is not None and local is not None:
            start = local.start()
            if start and text[start - 1] in ".%+-":
                start = -1  # the local part would begin inside another token
            elif local.group() == "git" or _RETINA.match(domain.group()):
                start = -1  # git@github.com:org/repo.git is a remote, logo@2x.png an image
            elif _IN_URL.search(text, max(0, start - 100), start):
                start = -1  # the password and host of scheme://user:password@host
            if start >= 0:
                yield Finding(start, domain.end(), "email")
        at = text.find("@", at + 1)


# Addresses spelled out against harvesters: "jane (at) example (dot) com", "jane [at] example
# [dot] org", "jane at example dot com", "JANE AT EXAMPLE DOT COM", "jane@example dot com".
# A bracketed "(at)" is a deliberate disguise, so any domain with a dot will do; the bare words
# "at" and "dot" are prose as often, so they make an address only with a spelled "dot", a last
# part from a short list of top-level domains and no function word in the address ("look at
# this dot com", "visit us at example dot com" stay).
_SPELLED_LITERALS = ("dot", "at)", "at]", "at}", "at>", "at )", "at ]", "at }", "at >")
_SPELLED_HINT = r"(?i:dot|at ?[)\]}>])"  # the same, for PREFILTER
_BRACKETED = r"[ \t]*[(\[{{<][ \t]?{word}[ \t]?[)\]}}>][ \t]*"
_SPELLED_AT = re.compile(
    _BRACKETED.format(word="(?P<bracket>[Aa][Tt])") + r"|[ \t]+(?P<word>at|AT)[ \t]+|[ \t]*@[ \t]*"
)
_DOT_FORMS = _BRACKETED.format(word="[Dd][Oo][Tt]") + r"|[ \t]+(?:dot|DOT)[ \t]+|\."
_SPELLED_DOT = re.compile(_DOT_FORMS)
_SPELLED_LOCAL = re.compile(rf"[\w%+-]+(?:(?:{_DOT_FORMS})[\w%+-]+)*\Z")
_DOMAIN_LABEL = re.compile(r"[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?")
_ASCII_TLD = re.compile(r"[A-Za-z]{2,24}")
_SPELLED_TLDS = frozenset(
    "com net org edu gov mil info biz io co ai app dev uk de fr es nl ch se dk fi pl pt ie ca au "
    "nz jp cn br ru mx eu".split()
)
_FUNCTION_WORDS = frozenset(
    "a an the this that these those it its me my you your him his her us our them their we they "
    "i he she one some any all each every no not is are was were be been to of in on and or but "
    "so here there where what who how why then now once least most first last end same point "
    "home work works worked working look looks looked looking hosted available located live "
    "lives living found find started online site website page blog docs job intern engineer "
    "up out back go went get got stay stayed noon night midnight lunch dinner".split()
)


def _spelled_emails(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    for at in _SPELLED_AT.finditer(text):
        local = _SPELLED_LOCAL.search(text, max(0, at.start() - 128), at.start())
        if local is None or not local.group():
            continue
        start = local.start()
        if start and (_is_word_char(text[start - 1]) or text[start - 1] in ".%+-<"):
            continue  # inside a longer token, or our own placeholder
        end = _spelled_domain(text, at.end(), at, local.group())
        if end is not None:
            yield Finding(start, end, "email")


def _spelled_domain(text: str, position: int, at: re.Match[str], local: str) -> int | None:
    """Where the spelled-out domain after ``at`` ends, if it makes a plausible address."""
    labels: list[tuple[str, int, bool]] = []  # (label, its end, whether the dot before is spelled)
    label = _DOMAIN_LABEL.match(text, position)
    while label is not None and len(labels) < 10:
        spelled = bool(labels) and text[labels[-1][1] : label.start()] != "."
        labels.append((label.group(), label.end(), spelled))
        dot = _SPELLED_DOT.match(text, label.end())
        label = _DOMAIN_LABEL.match(text, dot.end()) if dot is not None else None
    words = at.group("word") is not None
    if words:
        last_local = re.split(r"\W+", local)[-1]
        if last_local.lower() in _FUNCTION_WORDS:
            return None  # "look at this dot com", "visit us at example dot com"
    for count in range(len(labels), 1, -1):  # the longest plausible address
        tld, end, _ = labels[count - 1]
        if end < len(text) and (_is_word_char(text[end]) or text[end] == "-"):
            continue
        if not _ASCII_TLD.fullmatch(tld):
            continue
        spelled = any(s for _, _, s in labels[1:count])
        if at.group("bracket") is not None:
            return end
        if not spelled:
            continue  # "jane@example.com" is the other detector's, "look at example.com" prose
        if not words:
            return end  # "jane@example dot com"
        names = [name.lower() for name, _, _ in labels[: count - 1]]
        if tld.lower() in _SPELLED_TLDS and _FUNCTION_WORDS.isdisjoint(names):
            return end
    return None


# --- IP addresses ------------------------------------------------------------------------------

_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", re.ASCII)
_VERSION_BEFORE = re.compile(
    r"(?i)(?:(?<![a-z])v|\bver|version|release|build|firmware|[=<>~!]=|[\^~])\s*:?\s*\Z"
)
_VERSION_AFTER = re.compile(
    r"(?i)(?:[^\n]{0,25}\b(?:version|release|build|firmware|changelog)\b"
    r"|\.(?:tgz|tar|zip|whl|jar|gz|deb|rpm|dmg|exe|msi)\b)"
)


def _ipv4(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _IPV4.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        after = text[end : end + 2]
        if _is_word_char(before) or before == "." or after[:1].isalnum() or after[:1] == "_":
            continue  # part of a longer number, word or dotted version ("1.2.3.4.5")
        if after[:1] == "." and after[1:].isdigit():
            continue
        octets = match.group().split(".")
        if any(int(o) > 255 or (o[0] == "0" and len(o) > 1) for o in octets):
            continue
        if octets[0] in ("127", "0", "255") or octets[2:] == ["255", "255"]:
            continue  # loopback, unspecified, broadcast and netmasks identify no one
        if _VERSION_BEFORE.search(text, max(0, start - 12), start):
            continue  # "version 1.2.3.4", "requests==2.31.0.1"
        if _VERSION_AFTER.match(text, end, end + 40):
            continue  # "1.2.3.4 is the firmware version", "pkg-1.2.3.4.tgz"
        if before == ":" and start > 1 and text[start - 2].isalnum():
            continue  # an image or package tag: "ghcr.io/acme/api:2.17.18.88"
        yield Finding(start, end, "ip")


_IPV6 = re.compile(
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?", re.ASCII
)


_HEX_COLON_DIGITS = frozenset("0123456789abcdefABCDEF:")


def _ipv6(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _IPV6.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if _is_word_char(before) or before in ":." or _is_word_char(after):
            continue
        if after in ":." and end + 1 < len(text) and (text[end + 1] in _HEX_COLON_DIGITS):
            continue  # a longer run of hex groups, or an IPv4 tail that does not fit
        value = match.group()
        # C++'s cafe::beef and MAC addresses are hex with colons too; addresses carry digits.
        if not any(c.isdigit() for c in value):
            continue
        if value.endswith(":") and (not value.endswith("::") or value.endswith(":::")):
            value, end = value[:-1], end - 1  # "at 2001:db8::1: refused": punctuation
        try:
            address = ipaddress.IPv6Address(value)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified:
            continue
        yield Finding(start, end, "ip")


# --- Numbers with a checksum or a fixed shape ----------------------------------------------------

_SSN = re.compile(r"\d{3}([- ])\d{2}\1\d{4}", re.ASCII)
_COUNTRY_CODE = re.compile(r"\+\d{1,3}[ .-]?\Z")
_SSN_BARE = re.compile(
    r"\b(?:ssn|social security(?: number| no\.?)?)\b\W{0,4}(?P<value>\d{9})(?!\w)", re.ASCII
)


def _valid_ssn(digits: str) -> bool:
    """True if area, group and serial are ones the SSA issues."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ssns(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _SSN.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if _is_word_char(before) or before == "-" or _is_word_char(after) or after == "-":
            continue
        if not _valid_ssn(match.group().replace(match.group(1), "")):
            continue
        if _COUNTRY_CODE.search(text, max(0, start - 6), start):
            continue  # "+81 146-34-1098" is a phone number
        yield Finding(start, end, "ssn")
    if probe.lower is not None and probe.has_folded(("ssn", "social security")):
        for match in _SSN_BARE.finditer(probe.lower):
            if _valid_ssn(match.group("value")):
                yield Finding(match.start("value"), match.end("value"), "ssn")


_CARD = re.compile(
    r"\d{4}(?P<s1>[ -]?)\d{4}(?P=s1)\d{4}(?P=s1)\d{1,4}(?:(?P=s1)\d{1,3})?"  # 4-4-4-4(-3)
    r"|\d{4}(?P<s2>[ -]?)\d{6}(?P=s2)\d{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r"|\d{13,19}",
    re.ASCII,
)
# Issuer prefixes of the card networks (Visa, Mastercard, Amex, Discover, JCB, Diners,
# UnionPay, Maestro; 2131 and 1800 are JCB's old 15-digit ranges): a Luhn-valid id that starts
# elsewhere ("1767...", a timestamp in milliseconds) is no card.
_CARD_PREFIX = re.compile(r"4|5[0-5]|2[2-7]|3[0-9]|6[0-9]|2131|1800")


def _cards(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _CARD.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        after = text[end : end + 2]
        if _is_word_char(before) or before in ".,+-":
            continue  # the tail of a decimal, an id, a signed number
        # ("" is in every string: at the end of the text, test the character, not the slice.)
        if (
            after[:1].isalnum()
            or after[:1] in ("_", "-")
            or (after[:1] in (".", ",") and after[1:].isdigit())
        ):
            continue
        digits = match.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn.is_valid(digits):
            yield Finding(start, end, "card")


_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?", re.ASCII)


def _ibans(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _IBAN.finditer(text):
        start = match.start()
        if start and _is_word_char(text[start - 1]):
            continue
        value = match.group()
        # The match may run into a following word ("... 3000 IBAN"): try shorter prefixes.
        compact = value.replace(" ", "")
        positions = [i for i, c in enumerate(value) if c != " "]
        for length in range(len(compact), 14, -1):
            end = start + positions[length - 1] + 1
            if end < len(text) and _is_word_char(text[end]):
                continue
            if stdnum_iban.is_valid(compact[:length]):
                yield Finding(start, end, "iban")
                break


# --- Phone numbers -----------------------------------------------------------------------------

# A phone number is written as a run of digits, spaces, dots, dashes and parentheses, maybe after
# a "+"; which runs are phone numbers is decided by their shape in ``_phone_shape_ok``.
_PHONE = re.compile(r"[+(\d][\d ().-]{5,24}(?<=\d)", re.ASCII)
_EXTENSION = re.compile(r" ?(?:x|ext\.? ?|#)\d{1,6}(?!\w|[.-]\w)")
_PHONE_CONTEXT = re.compile(
    r"(?i)(?:phone\w*|tel|telephone|mobile|cell|call|fax|whatsapp|sms|text me|reach|dial|ring"
    r"|contact|my number|number is|hotline)\b[^\n]{0,25}\Z"
)
_GROUPS = re.compile(r"\d+")
_US_SHAPE = re.compile(
    r"(?:1[ .-])?[2-9]\d\d(?P<sep>[ .-])[2-9]\d\d(?P=sep)\d{4}"
    r"|(?:1[ .-]?)?\([2-9]\d\d\)[ .-]?[2-9]\d\d[ .-]\d{4}"
)
_INTERNATIONAL = re.compile(r"(?:\+|00)[1-9]")
_DOTTED = re.compile(r"\d{2}(?:\.\d{2}){4}|(?:1\.)?\d{3}\.\d{3}\.\d{4}|0\d{1,4}(?:\.\d{2,4}){2,3}")
# Group sizes that only phone numbers take (Spain's 3-2-2-2, Brazil's 2-4-4 and 2-5-4, Italy's
# 3-3-4 and 3-4-4); 3-3-3 is also how some write millions, so it must not end in "000".
_PHONE_GROUPS = {(3, 2, 2, 2), (2, 4, 4), (2, 5, 4), (3, 3, 2, 2), (3, 4, 4), (3, 3, 4)}
# National numbers are tried in these regions, the most likely first.
_REGIONS = ("US", "GB", "DE", "FR", "IT", "ES", "NL", "BE", "CH", "AT", "IE", "AU", "IN", "BR",
            "JP", "SE", "PL", "PT", "MX")  # fmt: skip


def _valid_somewhere(number: str) -> bool:
    """True if ``phonenumbers`` takes the national number as valid in one of ``_REGIONS``."""
    for region in _REGIONS:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(number, region)):
                return True
        except phonenumbers.NumberParseException:
            return False
    return False


def _possible(number: str, region: str | None) -> bool:
    """True if the number has a possible length (for its country code, or in ``region``)."""
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(number, region))
    except phonenumbers.NumberParseException:
        return False


def _phone_shape_ok(number: str, text: str, start: int) -> bool:
    """True if a run of digits and separators is written, and valid, as a phone number."""
    digits = sum(c.isdigit() for c in number)
    if not 7 <= digits <= 15:
        return False
    if _INTERNATIONAL.match(number):
        # An explicit country code makes the intent plain: only the length has to fit (test and
        # Faker numbers are often unassigned, and still someone's number as written).
        international = "+" + number[2:] if number.startswith("00") else number
        return digits >= 8 and _possible(international, None)
    if number.startswith("("):
        return digits >= 9 and (_possible(number, "US") or _valid_somewhere(number))
    if _US_SHAPE.fullmatch(number):
        return True  # NANP 3-3-4: area and exchange codes never start with 0 or 1
    if "." in number and not _DOTTED.fullmatch(number):
        return False  # dotted runs are versions, dates and IPs unless shaped like a phone
    groups = tuple(len(g) for g in _GROUPS.findall(number))
    if digits <= 12 and "(" not in number:
        # A national trunk "0" (UK 020 7946 0958, DE 030 12345678, FR 04 15 39 15 00, JP
        # 080-9141-7776), or a national grouping, and valid in some country.
        if number.startswith("0") and digits >= 9 and (len(groups) > 1 or digits >= 10):
            return _valid_somewhere(number)
        if groups in _PHONE_GROUPS or (groups == (3, 3, 3) and not number.endswith("000")):
            return _valid_somewhere(number)
    # Anything else (a bare digit run, thousands-like groups) only after "phone", "call me"...
    if not _PHONE_CONTEXT.search(text, max(0, start - 40), start):
        return False
    return _valid_somewhere(number)


def _phones(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _PHONE.finditer(text):
        start, end = match.span()
        while text[start] in "+(" and not text[start + 1].isdigit():  # "((503) 556-2335)"
            start += 1
        before = text[start - 1] if start else " "
        if _is_word_char(before) or before in "+/.-":
            continue  # inside a word, a path, a version or a longer number
        extension = _EXTENSION.match(text, end)
        after = extension.end() if extension else end
        following = text[after : after + 2]
        if (
            following[:1].isalnum()
            or following[:1] in ("_", "+")
            or (following[:1] in ("-", ".") and following[1:].isalnum())
        ):
            continue  # glued to a word or another number: an id, a UUID, a hash, a version
        found = _phone_in_run(text, start, end, after)
        if found is not None:
            yield found


def _phone_in_run(text: str, start: int, end: int, after: int) -> Finding | None:
    """The phone number a run of digits and separators is, or holds at one of its ends.

    A run may have swallowed a neighbour ("retries: 3 (201) 555-0000", "call 020 7946 0958
    2 times"): then the number is a part that starts or ends at a space.
    """
    spaces = [i for i in range(start + 1, end - 1) if text[i] == " "]
    spans = [(start, end)]
    spans += [(i + 1, end) for i in spaces if text[i + 1] in "0123456789(+"]
    spans += [(start, i) for i in reversed(spaces) if text[i - 1] in "0123456789)"]
    spans.sort(key=lambda span: span[0] - span[1])  # the longest reading first
    for first, last in spans:
        number = text[first:last]
        if number[0] == "(" and ")" not in number:
            number, first = number[1:], first + 1
        dropped = text[start:first] + text[last:end]
        if sum(c.isdigit() for c in dropped) > 2 and not (
            number[0] in "+(" or _US_SHAPE.fullmatch(number)
        ):
            continue  # "3786 0677 1276 3977" holds no phone number, it is a (bad) card number
        if _phone_shape_ok(number, text, first):
            return Finding(first, after if last == end else last, "phone")
    return None


# --- Assignments of secrets ------------------------------------------------------------------

# Key names whose value is a secret. Finding the stem first and the whole key afterwards keeps
# the pattern cheap; the key must then *end* in one of the names in ``_key_class`` ("tokenizer"
# and "max_tokens" contain a stem but name no secret). The stems are matched in lower case.
_KEY_STEMS = (
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_.-]?key|apikey|access[_.-]?key"
    r"|auth[_.-]?key|private[_.-]?key|credentials?|bearer|auth|basic"
)
_KEY_LITERALS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "bearer", "basic")
_ASSIGNMENT_PATTERN = (
    rf"(?:{_KEY_STEMS})[\w.-]*+"
    r"(?P<sep>"
    r"[ \t]*:[ \t]*[A-Za-z_][\w.\[\]|, ]{0,40}?[ \t]*=(?![=>])[ \t]*"  # key: type = value
    r"|[\"'`]?[ \t]*"
    r"(?:(?<![=!<>])=(?![=>])|(?:\?\?|\|\||&&|:)=|=>|:(?!:)|[ \t](?:is|was)[ \t]*:?)[ \t]*"
    r"|[\"'][ \t]*,[ \t]*(?=[\"'])"  # os.Setenv("DB_PASSWORD", "...")
    r"|[ \t]+(?=\S)"  # --password hunter2, Bearer abc...
    r")"
    r"(?:\"(?P<dq>[^\"\n]{1,300})\"|'(?P<sq>[^'\n]{1,300})'|`(?P<bq>[^`\n]{1,300})`"
    r"|(?P<bare>[^\s\"'`;,{}\[\]<>]++)(?!\[))"
)
_ASSIGNMENT = re.compile(_ASSIGNMENT_PATTERN)  # on lower-cased text: ~7 times faster than (?i)
_ASSIGNMENT_ANY_CASE = re.compile(_ASSIGNMENT_PATTERN, re.IGNORECASE)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_STRONG_KEYS = ("password", "passwd", "pwd", "passphrase", "pass", "secret")
_WEAK_KEYS = (
    "token", "api_key", "apikey", "access_key", "auth_key", "private_key", "secret_key",
    "credential", "credentials", "bearer", "auth", "key_secret", "basic",
)  # fmt: skip
# Keys that may take their value after a plain space: command-line flags and HTTP auth schemes.
_SPACED_KEYS = ("bearer", "basic", "token")
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_ENV_KEY = re.compile(r"[A-Z][A-Z0-9_]*")
_CALL = re.compile(r"[\w.$]+\((?:.*\))?$")
_AUTH_BEFORE = re.compile(r"(?i)authori[sz]ation\W*\Z")
_DIGEST = re.compile(r"(?i)(?:sha\d*|md5|blake2\w*)[:-][0-9a-z+/=]{16,}")
_PATH = re.compile(r"(?:~|\.{1,2})?(?:/[\w.@-]+)+/?")


def _key_name(text: str, stem_start: int, sep_start: int) -> str:
    """The whole key around a stem: back to the start of the identifier, up to the separator."""
    start = stem_start
    while start > 0 and (_is_word_char(text[start - 1]) or text[start - 1] in ".-"):
        start -= 1
    return text[start:sep_start].strip("\"'`")


def _key_class(key: str) -> str | None:
    """``strong`` (a password: any literal counts), ``weak`` (a token: must look random) or None."""
    name = _CAMEL.sub("_", key).lower().replace("-", "_").replace(".", "_").strip("_")
    name = name.rstrip("0123456789").rstrip("_")
    parts = name.split("_")
    if parts[-1] in _STRONG_KEYS or name.endswith(("password", "passwd", "passphrase")):
        return "strong"
    last_two = "_".join(parts[-2:])
    if parts[-1] in _WEAK_KEYS or last_two in _WEAK_KEYS or name.endswith("apikey"):
        return "weak"
    return None


def _secret_value(value: str, strength: str) -> bool:
    """True if a literal assigned to a key of that strength is a secret worth removing."""
    if _is_placeholder(value) or value.startswith(("http://", "https://")):
        return False
    if _PATH.fullmatch(value):
        return False  # SECRET_KEY_FILE = "/run/secrets/key": where the secret is, not what
    if strength == "weak" and _DIGEST.fullmatch(value):
        return False  # "sha256:e3b0...": a digest names content, it opens nothing
    if strength == "strong":  # a password: anything but a word or a number
        return len(value) >= 6 and (_classes(value) >= 2 or _looks_random(value))
    return _looks_random(value, min_length=12)


def _yaml_line(text: str, key_start: int, value_end: int) -> bool:
    """True if ``key: value`` fills its line, as in YAML (a JS object's line ends in a comma)."""
    line_start = text.rfind("\n", 0, key_start) + 1
    line_end = text.find("\n", value_end)
    before = text[line_start:key_start]
    after = text[value_end : line_end if line_end >= 0 else None]
    return not before.strip(" \t-") and not after.strip()


def _assignments(probe: _Probe) -> Iterator[Finding]:
    text = probe.text
    scanned, pattern = (
        (probe.lower, _ASSIGNMENT) if probe.lower is not None else (text, _ASSIGNMENT_ANY_CASE)
    )
    position = 0
    while (match := pattern.search(scanned, position)) is not None:
        # A rejected match may hide the next key in what it took for a value
        # ("Authorization: Bearer <token>"), so the search goes on from the separator.
        position = match.start("sep") + 1
        found = _assignment(text, match)
        if found is not None:
            position = found.end
            yield found


def _assignment(text: str, match: re.Match[str]) -> Finding | None:
    """The secret value of one ``key = value`` match, if the key names a secret and it is one.

    ``match`` may come from the lower-cased text: only its offsets are used, with ``text``.
    """
    key = _key_name(text, match.start(), match.start("sep"))
    if text.startswith("<SECRET:", match.start("sep") - len(key) - 1):
        return None  # our own placeholder: scrubbing twice changes nothing
    strength = _key_class(key)
    if strength is None:
        return None
    sep = text[match.start("sep") : match.end("sep")]
    group = next(g for g in ("dq", "sq", "bq", "bare") if match.start(g) >= 0)
    start, end = match.span(group)
    value = text[start:end]
    prose = " is" in sep.lower() or " was" in sep.lower()
    if not sep.strip():  # "--password hunter2", "Bearer abc...": flags and auth schemes
        if not (key.startswith("-") or key.lower() in _SPACED_KEYS):
            return None
        # "the bearer of bad news": an auth scheme is capitalised or follows "Authorization".
        after_header = _AUTH_BEFORE.search(text, max(0, match.start() - 30), match.start())
        if key.lower() in ("bearer", "basic") and not (key[0].isupper() or after_header):
            return None
    if group == "bare":
        key_start = match.start("sep") - len(key)
        if key_start and text[key_start - 1] == "/":
            return None  # "ghcr.io/acme/pass:v3.0.1": a path and a tag, no assignment
        if key_start > 0 and text[key_start - 1] in "?&" and "&" in value:
            cut = value.index("&")  # a URL's query: the next parameter is not the value
            end -= len(value) - cut
            value = value[:cut]
        if prose or not sep.strip():
            stripped = value.rstrip(".!?),")  # the sentence ends, the value does not
            end -= len(value) - len(stripped)
            value = stripped
        if not value or _NUMBER.fullmatch(value) or _CALL.match(value):
            return None  # "token = get_token()", "password = getpass.getpass("
        # A bare identifier is a variable in code ("password = user_password") but a literal
        # in prose, after a command-line flag, in .env files, shell and docker flags, where
        # keys are upper case ("POSTGRES_PASSWORD=iK698Two"), and as the whole of a YAML line.
        literal = (
            prose
            or key.startswith("-")
            or (sep.strip() in ("=", ":") and _ENV_KEY.fullmatch(key) is not None)
            or (sep.strip() == ":" and _yaml_line(text, key_start, end))
        )
        if not literal and _IDENTIFIER.fullmatch(value):
            if not _looks_random(value, min_length=10):
                return None
    if _secret_value(value, strength):
        return Finding(start, end, "password")
    return None


_XML_SECRET = re.compile(
    r"(?i)<(?P<tag>[\w.-]*(?:password|passwd|secret|token|api[_-]?key))>(?P<value>[^<\s]{4,300})"
    r"</(?P=tag)>"
)


def _xml_secrets(probe: _Probe) -> Iterator[Finding]:
    for match in _XML_SECRET.finditer(probe.text):
        if not _is_placeholder(match.group("value")):
            yield Finding(match.start("value"), match.end("value"), "password")


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
class _Detector:
    find: Callable[[_Probe], Iterator[Finding]]
    priority: int  # the higher wins an overlap
    gate: Callable[[_Probe], bool]  # cheap: False means the detector cannot find anything


def _vendor_gate(kind: str) -> Callable[[_Probe], bool]:
    return lambda probe: kind in probe.vendors


def _digit_gate(probe: _Probe) -> bool:
    return probe.matches("digits", _DIGIT_RUN)


_DETECTORS = (
    *(
        _Detector(_token_finder(kind, pattern), 100, _vendor_gate(kind))
        for kind, _, pattern in _TOKEN_RULES
    ),
    _Detector(_split_tokens, 100, lambda p: bool(p.vendors) and p.has(("\n", "\\n"))),
    _Detector(_url_credentials, 90, lambda p: p.has(("://",))),
    _Detector(_emails, 80, lambda p: p.has(("@",))),
    _Detector(_spelled_emails, 80, lambda p: p.has_folded(_SPELLED_LITERALS)),
    _Detector(_aws_secret_keys, 70, lambda p: p.matches("base64", _BASE64_40)),
    _Detector(_assignments, 60, lambda p: p.has_folded(_KEY_LITERALS)),
    _Detector(_xml_secrets, 60, lambda p: p.has(("</",))),
    _Detector(_ibans, 50, lambda p: p.matches("iban", _IBAN_HINT)),
    _Detector(_cards, 40, _digit_gate),
    _Detector(_ssns, 35, _digit_gate),
    _Detector(_ipv4, 30, lambda p: p.matches("ipv4", _IPV4_HINT)),
    _Detector(_ipv6, 30, lambda p: p.has(("::",)) or p.matches("ipv6", _IPV6_HINT)),
    _Detector(_phones, 20, _digit_gate),
)

# The union of the gates as one pattern for Python's re and Rust's regex alike: a detector runs
# only if its gate passes, so a text this does not match has nothing to remove.
PREFILTER = "|".join(
    (
        *(re.escape(literal) for _, literals, _ in _TOKEN_RULES for literal in literals),
        "://",
        "@",
        "</",
        _SPELLED_HINT,
        _BASE64_40.pattern,
        "(?i:" + "|".join(_KEY_LITERALS) + ")",
        _IBAN_HINT.pattern,
        _DIGIT_RUN.pattern,
        _IPV4_HINT.pattern,
        "::",
        _IPV6_HINT.pattern,
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
        probe = _Probe(text)
        ranked: list[tuple[int, Finding]] = []
        for detector in _DETECTORS:
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
            parts.append(_PLACEHOLDERS[found.kind])
            counts[found.kind] = counts.get(found.kind, 0) + 1
            position = found.end
        parts.append(text[position:])
        return "".join(parts), counts
