"""Contact details: e-mail addresses (spelled-out ones too), IP addresses and phone numbers."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

import phonenumbers

from privacy.detectors.common import Finding, Probe, is_word_char

# ASCII digits only, here and in the detectors: PREFILTER must hold for Rust's regex too.
IPV4_HINT = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}", re.ASCII)
IPV6_HINT = re.compile(r"[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:")


RAW_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
"""An e-mail address as the export gate searches published text for it (``RAW_SECRETS``): one
pattern that Python's ``re`` and Rust's ``regex`` (polars) read alike, where ``emails`` scans
outwards from each "@" in Python. It is the looser of the two on purpose: remotes (``git@host``)
and image names (``logo@2x.png``) that the scrubber keeps stop an export too."""


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


def emails(probe: Probe) -> Iterator[Finding]:
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
SPELLED_LITERALS = ("dot", "at)", "at]", "at}", "at>", "at )", "at ]", "at }", "at >")
SPELLED_HINT = r"(?i:dot|at ?[)\]}>])"  # the same, for PREFILTER
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


def spelled_emails(probe: Probe) -> Iterator[Finding]:
    text = probe.text
    for at in _SPELLED_AT.finditer(text):
        local = _SPELLED_LOCAL.search(text, max(0, at.start() - 128), at.start())
        if local is None or not local.group():
            continue
        start = local.start()
        if start and (is_word_char(text[start - 1]) or text[start - 1] in ".%+-<"):
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
        if end < len(text) and (is_word_char(text[end]) or text[end] == "-"):
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


def ipv4(probe: Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _IPV4.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        after = text[end : end + 2]
        if is_word_char(before) or before == "." or after[:1].isalnum() or after[:1] == "_":
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


def ipv6(probe: Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _IPV6.finditer(text):
        start, end = match.span()
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if is_word_char(before) or before in ":." or is_word_char(after):
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


def phones(probe: Probe) -> Iterator[Finding]:
    text = probe.text
    for match in _PHONE.finditer(text):
        start, end = match.span()
        while text[start] in "+(" and not text[start + 1].isdigit():  # "((503) 556-2335)"
            start += 1
        before = text[start - 1] if start else " "
        if is_word_char(before) or before in "+/.-":
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
