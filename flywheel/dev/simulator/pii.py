"""Planted PII and secrets: fresh values of each kind, shaped as real ones are (a card number
passes the Luhn check, a token has its vendor's prefix), for the anonymiser to be scored on."""

from __future__ import annotations

import random
import string

from flywheel.dev.simulator.texts import DOMAINS, NAMES

_ALNUM = string.ascii_letters + string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _digits(rng: random.Random, n: int) -> str:
    return _chars(rng, string.digits, n)


def _luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload`` + digit pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def _card(rng: random.Random) -> str:
    payload = rng.choice(("4", "51", "53", "55"))
    payload += _digits(rng, 15 - len(payload))
    number = payload + _luhn_check_digit(payload)
    if rng.random() < 0.5:
        return " ".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def _phone(rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return f"+44 20 7946 {_digits(rng, 4)}"
    if style == 1:
        return f"(555) {_digits(rng, 3)}-{_digits(rng, 4)}"
    if style == 2:
        return f"+1 415 555 {_digits(rng, 4)}"
    return f"+49 30 {_digits(rng, 8)}"


def pii_value(rng: random.Random, kind: str) -> str:
    """A fresh value of one kind; for a URL password, only the password (the secret part)."""
    if kind == "email":
        return f"{rng.choice(NAMES)}.{rng.choice(NAMES)}{rng.randrange(100)}@{rng.choice(DOMAINS)}"
    if kind == "phone":
        return _phone(rng)
    if kind == "ipv4":
        first = rng.choice((23, 45, 81, 92, 104, 151, 185, 203, 212))
        return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if kind == "credit_card":
        return _card(rng)
    if kind == "aws_access_key":
        return "AKIA" + _chars(rng, _UPPER_ALNUM, 16)
    if kind == "github_token":
        return "ghp_" + _chars(rng, _ALNUM, 36)
    if kind == "slack_token":
        return f"xoxb-{_digits(rng, 11)}-{_digits(rng, 13)}-{_chars(rng, _ALNUM, 24)}"
    if kind == "password_in_url":
        return _chars(rng, _ALNUM, 10) + rng.choice("!#%*") + _digits(rng, 2)
    return _chars(rng, _ALNUM, 32)  # api_key


def db_url(rng: random.Random, password: str) -> str:
    """A database URL whose password is ``password``."""
    host = rng.choice(("db.internal", "localhost", "pg-prod.acme-corp.io"))  # no stray IPs
    return f"postgres://{rng.choice(NAMES)}:{password}@{host}:5432/{rng.choice(('app', 'sales'))}"
