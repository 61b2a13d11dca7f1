"""HMAC keys for user pseudonyms, kept in a key file outside the lake and the warehouse.

The key file is JSON, readable by its owner only::

    {"current": 2, "keys": {"1": "<64 hex chars>", "2": "<64 hex chars>"}}

New events are pseudonymised with the ``current`` version; older versions stay in the file so an
erasure request can still find events pseudonymised with them. Each landed event records the key
version beside its pseudonym.

A key file that is not the lake's would make every pseudonym miss: an erasure would find nobody
and report success, an export would re-key users so that no later erasure finds them. So the lake
records each key version's fingerprint (``<data dir>/lake/key-fingerprints.json``: an HMAC of a
fixed label under the key, which tells keys apart without revealing them) when an ingest pipeline
is first built for it, and every command that uses the key on a data dir (``keyring_for``)
refuses a key file whose version of a recorded key has another fingerprint. A lake landed before
fingerprints were recorded is trusted to the key first used with it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from flywheel.errors import ConfigError
from flywheel.files import replace_text

if TYPE_CHECKING:
    from flywheel.settings import Settings

KEY_BYTES = 32
FINGERPRINTS = Path("lake") / "key-fingerprints.json"
"""Where a data dir records the fingerprints of the key versions its lake was pseudonymised
with (never the keys)."""
DEMO_KEY_FILE = Path("keys") / "pseudonym-keys.json"
"""The key file ``flywheel demo`` creates in a data dir when none is configured."""
_FINGERPRINT_LABEL = b"flywheel-key-fingerprint-v1"


def normalise_user_id(raw_id: str) -> str:
    """The form of a user id that is pseudonymised: one user, however the id was typed.

    Unicode compatibility forms folded (NFKC: fullwidth letters, ligatures), invisible format
    characters (zero-width spaces, joiners, the byte-order mark) removed, whitespace trimmed at
    both ends and collapsed to one space inside, and case folded. So ``"  Alice\t"``,
    ``"alice"`` and ``"ＡＬＩＣＥ"`` are one user: an erasure of any of them erases all, and
    none comes back as a new user. The price: a system whose ids differ only by case has such
    users merged (an erasure of one erases the other too), which errs on the side of erasure.
    An id that normalises to nothing (only invisible characters) is kept as it is.
    """
    if raw_id.isascii():  # the common case, several times faster
        normal = " ".join(raw_id.split()).lower()
    else:
        folded = unicodedata.normalize("NFKC", raw_id)
        visible = "".join(c for c in folded if unicodedata.category(c) != "Cf")
        normal = " ".join(visible.split()).casefold()
    return normal or raw_id


@dataclass(frozen=True)
class Keyring:
    """The HMAC keys by version, and which one new pseudonyms use."""

    current: int
    keys: dict[int, bytes]

    def pseudonym(self, raw_id: str, *, version: int | None = None) -> str:
        """HMAC-SHA256 of the normalised id (``normalise_user_id``) under a key version (the
        current one by default), in hex."""
        return self._hmac(normalise_user_id(raw_id), version)

    def all_pseudonyms(self, raw_id: str) -> dict[int, str]:
        """The id's pseudonym under every key version held (what erasure searches for)."""
        return {version: self.pseudonym(raw_id, version=version) for version in self.keys}

    def verbatim_pseudonyms(self, raw_id: str) -> dict[int, str]:
        """The pseudonyms the id had, under every key version, before ids were normalised (the
        HMAC of the id exactly as sent), when that differs from ``all_pseudonyms``: erasure
        searches for these too, so events landed before normalisation are found when the
        request names the id as the frontend sent it."""
        if normalise_user_id(raw_id) == raw_id:
            return {}
        return {version: self._hmac(raw_id, version) for version in self.keys}

    def identifier(self, value: str) -> str:
        """The stand-in for an identifier that holds personal data or a secret (a conversation
        id that is an e-mail address, a model name with a token in it): ``redacted-`` and 24 hex
        digits of an HMAC under the current key, apart from user pseudonyms by a label."""
        return "redacted-" + self._hmac("identifier\x00" + value, None)[:24]

    def _hmac(self, value: str, version: int | None) -> str:
        key = self.keys[self.current if version is None else version]
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()

    def fingerprint(self, version: int) -> str:
        """A key version's fingerprint: an HMAC of a fixed label under it, 16 hex digits."""
        return hmac.new(self.keys[version], _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def load_keyring(path: Path | None) -> Keyring:
    """Read the key file; a missing or malformed file is a ``ConfigError`` saying what to do."""
    if path is None:
        raise ConfigError(
            "no pseudonym key: set FLYWHEEL_PRIVACY__HMAC_KEY_FILE "
            "(create one with `flywheel keys create FILE`)"
        )
    try:
        data = json.loads(path.read_text())
        keys = {int(version): bytes.fromhex(value) for version, value in data["keys"].items()}
        current = int(data["current"])
    except FileNotFoundError:
        raise ConfigError(
            f"the pseudonym key file {path} does not exist "
            "(create one with `flywheel keys create FILE`)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ConfigError(f"the pseudonym key file {path} is not a valid key file") from None
    if current not in keys:
        raise ConfigError(f"the pseudonym key file {path} has no key for its current version")
    if any(len(key) < 16 for key in keys.values()):
        raise ConfigError(f"the pseudonym key file {path} holds a key shorter than 16 bytes")
    return Keyring(current=current, keys=keys)


def create_keyring(path: Path) -> Keyring:
    """Write a new key file with one random key (version 1), readable by its owner only."""
    if path.exists():
        raise ConfigError(f"{path} exists already; not overwriting a key file")
    keyring = Keyring(current=1, keys={1: secrets.token_bytes(KEY_BYTES)})
    write_keyring(keyring, path)
    return keyring


def write_keyring(keyring: Keyring, path: Path) -> None:
    """Write the key file atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"current": keyring.current, "keys": {str(v): k.hex() for v, k in keyring.keys.items()}}
    temporary = path.with_name(path.name + ".tmp")
    # A stale temporary (or a link planted there) must not lend the key its mode or location.
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


def rotate_keyring(path: Path) -> Keyring:
    """Add a new random key version to the key file and make it current (older ones stay, so
    erasure still finds events pseudonymised with them)."""
    keyring = load_keyring(path)
    version = max(keyring.keys) + 1
    rotated = Keyring(
        current=version, keys={**keyring.keys, version: secrets.token_bytes(KEY_BYTES)}
    )
    write_keyring(rotated, path)
    return rotated


def retire_key(path: Path, version: int) -> Keyring:
    """Remove an old key version from the key file. Events pseudonymised with it can then no
    longer be found by raw id (erasure), and datasets exported under it no longer be searched."""
    keyring = load_keyring(path)
    if version not in keyring.keys:
        raise ConfigError(f"the key file {path} has no key version {version}")
    if version == keyring.current:
        raise ConfigError(
            f"key version {version} is the current one; rotate (`flywheel keys rotate`) first"
        )
    kept = {v: k for v, k in keyring.keys.items() if v != version}
    retired = Keyring(current=keyring.current, keys=kept)
    write_keyring(retired, path)
    return retired


def keyring_for(settings: Settings) -> Keyring:
    """The configured key file, checked against the fingerprints the data dir's lake recorded
    (``check_keyring``; an ingest pipeline records its own as it is built)."""
    path = settings.privacy.hmac_key_file
    demo_key = settings.data_dir / DEMO_KEY_FILE
    if path is None and demo_key.is_file():
        raise ConfigError(
            "no pseudonym key: set FLYWHEEL_PRIVACY__HMAC_KEY_FILE to the key file this data "
            f"dir's events were pseudonymised with (`flywheel demo` used {demo_key})"
        )
    keyring = load_keyring(path)
    check_keyring(settings.data_dir, keyring, key_file=path)
    return keyring


def check_keyring(
    data_dir: Path, keyring: Keyring, *, key_file: Path | None = None, record: bool = False
) -> None:
    """Refuse (``ConfigError``) a keyring holding a key version the data dir's lake recorded
    with another fingerprint, or none of the versions it recorded. Other versions only the lake
    knows were retired; versions only the keyring holds were not used yet. ``record``: add the
    current version's fingerprint."""
    path = data_dir / FINGERPRINTS
    try:
        recorded = {int(v): str(f) for v, f in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        recorded = {}
    except (OSError, ValueError, AttributeError) as exc:
        raise ConfigError(f"cannot read the key fingerprints {path}: {exc}") from None
    if recorded and not recorded.keys() & keyring.keys.keys():
        raise ConfigError(
            f"the pseudonym key file {key_file or '(given)'} holds none of the key versions this "
            f"data dir's lake was pseudonymised with ({', '.join(map(str, sorted(recorded)))}; "
            f"{path}): set FLYWHEEL_PRIVACY__HMAC_KEY_FILE to the lake's key file"
        )
    for version, expected in sorted(recorded.items()):
        if version in keyring.keys and keyring.fingerprint(version) != expected:
            raise ConfigError(
                f"the pseudonym key file {key_file or '(given)'} is not the one this data dir's "
                f"lake was pseudonymised with: its key version {version} has fingerprint "
                f"{keyring.fingerprint(version)}, the lake's {expected} ({path}); set "
                "FLYWHEEL_PRIVACY__HMAC_KEY_FILE to the lake's key file"
            )
    if record and keyring.current not in recorded:
        recorded[keyring.current] = keyring.fingerprint(keyring.current)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_text(path, json.dumps({str(v): f for v, f in sorted(recorded.items())}) + "\n")
