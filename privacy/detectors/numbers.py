"""Numbers with a checksum or a fixed shape: US social security numbers, payment cards (Luhn)
and IBANs (mod 97)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from stdnum import iban as stdnum_iban
from stdnum import luhn

from privacy.detectors.common import Finding, Probe, is_word_char

# ASCII digits only, here and in the detectors: PREFILTER must hold for Rust's regex too.
IBAN_HINT = re.compile(r"[A-Z]{2}\d{2}", re.ASCII)


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


def ssns(probe: Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _SSN.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if is_word_char(before) or before == "-" or is_word_char(after) or after == "-":
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


def cards(probe: Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _CARD.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        after = text[end : end + 2]
        if is_word_char(before) or before in ".,+-":
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


def ibans(probe: Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _IBAN.finditer(text):
        start = match.start()
        if start and is_word_char(text[start - 1]):
            continue
        value = match.group()
        # The match may run into a following word ("... 3000 IBAN"): try shorter prefixes.
        compact = value.replace(" ", "")
        positions = [i for i, c in enumerate(value) if c != " "]
        for length in range(len(compact), 14, -1):
            end = start + positions[length - 1] + 1
            if end < len(text) and is_word_char(text[end]):
                continue
            if stdnum_iban.is_valid(compact[:length]):
                yield Finding(start, end, "iban")
                break
