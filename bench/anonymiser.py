"""Benchmark: recall, precision and speed of the PII and secret scrubber, beside Presidio's.

    .venv/bin/python -m bench.anonymiser [--per-kind 110] [--clean 600] [--seed 7] [--json-out F]

It builds a labelled corpus from a seed (the same seed gives the same corpus):

- *planted* texts: ``--per-kind`` values of each of 25 kinds (emails, and emails spelled out:
  ``(at)``/``(dot)``, ``[at]``, ``{at}``, the bare words ``at``/``dot`` and ``AT``/``DOT``,
  ``@`` with a spelled dot; phone numbers of 12 countries, as Faker writes them and in E.164,
  international and national format; card numbers of six networks, plain and grouped; IBANs of
  16 locales, compact and grouped; IPv4, public and private; IPv6, full and compressed; US SSNs;
  credentials in URLs; 13 kinds of secrets; 40-character AWS-shaped secrets with no key naming
  them; vendor tokens broken across lines after their prefix, by a newline, CRLF or an escaped
  ``\\n``, with or without indentation; vendor tokens with one or two invisible characters
  anywhere in them), made with Faker and, for tokens, with ``random`` per each vendor's
  published format. Each goes into one of 158 templates: prose, Python, JavaScript and Go code,
  YAML, JSON and .env files, shell sessions, logs and stack traces, URLs, amid filler of the
  same genre. A text holds one to three values. Three rules keep the labels honest: a password
  or an AWS secret key (which have no format of their own; the bare kind aside) is planted only
  where a key or label names it; a phone number written
  as a bare digit run only where the text says it is a phone number; a value in a URL's query
  is URL-encoded, as it would be.
- *clean* texts full of look-alikes: git and Docker hashes, sha256 and md5 hex, UUIDs, base64
  and data URIs, semantic, calendar and four-part versions, dates, times, timestamps, prices,
  coordinates, long identifiers, numeric ids, ISBNs, MAC addresses, test card numbers that fail
  Luhn, AKIA-like strings of the wrong length, ``password = input()``-style code, env templates,
  the words "at" and "dot" in prose and code ("look at this dot", "visit us at example dot
  com", ``np.dot``, ``x @ W.T``, dotenv), lines that end where a token could begin (``risk-``,
  ``AKIA``, ``ghp_``, wrapped hashes and base64), and the simulator's code samples.

Then it runs, in one process and on the same texts:

- ``scrubber``: ``privacy.detectors.Scrubber.scrub`` (finding and replacing);
- ``presidio``: ``presidio_analyzer.AnalyzerEngine`` with its predefined pattern recognizers and
  the no-op NLP engine (no spaCy model), asked for the entities it has recognizers for: email,
  phone, credit card, IBAN, IP and US SSN, at its default score threshold (analysis only, no
  replacing). It has none for credentials in URLs or for the secrets: those rows say n/a and
  count nowhere against it, and its throughput is measured on that smaller task.

A planted value counts as found by the scrubber when it no longer appears in the output (for a
PEM block: none of its base64 lines does; for a broken or disguised token: none of its pieces of
6 characters or more; for a spelled-out address: neither it nor its local part), and by Presidio
when one detected span covers it. Precision counts each detection (a scrubber finding, a
Presidio result) as right when it overlaps a planted value of its kind; it is counted per kind
the scrubber reports, so spelled-out addresses count under ``email`` and broken or disguised
tokens under their vendor's kind (their own rows say n/a). ``clean changed`` is the share of
clean texts an engine touches. Throughput is UTF-8 megabytes of all texts per second: the
scrubber's best of three passes, Presidio's one pass. The goals are printed beside the
figures (recall >= 0.99 for every kind, under 1% of clean texts changed, at least 10 times
Presidio's throughput in the same run); the exit status is 0 only if all are met.

The detectors were tuned on this generator's output (seed 7) and checked on other seeds; both
the contexts and the look-alikes are this file's, so read the figures as what the scrubber does
on text like this, not as a promise about all traffic.

Finally it runs the simulator's events (whose truth records every planted value) through the
ingest pipeline with ``ScrubbingAnonymiser`` and counts planted values left in the lake frame.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import json
import os
import platform
import random
import re
import string
import sys
import time
import urllib.parse
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from faker import Faker

from privacy.detectors import Scrubber

# tldextract (used by Presidio's email recognizer) would try to download the public suffix list
# on first use; this machine has no such network, so it must use the snapshot it ships.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

STRUCTURED = (
    "email", "email_spelled", "phone", "card", "iban", "ipv4", "ipv6", "ssn", "url_credentials",
)  # fmt: skip
SECRETS = (
    "aws_access_key", "aws_secret_key", "aws_secret_bare", "github_token", "gitlab_token",
    "slack_token", "slack_webhook", "stripe_key", "openai_key", "anthropic_key",
    "google_api_key", "jwt", "private_key", "password", "token_split", "token_zero_width",
)  # fmt: skip
KINDS = STRUCTURED + SECRETS
# What the scrubber calls a planted kind; the broken and disguised tokens are of their vendor's
# kind, which each value carries (``Value.row``).
SCRUBBER_KIND = {
    kind: {"ipv4": "ip", "ipv6": "ip", "email_spelled": "email",
           "aws_secret_bare": "aws_secret_key"}.get(kind, kind)
    for kind in KINDS
}  # fmt: skip
# Vendor tokens that the audit found broken across lines or disguised by invisible characters.
SPLIT_VENDORS = (
    "aws_access_key", "github_token", "gitlab_token", "slack_token", "slack_webhook",
    "stripe_key", "openai_key", "anthropic_key", "google_api_key", "jwt",
)  # fmt: skip
VENDOR_PREFIX = re.compile(
    r"gh[pousr]_|github_pat_|gl(?:pat|dt|rt|ptt)-|GR1348941|xox[a-z]-|xapp-"
    r"|https://hooks\.slack\.com/|(?:sk|rk)_(?:live|test)_|whsec_|sk-ant-\w+?-"
    r"|sk-(?:proj-|svcacct-)?|AIza|AKIA|ASIA|eyJ"
)
LINE_BREAKS = ("\n", "\r\n", "\n  ", "\n    ", "\n\t", "\\n", "\\n    ")
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad")
SPELLED_TLDS = ("com", "org", "net", "io", "de", "co.uk", "info")
# How people spell "@" and "." out: (at, dot, whether a real "." may stay).
SPELLINGS = (
    (" (at) ", " (dot) ", True), (" [at] ", " [dot] ", True), ("(at)", "(dot)", False),
    (" {at} ", " {dot} ", False), (" at ", " dot ", False), (" AT ", " DOT ", False),
    ("@", " dot ", False),
)  # fmt: skip
PRESIDIO_ENTITY = {
    "email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "card": "CREDIT_CARD", "iban": "IBAN_CODE",
    "ipv4": "IP_ADDRESS", "ipv6": "IP_ADDRESS", "ssn": "US_SSN",
}  # fmt: skip
GOALS = {"structured_recall": 0.99, "secret_recall": 0.99, "clean_changed": 0.01, "speedup": 10.0}

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
URLSAFE = ALNUM + "_-"
B64 = ALNUM + "+/"
HEX = "0123456789abcdef"


@dataclass
class Plant:
    """A planted value: ``text[start:end]`` of its document, and what must not survive."""

    kind: str
    start: int
    end: int
    fragments: list[str]
    row: str  # the scrubber's kind for it (``ip`` split by family)


@dataclass
class Doc:
    """One text of the corpus, with its planted values (none for a clean text)."""

    text: str
    genre: str
    plants: list[Plant] = field(default_factory=list)


# --- Values --------------------------------------------------------------------------------------


@dataclass
class Value:
    """A generated value as it is written (``text``) and the part that is the secret."""

    text: str
    start: int = 0
    end: int | None = None
    row: str | None = None  # the scrubber's kind, when it is not the planted kind's
    parts: list[str] | None = None  # what must not survive, when it is not the secret whole

    @property
    def secret(self) -> str:
        """The part of ``text`` the scrubber must remove."""
        return self.text[self.start : self.end]


PHONE_LOCALES = (
    ("en_US", "US"), ("en_GB", "GB"), ("de_DE", "DE"), ("fr_FR", "FR"), ("es_ES", "ES"),
    ("it_IT", "IT"), ("nl_NL", "NL"), ("en_AU", "AU"), ("ja_JP", "JP"), ("pt_BR", "BR"),
    ("en_IN", "IN"), ("en_CA", "CA"),
)  # fmt: skip
IBAN_LOCALES = ("de_DE", "en_GB", "fr_FR", "nl_NL", "es_ES", "it_IT", "pl_PL", "pt_PT", "fr_CH",
                "de_AT", "en_IE", "nl_BE", "fi_FI", "da_DK", "no_NO", "cs_CZ")  # fmt: skip
CARD_TYPES = ("visa", "visa13", "mastercard", "amex", "discover", "jcb15", "jcb16", "diners")


class Values:
    """Generators of fresh values per kind, all drawn from one seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers: dict[str, Faker] = {}
        self.seed = seed

    def faker(self, locale: str = "en_US") -> Faker:
        """A Faker for a locale, seeded from the benchmark's seed."""
        if locale not in self.fakers:
            fake = Faker(locale)
            fake.seed_instance(self.seed + len(self.fakers))
            self.fakers[locale] = fake
        return self.fakers[locale]

    def chars(self, alphabet: str, n: int) -> str:
        """``n`` random characters of ``alphabet``."""
        return "".join(self.rng.choices(alphabet, k=n))

    def make(self, kind: str) -> Value:
        """A fresh value of ``kind``."""
        maker: Callable[[], Value | str] = getattr(self, f"_{kind}")
        made = maker()
        return made if isinstance(made, Value) else Value(made)

    def _email(self) -> str:
        fake, rng = self.faker(), self.rng
        style = rng.randrange(6)
        if style == 0:
            return fake.email()
        if style == 1:
            return fake.company_email()
        if style == 2:
            return fake.free_email()
        if style == 3:
            name = f"{fake.first_name()}.{fake.last_name()}".lower()
            return f"{name}+{fake.word()}@{fake.domain_name()}"
        if style == 4:
            return f"{fake.user_name()}{rng.randrange(1, 99)}@mail.{fake.domain_name(2)}"
        return f"{fake.first_name()}.{fake.last_name()}@{fake.domain_name()}".upper()

    def _phone(self) -> str:
        import phonenumbers

        rng = self.rng
        while True:
            locale, region = rng.choice(PHONE_LOCALES)
            raw = self.faker(locale).phone_number()
            try:
                number = phonenumbers.parse(raw, region)
            except phonenumbers.NumberParseException:
                continue
            # Faker also writes unassignable numbers; the corpus plants real-looking ones only.
            if not phonenumbers.is_valid_number(number):
                continue
            style = rng.randrange(4)
            if style == 0:
                return raw  # as Faker writes it for that country
            formats = (
                phonenumbers.PhoneNumberFormat.E164,
                phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                phonenumbers.PhoneNumberFormat.NATIONAL,
            )
            return phonenumbers.format_number(number, formats[style - 1])

    def _card(self) -> str:
        fake, rng = self.faker(), self.rng
        card_type = rng.choice(CARD_TYPES)
        number = fake.credit_card_number(card_type)
        style = rng.randrange(3)
        if style == 0:
            return number
        sep = " " if style == 1 else "-"
        if len(number) == 15:
            return sep.join((number[:4], number[4:10], number[10:]))
        return sep.join(number[i : i + 4] for i in range(0, len(number), 4))

    def _iban(self) -> str:
        value = self.faker(self.rng.choice(IBAN_LOCALES)).iban()
        if self.rng.random() < 0.5:
            return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        return value

    def _ipv4(self) -> str:
        # Drawn here rather than by Faker, whose address pools iterate sets: the corpus must
        # not change from one process to the next.
        rng = self.rng
        if rng.random() < 0.3:
            private = rng.choice(("10.{}.{}.{}", "172.{}.{}.{}", "192.168.{}.{}"))
            octets = [rng.randrange(256) for _ in range(3)]
            if private.startswith("172"):
                octets[0] = rng.randrange(16, 32)
            return private.format(*octets[: private.count("{}")])
        while True:
            address = ipaddress.IPv4Address(rng.getrandbits(32))
            if address.is_global and not str(address).endswith((".0", ".255")):
                return str(address)

    def _ipv6(self) -> str:
        address = ipaddress.IPv6Address((0x2 << 124) | self.rng.getrandbits(124))
        if self.rng.random() < 0.3:
            return address.exploded
        if self.rng.random() < 0.3:  # a documentation or link-local style address with "::"
            prefix = self.rng.choice(("2001:db8", "fe80", "2a02:1810", "2600:1f18"))
            return str(ipaddress.IPv6Address(f"{prefix}::{self.rng.randrange(1, 65535):x}"))
        return address.compressed

    def _ssn(self) -> str:
        value = self.faker().ssn()
        return value.replace("-", " ") if self.rng.random() < 0.15 else value

    def _url_credentials(self) -> Value:
        fake, rng = self.faker(), self.rng
        scheme, port, path = rng.choice(
            (
                ("postgres", 5432, "/app"),
                ("postgresql", 5432, "/sales?sslmode=require"),
                ("mysql", 3306, "/shop"),
                ("mongodb+srv", None, "/prod?retryWrites=true"),
                ("redis", 6379, "/0"),
                ("amqp", 5672, "/vhost"),
                ("https", None, "/org/repo.git"),
                ("ftp", 21, "/uploads"),
                ("smtp", 587, ""),
            )
        )
        user = rng.choice((fake.user_name(), "admin", "deploy", "svc_" + fake.word(), "root"))
        password = fake.password(length=rng.randrange(10, 24))
        password = urllib.parse.quote(password, safe="!$&()*+,;=~")
        host = rng.choice((fake.domain_name(), "db.internal", "localhost", fake.hostname()))
        prefix = f"{scheme}://"
        cred = f"{user}:{password}"
        tail = f"@{host}{f':{port}' if port else ''}{path}"
        return Value(prefix + cred + tail, len(prefix), len(prefix) + len(cred))

    def _aws_access_key(self) -> str:
        return self.rng.choice(("AKIA", "AKIA", "ASIA")) + self.chars(UPPER_ALNUM, 16)

    def _aws_secret_key(self) -> str:
        return self.chars(B64, 40)

    def _aws_secret_bare(self) -> str:
        return self.chars(B64, 40)

    def _email_spelled(self) -> Value:
        fake, rng = self.faker(), self.rng
        at, dot, real_dots = rng.choice(SPELLINGS)
        local = rng.choice(
            (fake.user_name(), f"{fake.first_name()}.{fake.last_name()}".lower(), fake.last_name())
        )
        domain = f"{fake.domain_word()}.{rng.choice(SPELLED_TLDS)}"
        if rng.random() < 0.3:
            domain = f"mail.{domain}"
        if not (real_dots and rng.random() < 0.5):
            domain = domain.replace(".", dot)
            if "." in local and rng.random() < 0.5:
                local = local.replace(".", dot)
        text = f"{local}{at}{domain}"
        if at.isupper():
            text = text.upper()
        name = text.split(at)[0]
        return Value(text, parts=[text] + ([name] if len(name) >= 4 else []))

    def _token_split(self) -> Value:
        """A vendor token broken across lines after its prefix, as a wrapped terminal pastes it;
        both lines must go (a rest under 6 characters is too short to count)."""
        kind = self.rng.choice(SPLIT_VENDORS)
        token = self.make(kind).text
        prefix = VENDOR_PREFIX.match(token)
        assert prefix is not None, token
        cut = self.rng.randrange(prefix.end(), len(token) - 5)
        head, tail = token[:cut], token[cut:]
        text = head + self.rng.choice(LINE_BREAKS) + tail
        return Value(text, row=kind, parts=[part for part in (head, tail) if len(part) >= 6])

    def _token_zero_width(self) -> Value:
        """A vendor token with one or two invisible characters anywhere in it."""
        kind = self.rng.choice(SPLIT_VENDORS)
        text = self.make(kind).text
        for _ in range(self.rng.choice((1, 1, 2))):
            at = self.rng.randrange(1, len(text))
            text = text[:at] + self.rng.choice(INVISIBLE) + text[at:]
        parts = [p for p in re.split("|".join(INVISIBLE), text) if len(p) >= 6]
        return Value(text, row=kind, parts=parts)

    def _github_token(self) -> str:
        if self.rng.random() < 0.25:
            return f"github_pat_{self.chars(ALNUM, 22)}_{self.chars(ALNUM, 59)}"
        return self.rng.choice(("ghp", "gho", "ghu", "ghs", "ghr")) + "_" + self.chars(ALNUM, 36)

    def _gitlab_token(self) -> str:
        prefix = self.rng.choice(("glpat-", "glpat-", "gldt-", "glrt-", "glptt-", "GR1348941"))
        return prefix + self.chars(URLSAFE if prefix == "glpat-" else ALNUM, 20)

    def _slack_token(self) -> str:
        digits = string.digits
        style = self.rng.randrange(3)
        if style == 0:
            return f"xoxb-{self.chars(digits, 11)}-{self.chars(digits, 13)}-{self.chars(ALNUM, 24)}"
        if style == 1:
            return (
                f"xoxp-{self.chars(digits, 11)}-{self.chars(digits, 11)}-"
                f"{self.chars(digits, 13)}-{self.chars(HEX, 32)}"
            )
        return (
            f"xapp-1-A{self.chars(UPPER_ALNUM, 10)}-{self.chars(digits, 13)}-{self.chars(HEX, 64)}"
        )

    def _slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.chars(UPPER_ALNUM, 8)}/"
            f"B{self.chars(UPPER_ALNUM, 10)}/{self.chars(ALNUM, 24)}"
        )

    def _stripe_key(self) -> str:
        prefix = self.rng.choice(("sk_live_", "sk_test_", "rk_live_", "whsec_"))
        return prefix + self.chars(ALNUM, self.rng.choice((24, 32, 99)))

    def _openai_key(self) -> str:
        style = self.rng.randrange(3)
        if style == 0:
            return f"sk-{self.chars(ALNUM, 20)}T3BlbkFJ{self.chars(ALNUM, 20)}"
        if style == 1:
            return f"sk-proj-{self.chars(URLSAFE, 156)}"
        return f"sk-svcacct-{self.chars(URLSAFE, 74)}"

    def _anthropic_key(self) -> str:
        kind = self.rng.choice(("api03", "api03", "admin01"))
        return f"sk-ant-{kind}-{self.chars(URLSAFE, 93)}AA"

    def _google_api_key(self) -> str:
        return "AIza" + self.chars(URLSAFE, 35)

    def _jwt(self) -> str:
        def part(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = json.dumps({"alg": self.rng.choice(("HS256", "RS256")), "typ": "JWT"})
        payload = json.dumps(
            {
                "sub": str(uuid.UUID(int=self.rng.getrandbits(128))),
                "iat": 1767600000 + self.rng.randrange(10**6),
                "scope": self.rng.choice(("read", "read write", "admin")),
            }
        )
        signature = self.rng.randbytes(self.rng.choice((32, 64, 256)))
        return f"{part(header.encode())}.{part(payload.encode())}.{part(signature)}"

    def _private_key(self) -> str:
        label = self.rng.choice(
            ("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY",
             "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY")
        )  # fmt: skip
        body = base64.b64encode(self.rng.randbytes(self.rng.choice((120, 400, 1190)))).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"

    def _password(self) -> str:
        fake, rng = self.faker(), self.rng
        style = rng.randrange(6)
        if style == 0:
            return fake.password(length=rng.randrange(10, 25))
        if style in (1, 2, 3):
            return self.token()
        if style == 4:  # what people pick
            word = fake.word().capitalize()
            return f"{word}{rng.randrange(1970, 2030)}{rng.choice('!?#$%&*')}"
        return fake.password(length=rng.randrange(8, 12), special_chars=False)

    def token(self) -> str:
        """A machine-made API key or token of no particular vendor."""
        fake, rng = self.faker(), self.rng
        style = rng.randrange(4)
        if style == 0:
            return fake.password(length=rng.randrange(16, 33))
        if style == 1:
            return self.chars(ALNUM, rng.randrange(16, 48))
        if style == 2:
            return self.chars(HEX, rng.choice((32, 40, 64)))
        return base64.b64encode(rng.randbytes(rng.choice((16, 24, 32)))).decode()


# --- Contexts --------------------------------------------------------------------------------
# "@@V@@" marks where the value goes. A template lists the kinds it suits; "*" means every kind
# but the password (a password is only one because of the key it is assigned to).

MARK = "@@V@@"
ALL = "*"
# Kinds that are only secrets because of the words around them: a password, and 40 random base64
# characters (an AWS secret key has no prefix). They go only where a key or label names them.
CONTEXTUAL = ("password", "aws_secret_key")
VENDOR = tuple(kind for kind in SECRETS if kind not in CONTEXTUAL and kind != "aws_secret_bare")
# "token" marks a password slot whose key names a token or API key: machine-made values only.
TOKEN = "token"

PROSE = [
    (ALL, "Here is what I have: @@V@@ — can you check it?"),
    (ALL, "I tried again with @@V@@ and it still fails."),
    (ALL, "The value in the ticket is '@@V@@'."),
    (ALL, "Could the problem be this one (@@V@@)? I am not sure."),
    (("email",), "You can reach me at @@V@@ if anything is unclear."),
    (("email",), "Please cc @@V@@ on the answer."),
    (("email",), "Send the invoice to <@@V@@>, thanks!"),
    (("email",), "[mail me](mailto:@@V@@)"),
    (("phone",), "My number is @@V@@, text me if you need more details."),
    (("phone",), "Call me on @@V@@."),
    (("phone",), "Tel: @@V@@"),
    (("phone",), "The on-call phone is @@V@@ by the way."),
    (("phone",), "You can also reach the front desk at @@V@@ during office hours."),
    (("card",), "My card @@V@@ was charged twice, does that matter here?"),
    (("card",), "Card number: @@V@@, expiry 04/29."),
    (("iban",), "Please transfer the deposit to IBAN @@V@@, thanks."),
    (("iban",), "My account is @@V@@ at the local bank."),
    (("ipv4", "ipv6"), "The server at @@V@@ keeps timing out."),
    (("ipv4", "ipv6"), "Requests from @@V@@ are being blocked by the firewall."),
    (("ssn",), "My SSN is @@V@@ and the form rejects it."),
    (("ssn",), "The applicant's social security number: @@V@@."),
    (("aws_secret_key",), "My AWS secret access key is @@V@@, do I need to rotate it?"),
    (("aws_secret_key",), "The AWS secret key @@V@@ was in the CSV next to the key id."),
    (("password",), "My password is @@V@@ but the login still fails."),
    (("password",), "the db password was @@V@@ until we rotated it"),
    (VENDOR, "I'm using the token @@V@@ and the API returns 401."),
    (VENDOR, "Here is my key, in case it matters: @@V@@"),
]
PYTHON = [
    (ALL, 'VALUE = "@@V@@"'),
    (ALL, "    log.info('processing %s', '@@V@@')"),
    (ALL, '    assert record["field"] == "@@V@@"'),
    (("email",), 'ADMIN_EMAIL = "@@V@@"'),
    (("email",), '    send_mail(to=["@@V@@"], subject="Report")'),
    (("phone",), '    "phone": "@@V@@",'),
    (("card",), '    charge(card_number="@@V@@", amount=1999)'),
    (("iban",), 'payout = Payout(iban="@@V@@", currency="EUR")'),
    (("ipv4", "ipv6"), 'ALLOWED_HOSTS = ["@@V@@", "localhost"]'),
    (("ipv4",), "    sock.connect(('@@V@@', 8080))"),
    (("url_credentials",), 'DATABASE_URL = "@@V@@"'),
    (("url_credentials",), "engine = create_engine('@@V@@')"),
    (
        ("aws_secret_key",),
        's3 = boto3.client("s3", aws_access_key_id=key_id, aws_secret_access_key="@@V@@")',
    ),
    (("aws_access_key",), 'AWS_ACCESS_KEY_ID = "@@V@@"'),
    (("aws_secret_key",), 'AWS_SECRET_ACCESS_KEY = "@@V@@"'),
    (("github_token",), 'GITHUB_TOKEN = "@@V@@"'),
    (("openai_key",), 'client = OpenAI(api_key="@@V@@")'),
    (("anthropic_key",), 'client = anthropic.Anthropic(api_key="@@V@@")'),
    (("stripe_key",), "stripe.api_key = '@@V@@'"),
    (("slack_token", "jwt", "gitlab_token"), '    headers = {"Authorization": f"Bearer @@V@@"}'),
    (("slack_webhook",), 'requests.post("@@V@@", json={"text": "deploy finished"})'),
    (("google_api_key",), 'gmaps = googlemaps.Client(key="@@V@@")'),
    (("private_key",), 'PRIVATE_KEY = """@@V@@"""'),
    (("password",), 'password = "@@V@@"'),
    (("password",), 'DB_PASSWORD = "@@V@@"'),
    (("password",), '    conn = psycopg2.connect(host="db", user="app", password="@@V@@")'),
    ((TOKEN,), 'api_key = "@@V@@"'),
    ((TOKEN,), '    "client_secret": "@@V@@",'),
    ((TOKEN,), "auth_token: str = '@@V@@'"),
    ((TOKEN,), 'SECRET_KEY = "@@V@@"'),
    ((TOKEN,), 'os.environ.setdefault("API_TOKEN", "@@V@@")'),
]
JAVASCRIPT = [
    (ALL, 'const value = "@@V@@";'),
    (ALL, "  console.log(`retrying @@V@@`);"),
    (("email",), "  const support = '@@V@@';"),
    (("phone",), '  phone: "@@V@@",'),
    (("ipv4", "ipv6"), 'const server = net.connect({ host: "@@V@@", port: 443 });'),
    (("url_credentials",), "const client = new MongoClient('@@V@@');"),
    (("github_token",), "const octokit = new Octokit({ auth: '@@V@@' });"),
    (("openai_key",), 'const openai = new OpenAI({ apiKey: "@@V@@" });'),
    (("stripe_key",), "const stripe = require('stripe')('@@V@@');"),
    (
        ("slack_token", "jwt", "gitlab_token", "google_api_key"),
        "  headers: { Authorization: `Bearer @@V@@` },",
    ),
    (("slack_webhook",), 'await fetch("@@V@@", { method: "POST", body });'),
    ((TOKEN,), 'const apiKey = "@@V@@";'),
    (("password",), "  password: '@@V@@',"),
    ((TOKEN,), 'const clientSecret = "@@V@@";'),
    (("password",), 'process.env.SESSION_SECRET ??= "@@V@@";'),
]
GO = [
    (ALL, 'var value = "@@V@@"'),
    (ALL, '\tlog.Printf("lookup failed for %s", "@@V@@")'),
    (("ipv4", "ipv6"), '\tconn, err := net.Dial("tcp", "@@V@@")'),
    (("url_credentials",), '\tdb, err := sql.Open("postgres", "@@V@@")'),
    (("email",), '\tmsg.SetHeader("To", "@@V@@")'),
    (
        ("aws_secret_key",),
        '\tcreds := credentials.NewStaticCredentials(keyID, "@@V@@", "")',
    ),
    (
        ("github_token", "slack_token", "gitlab_token", "stripe_key"),
        '\tos.Setenv("API_TOKEN", "@@V@@")',
    ),
    ((TOKEN,), 'var apiKey = "@@V@@"'),
    (("password",), '\tpassword := "@@V@@"'),
    (("password",), '\t\tPassword: "@@V@@",'),
    (("password",), '\tos.Setenv("DB_PASSWORD", "@@V@@")'),
]
YAML = [
    (ALL, "  value: @@V@@"),
    (ALL, '  note: "@@V@@"'),
    (("email",), "  contact_email: @@V@@"),
    (("phone",), '  phone: "@@V@@"'),
    (("ipv4", "ipv6"), "  host: @@V@@"),
    (("url_credentials",), "  DATABASE_URL: @@V@@"),
    (("aws_access_key",), "  aws_access_key_id: @@V@@"),
    (("aws_secret_key",), "  aws_secret_access_key: @@V@@"),
    (("slack_webhook",), "  webhook_url: @@V@@"),
    (("private_key",), "  tls.key: |\n@@V@@"),
    (("password",), "  password: @@V@@"),
    ((TOKEN,), '  api_key: "@@V@@"'),
    ((TOKEN,), "  client_secret: '@@V@@'"),
    (("password",), "      - POSTGRES_PASSWORD=@@V@@"),
    ((TOKEN,), "  auth_token: @@V@@"),
]
ENV = [
    (ALL, "VALUE=@@V@@"),
    (("email",), "ADMIN_EMAIL=@@V@@"),
    (("phone",), "SUPPORT_PHONE=@@V@@"),
    (("ipv4", "ipv6"), "REDIS_HOST=@@V@@"),
    (("url_credentials",), "DATABASE_URL=@@V@@"),
    (("aws_access_key",), "AWS_ACCESS_KEY_ID=@@V@@"),
    (("aws_secret_key",), "AWS_SECRET_ACCESS_KEY=@@V@@"),
    (("github_token",), "GITHUB_TOKEN=@@V@@"),
    (("slack_token",), "SLACK_BOT_TOKEN=@@V@@"),
    (("stripe_key",), "STRIPE_SECRET_KEY=@@V@@"),
    (("openai_key",), "OPENAI_API_KEY=@@V@@"),
    (("anthropic_key",), "ANTHROPIC_API_KEY=@@V@@"),
    (("google_api_key",), "GOOGLE_API_KEY=@@V@@"),
    (("password",), "DB_PASSWORD=@@V@@"),
    ((TOKEN,), "SECRET_KEY=@@V@@"),
    ((TOKEN,), 'API_KEY="@@V@@"'),
    (("password",), "REDIS_PASSWORD='@@V@@'"),
]
JSON_LINES = [
    (ALL, '  "value": "@@V@@",'),
    (("email",), '  "email": "@@V@@",'),
    (("phone",), '  "phone_number": "@@V@@",'),
    (("card",), '  "card": "@@V@@",'),
    (("iban",), '  "iban": "@@V@@",'),
    (("ipv4", "ipv6"), '  "remote_addr": "@@V@@",'),
    (("aws_secret_key",), '    "SecretAccessKey": "@@V@@",'),
    ((TOKEN,), '  "api_key": "@@V@@",'),
    (("password",), '  "password": "@@V@@",'),
    ((TOKEN,), '  "accessToken": "@@V@@",'),
]
SHELL = [
    (ALL, "$ echo @@V@@"),
    (ALL, '$ grep -rn "@@V@@" logs/'),
    (("ipv4",), "$ ping -c 1 @@V@@\nPING @@V@@ (@@V@@) 56(84) bytes of data."),
    (("ipv4", "ipv6"), "$ ssh -i ~/.ssh/id_ed25519 deploy@@@V@@"),
    (("ipv4",), "$ curl -v http://@@V@@:8080/health\n*   Trying @@V@@:8080..."),
    (("url_credentials",), "$ psql '@@V@@'\npsql: error: connection refused"),
    (("url_credentials",), "$ git clone @@V@@"),
    (("aws_access_key",), "$ export AWS_ACCESS_KEY_ID=@@V@@"),
    (
        ("aws_secret_key",),
        "$ aws configure\nAWS Access Key ID [****************MPLE]:\n"
        "AWS Secret Access Key [None]: @@V@@\nDefault region name [None]: eu-west-1",
    ),
    (("github_token",), '$ export GITHUB_TOKEN="@@V@@"'),
    (VENDOR, '$ curl -H "Authorization: Bearer @@V@@" https://api.example.com/v1/me'),
    (
        ("slack_webhook",),
        "$ curl -X POST -H 'Content-type: application/json' --data '{\"text\":\"hi\"}' @@V@@",
    ),
    (("password",), "$ mysql -h db -u root --password=@@V@@ shop"),
    (("password",), "$ docker run -e POSTGRES_PASSWORD=@@V@@ -d postgres:16"),
    ((TOKEN,), "$ export API_TOKEN=@@V@@"),
    ((TOKEN,), '$ curl -H "X-Api-Key: @@V@@" https://api.example.com/v2/items'),
]
LOGS = [
    (ALL, "2026-01-05T09:00:12.345Z ERROR handler failed value=@@V@@"),
    (("email",), "2026-01-05 09:00:12,345 INFO auth: login ok user=@@V@@ ip=127.0.0.1"),
    (("email",), "Caused by: javax.mail.SendFailedException: Invalid Addresses: <@@V@@>"),
    (
        ("ipv4", "ipv6"),
        '203 [05/Jan/2026:09:00:12 +0000] client @@V@@ "GET /api/v1/items HTTP/1.1" 200 512',
    ),
    (
        ("ipv4",),
        'psycopg2.OperationalError: connection to server at "@@V@@", port 5432 failed: '
        "Connection refused",
    ),
    (("card",), "WARN  payment declined card=@@V@@ amount=19.99 currency=EUR"),
    (("phone",), "INFO  sms sent to=@@V@@ template=otp attempt=2"),
    (
        ("url_credentials",),
        "sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) could not connect: @@V@@",
    ),
    (("jwt",), "DEBUG request headers: {'authorization': 'Bearer @@V@@', 'accept': '*/*'}"),
    (
        ("password",),
        'Traceback (most recent call last):\n  File "app.py", line 12, in <module>\n'
        '    login(user="admin", password="@@V@@")\nAuthError: invalid credentials',
    ),
]
URLS = [
    ((("email",)), "https://app.example.com/reset?email=@@V@@&lang=en"),
    (("slack_webhook",), "@@V@@"),
    (("url_credentials",), "@@V@@"),
    (
        ("google_api_key",),
        "https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key=@@V@@",
    ),
    ((TOKEN,), "https://api.example.com/v1/export?format=csv&api_key=@@V@@"),
    ((TOKEN,), "wss://stream.example.com/socket?token=@@V@@"),
]
GENRES: dict[str, list[tuple[Any, str]]] = {
    "prose": PROSE, "python": PYTHON, "javascript": JAVASCRIPT, "go": GO, "yaml": YAML,
    "env": ENV, "json": JSON_LINES, "shell": SHELL, "logs": LOGS, "url": URLS,
}  # fmt: skip

FRAMES = {
    "python": [
        "import os\nimport logging\n\nlog = logging.getLogger(__name__)\n\n",
        "def load_settings(path):\n    with open(path) as handle:\n"
        "        return json.load(handle)\n",
        "\nclass Client:\n    def __init__(self, base_url, timeout=30):\n"
        "        self.base_url = base_url\n",
        "\n\nif __name__ == \"__main__\":\n    main()\n",
    ],
    "javascript": [
        "import express from 'express';\n\nconst app = express();\n",
        "app.get('/health', (req, res) => res.json({ ok: true }));\n",
        "export async function handler(event) {\n  const body = JSON.parse(event.body);\n",
        "}\n\napp.listen(3000);\n",
    ],
    "go": [
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\n",
        "func main() {\n",
        "\tif err != nil {\n\t\tfmt.Fprintln(os.Stderr, err)\n\t\tos.Exit(1)\n\t}\n",
        "}\n",
    ],
    "yaml": [
        "version: \"3.9\"\nservices:\n  api:\n    image: ghcr.io/acme/api:2026.10.1\n",
        "    ports:\n      - \"8080:8080\"\n    environment:\n",
        "settings:\n  log_level: info\n  retries: 3\n",
    ],
    "env": ["DEBUG=false\nPORT=8080\nLOG_LEVEL=info\n", "WORKERS=4\nTZ=UTC\n"],
    "json": ['{\n  "name": "billing-service",\n  "version": "1.4.2",\n',
             '  "region": "eu-west-1"\n}\n'],
    "shell": ["$ uname -a\nLinux build-01 6.8.0-45-generic #45-Ubuntu SMP x86_64 GNU/Linux\n",
              "$ python -m pip install -r requirements.txt\n"
              "Successfully installed requests-2.32.3\n"],
    "logs": ["2026-01-05T09:00:11.002Z INFO  starting worker pid=4121 version=3.2.0\n",
             "2026-01-05T09:00:13.870Z WARN  retrying in 2.5s attempt=3/5\n"],
    "url": ["See ", "Open this link: "],
}  # fmt: skip


def render(template: str, value: Value) -> tuple[str, list[tuple[int, int]]]:
    """The template with the value in every marked place, and where its secret part sits."""
    pieces = template.split(MARK)
    text = pieces[0]
    spans = []
    for piece in pieces[1:]:
        spans.append((len(text) + value.start, len(text) + (value.end or len(value.text))))
        text += value.text + piece
    return text, spans


def suits(kinds: Any, kind: str) -> bool:
    """True if a template listing ``kinds`` takes a value of ``kind``."""
    if kinds == ALL:
        return kind not in CONTEXTUAL
    return kind in kinds or (kind == "password" and TOKEN in kinds)


def fragments(kind: str, value: Value) -> list[str]:
    """What must be absent from the output for the value to count as removed."""
    if kind == "private_key":
        return [line for line in value.text.splitlines()[1:-1] if len(line) >= 16]
    return value.parts if value.parts is not None else [value.secret]


def planted_corpus(values: Values, per_kind: int) -> list[Doc]:
    """Texts holding ``per_kind`` planted values of every kind, one to three per text."""
    rng = values.rng
    queue = [kind for kind in KINDS for _ in range(per_kind)]
    rng.shuffle(queue)
    docs = []
    while queue:
        genre = rng.choice(list(GENRES))
        take = min(len(queue), rng.choice((1, 1, 2, 3)))
        snippets: list[tuple[str, list[tuple[str, int, int, list[str], str]]]] = []
        for _ in range(take):
            kind = queue.pop()
            value = values.make(kind)
            # A phone number written as a bare digit run is one only where the text says so
            # (nobody could tell it from an id otherwise): such values go to phone slots only.
            bare = kind == "phone" and value.text.isdigit()
            options = [
                (kinds, t)
                for kinds, t in GENRES[genre]
                if suits(kinds, kind) and not (bare and kinds == ALL)
            ]
            if not options:  # this genre has no place for the kind: fall back to prose
                options = [(kinds, t) for kinds, t in PROSE if suits(kinds, kind)]
                options = [(k, t) for k, t in options if not (bare and k == ALL)]
            kinds, template = rng.choice(options)
            if kind == "password" and TOKEN in kinds:
                value = Value(values.token())
            if genre == "url" and kind == "password":  # a URL carries its values encoded
                value = Value(urllib.parse.quote(value.text, safe=""))
            if kind == "private_key" and genre == "yaml":
                value = Value("\n".join("    " + line for line in value.text.splitlines()))
            text, spans = render(template, value)
            row = value.row or SCRUBBER_KIND[kind]
            snippets.append((text, [(kind, s, e, fragments(kind, value), row) for s, e in spans]))
        docs.append(assemble(rng, genre, snippets))
    return docs


def filler(rng: random.Random, fake: Faker, genre: str) -> str:
    """A little text of the genre that holds nothing to remove."""
    if genre == "prose":
        return fake.paragraph(nb_sentences=rng.randrange(1, 4)) + " "
    return rng.choice(FRAMES[genre])


def assemble(
    rng: random.Random,
    genre: str,
    snippets: list[tuple[str, list[tuple[str, int, int, list[str], str]]]],
) -> Doc:
    """Join snippets with filler of their genre, keeping the planted values' positions."""
    fake = Faker("en_US")
    fake.seed_instance(rng.getrandbits(32))
    text = filler(rng, fake, genre)
    plants: list[Plant] = []
    joiner = " " if genre in ("prose", "url") else "\n"
    for snippet, spans in snippets:
        if not text.endswith((" ", "\n")):
            text += joiner
        offset = len(text)
        text += snippet
        plants.extend(
            Plant(kind, offset + s, offset + e, frag, row) for kind, s, e, frag, row in spans
        )
        text += joiner + filler(rng, fake, genre)
    return Doc(text, genre, plants)


# --- Clean texts -----------------------------------------------------------------------------


def clean_corpus(seed: int, count: int) -> list[Doc]:
    """Texts with nothing to remove but many values that look like something to remove."""
    from flywheel.dev.simulator import TOPICS

    rng = random.Random(seed + 1)
    fake = Faker("en_US")
    fake.seed_instance(seed + 1)

    def when() -> datetime:
        # Faker's dates end at "now": the corpus would change from day to day.
        return datetime(2020, 1, 1) + timedelta(seconds=rng.randrange(6 * 365 * 86400))

    def sha(n: int = 40) -> str:
        return "".join(rng.choices(HEX, k=n))

    def b64(n: int) -> str:
        return base64.b64encode(rng.randbytes(n)).decode()

    def bad_card() -> str:
        from stdnum import luhn

        while True:
            number = rng.choice(("4", "51", "37", "6011")) + "".join(
                rng.choices(string.digits, k=12)
            )
            number = number.ljust(16, "7")
            if not luhn.is_valid(number):
                return (
                    " ".join(number[i : i + 4] for i in range(0, 16, 4))
                    if rng.random() < 0.5
                    else number
                )

    def ident() -> str:
        words = [fake.word() for _ in range(rng.randrange(3, 6))]
        if rng.random() < 0.5:
            return "_".join(words)
        return words[0] + "".join(w.capitalize() for w in words[1:])

    def n(low: int, high: int) -> int:
        return rng.randrange(low, high)

    def semver() -> str:
        return rng.choice(
            (
                f"{n(0, 10)}.{n(0, 30)}.{n(0, 30)}",
                f"2026.{n(1, 13)}.{n(1, 30)}",
                f"v{n(0, 5)}.{n(0, 20)}.{n(0, 20)}-rc.{n(0, 5)}",
                f"{n(1, 4)}.{n(0, 20)}.{n(0, 20)}.{n(0, 9999)}",
            )
        )

    def clock() -> str:
        return f"{n(0, 24):02d}:{n(0, 60):02d}:{n(0, 60):02d}"

    def code_from_simulator() -> str:
        topic = rng.choice([t for t in TOPICS if t.lang])
        code = topic.code
        for name, options in topic.slots:
            code = code.replace(f"@{name}@", rng.choice(options))
        return code

    generators: list[Callable[[], str]] = [
        lambda: (
            f"commit {sha()}\nAuthor: CI Bot <noreply>\nDate:   {when()}\n\n    {fake.sentence()}"
        ),
        lambda: (
            f"$ git log --oneline\n{sha(7)} {fake.sentence()}\n"
            f"{sha(7)} Merge pull request #{n(1, 9999)} from {ident()}"
        ),
        lambda: f"FROM python:3.12-slim@sha256:{sha(64)}\nRUN pip install uv=={semver()}",
        lambda: (
            f'    "integrity": "sha512-{b64(64)}",\n'
            f'    "resolved": "https://registry.npmjs.org/{fake.word()}/-/x-{semver()}.tgz"'
        ),
        lambda: (
            f"request_id={uuid.UUID(int=rng.getrandbits(128))} trace={sha(32)} "
            f"span={sha(16)} took={n(0, 2000)}ms"
        ),
        lambda: f'<img src="data:image/png;base64,{b64(n(200, 1200))}" alt="{fake.word()}">',
        lambda: f"The payload is base64: {b64(n(20, 60))}",
        lambda: f"Upgrade {fake.word()} from {semver()} to {semver()}; see the {semver()} notes.",
        lambda: f"Released on {when().date()} at {when().time()}, build {n(10**5, 10**6)}.",
        lambda: f"Stripe's test card {bad_card()} should be rejected, it fails the Luhn check.",
        lambda: (
            f"Order {n(10**9, 10**10)} shipped on {when().date()}; "
            f"total ${n(10, 9999)}.{n(0, 100):02d}."
        ),
        lambda: f"{ident()} = {ident()}({ident()}, {n(0, 100)})",
        lambda: f"def {ident()}(self, {ident()}: int = {n(0, 100)}) -> None:\n    return None",
        lambda: (
            "password = input('Password: ')\n"
            "if not check_password(user, password):\n    raise PermissionError"
        ),
        lambda: "token = get_token()\nheaders = {'Authorization': f'Bearer {token}'}",
        lambda: 'api_key = os.environ["OPENAI_API_KEY"]\nsecret_key = settings.SECRET_KEY',
        lambda: (
            f'tokenizer = AutoTokenizer.from_pretrained("meta-llama/Llama-3.1-{n(1, 99)}B")\n'
            f"max_tokens = {rng.choice((256, 512, 4096))}"
        ),
        lambda: f"PASSWORD_MIN_LENGTH = {n(8, 16)}\nTOKEN_TTL_SECONDS = {n(60, 86400)}",
        lambda: "DB_PASSWORD=${DB_PASSWORD}\nAPI_KEY=<your-api-key>\nSECRET_KEY=changeme",
        lambda: (
            "  password: {{ .Values.db.password }}\n"
            "  secretName: my-app-secret\n  token_type: bearer"
        ),
        lambda: (
            f"The key AKIA{''.join(rng.choices(UPPER_ALNUM, k=rng.choice((8, 12, 15))))} "
            "is too short to be an AWS key."
        ),
        lambda: f"epoch_ms = {1767600000000 + n(0, 10**8)}  # {when().date()}",
        lambda: f"location = ({fake.latitude()}, {fake.longitude()})",
        lambda: f"pi ~ {rng.random():.16f}, ratio {rng.random() * 100:.2f}%",
        lambda: f"std::vector<int> {ident()}; std::map<std::string, int> counts; // {fake.word()}",
        lambda: f"Elapsed 00:{n(0, 60):02d}:{n(0, 60):02d}, at {clock()}",
        lambda: (
            f"Listening on http://127.0.0.1:{n(1024, 65535)} and 0.0.0.0:8080, "
            "netmask 255.255.255.0"
        ),
        lambda: (
            f"md5 {hashlib.md5(rng.randbytes(8)).hexdigest()}  "
            f"sha1 {hashlib.sha1(rng.randbytes(8)).hexdigest()}"
        ),
        lambda: f"ISBN 978-{n(0, 10)}-{n(100, 999)}-{n(10000, 99999)}-{n(0, 10)}",
        lambda: f"{n(1, 999):,} users, {n(10**6, 10**9):,} events",
        lambda: f"MAC {':'.join(f'{n(0, 256):02x}' for _ in range(6))} on eth0",
        lambda: f"color: #{sha(6)}; margin: {n(0, 40)}px {n(0, 40)}px;",
        lambda: code_from_simulator(),
        lambda: fake.paragraph(nb_sentences=n(2, 6)),
        lambda: (
            f"{ident()}:\n  image: ghcr.io/acme/{fake.word()}:{semver()}\n"
            f"  replicas: {n(1, 9)}\n  port: {n(1024, 9999)}"
        ),
        lambda: f"scikit-learn=={semver()}\nnumpy>={semver()}\ntorch=={semver()}+cu121",
        lambda: f"Error: ENOENT: no such file, open '/home/app/{ident()}/{fake.file_name()}'",
        lambda: (
            "Traceback (most recent call last):\n"
            f'  File "/srv/app/{fake.word()}.py", line {n(1, 999)}, in {ident()}\n'
            f"KeyError: '{ident()}'"
        ),
        lambda: (
            f"  {n(1, 9)}.{n(0, 10)}.{n(0, 10)}.{n(0, 10)} is the version of the firmware "
            f"(version {semver()})"
        ),
        # The words of spelled-out addresses in prose and code.
        lambda: rng.choice(
            (
                "Look at this dot on the chart, at the top (at) least.",
                f"I worked at a dot com startup in {n(1995, 2002)}; we met at noon dot com time.",
                f"Visit us at {fake.domain_word()} dot com or find it at github dot com.",
                "The red dot at the top marks [at] most one error.",
                f"an intern at {fake.domain_word()} dot com, then at home (dot) net",
            )
        ),
        lambda: rng.choice(
            (
                f"y = x @ W.T  # the dot product at layer {n(1, 12)}\nz = np.dot(a, b)",
                "from dotenv import load_dotenv\nload_dotenv()  # read .env at start-up",
                f"scores = q.dot(k.T) / math.sqrt(d)  # at {clock()}",
            )
        ),
        # Lines that end where a token could begin: hyphenated words, wrapped hashes and base64.
        lambda: rng.choice(
            (
                f"a risk-\nbased review of the task-\nrunner and the {fake.word()} desk-\ntop",
                f"sha {sha(32)}\n{sha(32)}",
                "\n".join(b64(n(100, 300))[i : i + 76] for i in range(0, 228, 76)),
                "AKIA\nis how an AWS access key id starts; ghp_\nis GitHub's prefix.",
                "$ pip install sk-\nlearn  # the name is scikit-learn",
            )
        ),
    ]
    docs = []
    for _ in range(count):
        parts = [rng.choice(generators)() for _ in range(rng.randrange(1, 4))]
        docs.append(Doc("\n".join(parts), "clean"))
    return docs


# --- Engines and scoring ---------------------------------------------------------------------


def row_of(kind: str, text: str) -> str:
    """The table row of a detection: its bench kind (IPs split by family)."""
    if kind in ("ip", "IP_ADDRESS"):
        return "ipv6" if ":" in text else "ipv4"
    reverse = {v: k for k, v in PRESIDIO_ENTITY.items() if k not in ("ipv4", "ipv6")}
    return reverse.get(kind, kind)


@dataclass
class Score:
    """Counts for one engine over the corpus."""

    planted: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    true_hits: Counter[str] = field(default_factory=Counter)
    false_hits: Counter[str] = field(default_factory=Counter)
    clean_changed: int = 0
    clean_total: int = 0
    seconds: float = 0.0
    megabytes: float = 0.0
    misses: list[tuple[str, str]] = field(default_factory=list)
    false_examples: list[tuple[str, str]] = field(default_factory=list)


def score_detections(
    score: Score, doc: Doc, detections: list[tuple[int, int, str]], *, kinds: tuple[str, ...]
) -> None:
    """Count each detection as true (overlaps a planted value of its kind) or false."""
    for start, end, kind in detections:
        row = row_of(kind, doc.text[start:end])
        if row not in kinds:
            continue
        hit = any(
            p.start < end and start < p.end and row_of(p.row, doc.text[p.start : p.end]) == row
            for p in doc.plants
        )
        if hit:
            score.true_hits[row] += 1
        else:
            score.false_hits[row] += 1
            if len(score.false_examples) < 400:
                score.false_examples.append((row, doc.text[max(0, start - 30) : end + 30]))


def run_scrubber(docs: list[Doc], clean: list[Doc], repeats: int = 3) -> Score:
    """Scrub every text; score recall by what is left, precision by the findings."""
    scrubber = Scrubber()
    texts = [d.text for d in docs + clean]
    best = float("inf")
    outputs: list[str] = []
    for _ in range(repeats):
        started = time.perf_counter()
        outputs = [scrubber.scrub(text)[0] for text in texts]
        best = min(best, time.perf_counter() - started)
    score = Score(seconds=best, megabytes=sum(len(t.encode()) for t in texts) / 1e6)
    for doc, output in zip(docs, outputs, strict=False):
        for plant in doc.plants:
            score.planted[plant.kind] += 1
            if not any(fragment in output for fragment in plant.fragments):
                score.found[plant.kind] += 1
            elif len(score.misses) < 400:
                score.misses.append(
                    (plant.kind, doc.text[max(0, plant.start - 40) : plant.end + 40])
                )
        findings = [(f.start, f.end, f.kind) for f in scrubber.find(doc.text)]
        score_detections(score, doc, findings, kinds=KINDS)
    for doc, output in zip(clean, outputs[len(docs) :], strict=True):
        score.clean_total += 1
        if output != doc.text:
            score.clean_changed += 1
            findings = [(f.start, f.end, f.kind) for f in scrubber.find(doc.text)]
            score_detections(score, doc, findings, kinds=KINDS)
    return score


def presidio_analyzer() -> Any:
    """Presidio's AnalyzerEngine with its pattern recognizers and no NLP model."""
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    with warnings.catch_warnings():
        # The no-op engine cannot feed context words to the enhancer; Presidio says so.
        warnings.simplefilter("ignore", UserWarning)
        return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])


def run_presidio(docs: list[Doc], clean: list[Doc]) -> Score:
    """Analyze every text with Presidio; a planted value is found if one result covers it."""
    analyzer = presidio_analyzer()
    entities = sorted(set(PRESIDIO_ENTITY.values()))
    texts = [d.text for d in docs + clean]
    analyzer.analyze(texts[0], language="en", entities=entities)  # warm-up: lazy loading
    started = time.perf_counter()
    results = [analyzer.analyze(text, language="en", entities=entities) for text in texts]
    score = Score(seconds=time.perf_counter() - started)
    score.megabytes = sum(len(t.encode()) for t in texts) / 1e6
    supported = tuple(PRESIDIO_ENTITY)
    for doc, found in zip(docs, results, strict=False):
        spans = [(r.start, r.end, r.entity_type) for r in found]
        for plant in doc.plants:
            if plant.kind not in supported:
                continue
            score.planted[plant.kind] += 1
            if any(s <= plant.start and plant.end <= e for s, e, _ in spans):
                score.found[plant.kind] += 1
        score_detections(score, doc, spans, kinds=supported)
    for doc, found in zip(clean, results[len(docs) :], strict=True):
        score.clean_total += 1
        if found:
            score.clean_changed += 1
            spans = [(r.start, r.end, r.entity_type) for r in found]
            score_detections(score, doc, spans, kinds=supported)
    return score


def simulator_check(events: int, seed: int) -> dict[str, Any]:
    """Run simulated events through the pipeline with the scrubbing anonymiser; count leftovers."""
    import polars as pl

    from flywheel.dev.simulator import SimulationConfig, simulate
    from ingest.anonymiser import TEXT_COLUMNS, PseudonymisingAnonymiser
    from ingest.pipeline import DedupeWindow, Pipeline, RawMessage
    from ingest.scrubbing import ScrubbingAnonymiser
    from privacy.keys import Keyring

    simulation = simulate(SimulationConfig(events=events, seed=seed, pii_rate=0.2))
    raw = [
        RawMessage("events", 0, i, None, json.dumps(e).encode()) for i, e in enumerate(simulation)
    ]
    keyring = Keyring(1, {1: b"k" * 32})
    pipeline = Pipeline(ScrubbingAnonymiser(keyring), max_event_bytes=10**6)
    batch = pipeline.process(raw, DedupeWindow(10**6))
    # The same batch with pseudonyms only (first, so it also warms polars up): what scrubbing
    # adds to building a lake frame.
    baseline = Pipeline(PseudonymisingAnonymiser(keyring), max_event_bytes=10**6)
    started = time.perf_counter()
    baseline.frame(batch)
    baseline_seconds = time.perf_counter() - started
    started = time.perf_counter()
    frame = pipeline.frame(batch)
    seconds = time.perf_counter() - started
    texts = frame.select(
        pl.concat_str(
            [
                pl.col("prompt").list.eval(pl.element().struct.field("content")).list.join("\n"),
                *[pl.col(c) for c in TEXT_COLUMNS if c != "prompt"],
            ],
            separator="\n",
            ignore_nulls=True,
        )
    ).to_series()
    blob = "\n".join(t for t in texts.to_list() if t)
    planted = [t for t in simulation.truth if t.get("record") == "planted"]
    left = [t for t in planted if t["value"] in blob]
    return {
        "events": len(raw),
        "rows": frame.height,
        "planted": len(planted),
        "left": len(left),
        "left_kinds": dict(Counter(t["kind"] for t in left)),
        "rows_with_report": int((frame["scrubbed"].list.len() > 0).sum()),
        "frame_seconds": seconds,
        "frame_seconds_pseudonyms_only": baseline_seconds,
    }


# --- Report ----------------------------------------------------------------------------------


def ratio(numerator: int, denominator: int) -> float | None:
    """numerator/denominator, or None when there is nothing to divide."""
    return numerator / denominator if denominator else None


def fmt(value: float | None, digits: int = 3) -> str:
    """A ratio for the table, or n/a."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def summarise(scrubber: Score, presidio: Score) -> dict[str, Any]:
    """Per-kind figures and the goal checks, as a JSON-ready dict."""
    rows = {}
    for kind in KINDS:
        rows[kind] = {
            "group": "structured" if kind in STRUCTURED else "secret",
            "planted": scrubber.planted[kind],
            "scrubber_recall": ratio(scrubber.found[kind], scrubber.planted[kind]),
            "scrubber_precision": ratio(
                scrubber.true_hits[kind], scrubber.true_hits[kind] + scrubber.false_hits[kind]
            ),
            "presidio_recall": ratio(presidio.found[kind], presidio.planted[kind]),
            "presidio_precision": ratio(
                presidio.true_hits[kind], presidio.true_hits[kind] + presidio.false_hits[kind]
            ),
        }

    def group_recall(score: Score, kinds: tuple[str, ...]) -> float | None:
        planted = sum(score.planted[k] for k in kinds)
        return ratio(sum(score.found[k] for k in kinds), planted)

    ours_speed = scrubber.megabytes / scrubber.seconds
    theirs_speed = presidio.megabytes / presidio.seconds
    # The recall goals hold for every kind, not just on average.
    min_structured = min(rows[k]["scrubber_recall"] or 0.0 for k in STRUCTURED)
    min_secret = min(rows[k]["scrubber_recall"] or 0.0 for k in SECRETS)
    clean_rate = scrubber.clean_changed / scrubber.clean_total
    return {
        "kinds": rows,
        "scrubber": {
            "structured_recall": group_recall(scrubber, STRUCTURED),
            "secret_recall": group_recall(scrubber, SECRETS),
            "min_structured_recall": min_structured,
            "min_secret_recall": min_secret,
            "clean_changed": clean_rate,
            "clean_texts": scrubber.clean_total,
            "mb_per_s": ours_speed,
        },
        "presidio": {
            "version": presidio_version(),
            "structured_recall": group_recall(presidio, tuple(PRESIDIO_ENTITY)),
            "clean_changed": presidio.clean_changed / presidio.clean_total,
            "mb_per_s": theirs_speed,
        },
        "speedup": ours_speed / theirs_speed,
        "megabytes": scrubber.megabytes,
        "goals": {
            "structured_recall": min_structured >= GOALS["structured_recall"],
            "secret_recall": min_secret >= GOALS["secret_recall"],
            "clean_changed": clean_rate < GOALS["clean_changed"],
            "speedup": ours_speed / theirs_speed >= GOALS["speedup"],
        },
    }


def presidio_version() -> str:
    """The installed presidio-analyzer's version."""
    from importlib.metadata import version

    return version("presidio-analyzer")


def line(label: str, planted: object, ours: str, ours_p: str, theirs: str, theirs_p: str,
         goal: str) -> str:  # fmt: skip
    """One row of the table."""
    return (
        f"{label:<16} {planted!s:>7}  {ours:>7} {ours_p:>9}   {theirs:>15} {theirs_p:>9}   {goal}"
    )


def verdict(ok: bool) -> str:
    """How a goal fared."""
    return "ok" if ok else "MISSED"


def print_table(summary: dict[str, Any], planted_docs: int, clean_docs: int) -> None:
    """The side-by-side table with the goals."""
    rows = summary["kinds"]
    planted = sum(r["planted"] for r in rows.values())
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.machine()}; corpus: {planted} planted values of {len(rows)} kinds in "
        f"{planted_docs} texts + {clean_docs} clean texts, {summary['megabytes']:.2f} MB"
    )
    print(
        f"presidio-analyzer {summary['presidio']['version']}: predefined pattern recognizers, "
        "no-op NLP engine, default score threshold (0)"
    )
    print()
    header = line("kind", "planted", "recall", "precision", "presidio recall", "precision", "goal")
    print(header)
    print("-" * len(header))
    for kind, row in rows.items():
        structured = row["group"] == "structured"
        goal = GOALS["structured_recall"] if structured else GOALS["secret_recall"]
        recall = row["scrubber_recall"]
        print(
            line(
                kind,
                row["planted"],
                fmt(recall),
                fmt(row["scrubber_precision"]),
                fmt(row["presidio_recall"]),
                fmt(row["presidio_precision"]),
                f"recall >= {goal} {verdict(recall is not None and recall >= goal)}",
            )
        )
    ours, theirs, goals = summary["scrubber"], summary["presidio"], summary["goals"]
    print("-" * len(header))
    goal = f"every kind >= {GOALS['structured_recall']} {verdict(goals['structured_recall'])}"
    print(
        line("structured PII", "", fmt(ours["structured_recall"]), "",
             fmt(theirs["structured_recall"]), "", goal)
    )  # fmt: skip
    goal = f"every kind >= {GOALS['secret_recall']} {verdict(goals['secret_recall'])}"
    print(line("secrets", "", fmt(ours["secret_recall"]), "", "n/a", "", goal))
    goal = f"< {GOALS['clean_changed']} {verdict(goals['clean_changed'])}"
    print(
        line("clean changed", ours["clean_texts"], fmt(ours["clean_changed"], 4), "",
             fmt(theirs["clean_changed"], 4), "", goal)
    )  # fmt: skip
    goal = (
        f">= {GOALS['speedup']:.0f}x presidio: {summary['speedup']:.1f}x "
        f"{verdict(goals['speedup'])}"
    )
    print(line("MB/s", "", f"{ours['mb_per_s']:.2f}", "", f"{theirs['mb_per_s']:.3f}", "", goal))


def main(argv: list[str] | None = None) -> int:
    """Build the corpus, run both engines, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-kind", type=int, default=110, help="planted values per kind")
    parser.add_argument("--clean", type=int, default=600, help="clean texts")
    parser.add_argument("--seed", type=int, default=7, help="corpus seed")
    parser.add_argument(
        "--simulator-events", type=int, default=3000, help="simulated events to check (0: skip)"
    )
    parser.add_argument("--show-misses", action="store_true", help="print missed and false hits")
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    values = Values(args.seed)
    docs = planted_corpus(values, args.per_kind)
    clean = clean_corpus(args.seed, args.clean)
    ours = run_scrubber(docs, clean)
    theirs = run_presidio(docs, clean)
    summary = summarise(ours, theirs)
    print_table(summary, len(docs), len(clean))
    if args.simulator_events:
        check = simulator_check(args.simulator_events, args.seed)
        summary["simulator"] = check
        print(
            f"\nsimulator: {check['events']} events through Pipeline + ScrubbingAnonymiser, "
            f"{check['planted']} planted values, {check['left']} left in the lake frame"
            f"{' ' + str(check['left_kinds']) if check['left_kinds'] else ''}; "
            f"{check['rows_with_report']} rows report removals; "
            f"frame built in {check['frame_seconds']:.3f} s "
            f"({check['frame_seconds_pseudonyms_only']:.3f} s with pseudonyms only)"
        )
    if args.show_misses:
        for kind, context in ours.misses:
            print("MISS", kind, repr(context))
        for kind, context in ours.false_examples:
            print("FALSE", kind, repr(context))
    if args.json_out:
        args.json_out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if all(summary["goals"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
