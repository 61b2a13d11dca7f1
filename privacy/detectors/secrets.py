"""Secrets: vendor tokens (AWS access keys, GitHub, GitLab, Slack, Stripe, OpenAI, Anthropic,
Google, JWTs), PEM private keys, bare AWS secret keys, credentials in URLs, and secret values
assigned in code, config, command lines and headers."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator

from privacy.detectors.common import (
    Finding,
    Probe,
    char_classes,
    entropy,
    is_placeholder,
    is_word_char,
    looks_random,
)

BASE64_40 = re.compile(r"[A-Za-z0-9/+]{40}")
"""The gate of bare AWS secret keys."""


# --- Vendor tokens ---------------------------------------------------------------------------

# (kind, literals one of which every such token contains, pattern)
TOKEN_RULES = (
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
TOKEN_LITERALS = tuple((literal, kind) for kind, literals, _ in TOKEN_RULES for literal in literals)
_PEM_END = re.compile(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----")
# One more line of a block cut off before its END line: base64 or a header ("Proc-Type: ..."),
# after a newline or the two characters "\n" of a JSON string.
_PEM_LINE = re.compile(r"(?:\r?\n|\\n)(?:[A-Za-z0-9+/=]{8,}|[A-Za-z-]+: [^\n\\]*)")


def token_finder(kind: str, pattern: str) -> Callable[[Probe], Iterator[Finding]]:
    """The detector of one vendor's tokens."""
    compiled = re.compile(pattern)

    def find(probe: Probe) -> Iterator[Finding]:
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
            if is_word_char(before) or is_word_char(after):
                continue  # part of a longer word: "xAKIA...", an identifier
            if kind == "openai_key" and not _openai_body(text[start + 3 : end]):
                continue
            yield Finding(start, end, kind)

    return find


def _openai_body(body: str) -> bool:
    """True if what follows ``sk-`` is a key: "sk-learn-..." and CSS class names are none."""
    if body.startswith(("proj-", "svcacct-", "admin-")) or "T3BlbkFJ" in body:
        return True
    return len(body) >= 32 and looks_random(body)


def _raw_form(kind: str, pattern: str) -> str:
    """A vendor's pattern as the export gate searches published text for it: read alike by
    Python's ``re`` and Rust's ``regex`` (polars), which has no look-around (the one here only
    tells OpenAI keys from Anthropic's, secrets both) and whose ``\\d`` is any Unicode digit; and
    with a word boundary before it in place of the boundary checks ``token_finder`` does in
    Python (not before a PEM header, which starts with dashes)."""
    pattern = re.sub(r"\(\?<?[=!][^()]*\)", "", pattern).replace(r"\d", "[0-9]")
    return f"(?:{pattern})" if kind == "private_key" else rf"\b(?:{pattern})"


RAW_TOKENS = tuple(_raw_form(kind, pattern) for kind, _, pattern in TOKEN_RULES)
"""Every vendor's token format, as the export gate searches for it (``RAW_SECRETS``). Derived from
``TOKEN_RULES`` so that scrubber and gate know the same vendors and formats; the gate does
without the scrubber's judgement on context (what surrounds a token, whether an ``sk-`` body looks
random), so what has a vendor's shape and is still in a text to publish stops the export."""


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
_TOKEN_PATTERNS = {kind: re.compile(pattern) for kind, _, pattern in TOKEN_RULES}
_VENDOR_LITERALS = tuple(literal for literal, _ in TOKEN_LITERALS)
_CONTINUATION = re.compile(rf"(?:{_LINE_BREAK})[ \t]*")
_MAX_LINES = 5


def split_tokens(probe: Probe) -> Iterator[Finding]:
    text = probe.text
    for kind in probe.vendors:
        head_pattern = _SPLIT_HEADS.get(kind)
        if head_pattern is None:
            continue
        for head in head_pattern.finditer(text):
            start = head.start()
            if start and is_word_char(text[start - 1]):
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
        if is_word_char(following) or following in "=:(":
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


def aws_secret_keys(probe: Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _AWS_SECRET.finditer(text):
        start, end = match.span()
        if (start and text[start - 1] in _BASE64_CHARS) or (
            end < len(text) and (text[end] in _BASE64_CHARS or text[end] == "=")
        ):
            continue  # part of a longer base64 run (which may end in "=" padding)
        value = match.group()
        if not looks_random(value) or char_classes(value) < 3:
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
    if changes < 16 or entropy(value) < 4.0:
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


# --- Credentials in URLs -------------------------------------------------------------------------

_URL_CREDENTIALS = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]{1,20}://(?P<cred>[^\s:/?#@'\"`<>\[\]]*:[^\s/@'\"`<>]+)@"
    r"(?=[A-Za-z0-9\[])"
)


def url_credentials(probe: Probe) -> Iterator[Finding]:
    for match in _URL_CREDENTIALS.finditer(probe.text):
        password = match.group("cred").split(":", 1)[1]
        if is_placeholder(password):
            continue  # postgres://user:${PASSWORD}@db: a template, not a credential
        yield Finding(match.start("cred"), match.end("cred"), "url_credentials")


# --- Assignments of secrets ------------------------------------------------------------------

# Key names whose value is a secret. Finding the stem first and the whole key afterwards keeps
# the pattern cheap; the key must then *end* in one of the names in ``_key_class`` ("tokenizer"
# and "max_tokens" contain a stem but name no secret). The stems are matched in lower case.
_KEY_STEMS = (
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_.-]?key|apikey|access[_.-]?key"
    r"|auth[_.-]?key|private[_.-]?key|credentials?|bearer|auth|basic"
)
KEY_LITERALS = ("pass", "pwd", "secret", "token", "key", "auth", "credential", "bearer", "basic")
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
    while start > 0 and (is_word_char(text[start - 1]) or text[start - 1] in ".-"):
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
    if is_placeholder(value) or value.startswith(("http://", "https://")):
        return False
    if _PATH.fullmatch(value):
        return False  # SECRET_KEY_FILE = "/run/secrets/key": where the secret is, not what
    if strength == "weak" and _DIGEST.fullmatch(value):
        return False  # "sha256:e3b0...": a digest names content, it opens nothing
    if strength == "strong":  # a password: anything but a word or a number
        return len(value) >= 6 and (char_classes(value) >= 2 or looks_random(value))
    return looks_random(value, min_length=12)


def _yaml_line(text: str, key_start: int, value_end: int) -> bool:
    """True if ``key: value`` fills its line, as in YAML (a JS object's line ends in a comma)."""
    line_start = text.rfind("\n", 0, key_start) + 1
    line_end = text.find("\n", value_end)
    before = text[line_start:key_start]
    after = text[value_end : line_end if line_end >= 0 else None]
    return not before.strip(" \t-") and not after.strip()


def assignments(probe: Probe) -> Iterator[Finding]:
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
            if not looks_random(value, min_length=10):
                return None
    if _secret_value(value, strength):
        return Finding(start, end, "password")
    return None


_XML_SECRET = re.compile(
    r"(?i)<(?P<tag>[\w.-]*(?:password|passwd|secret|token|api[_-]?key))>(?P<value>[^<\s]{4,300})"
    r"</(?P=tag)>"
)


def xml_secrets(probe: Probe) -> Iterator[Finding]:
    for match in _XML_SECRET.finditer(probe.text):
        if not is_placeholder(match.group("value")):
            yield Finding(match.start("value"), match.end("value"), "password")
