"""The pseudonym key file: private, refused when malformed, and never quoted in errors."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel.settings import Settings
from ingest.pipeline import build_pipeline
from privacy.keys import (
    DEMO_KEY_FILE,
    FINGERPRINTS,
    KEY_BYTES,
    Keyring,
    create_keyring,
    keyring_for,
    load_keyring,
    retire_key,
    rotate_keyring,
    write_keyring,
)

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(100, 132))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_create_keyring_writes_an_owner_only_file_that_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "keys.json"
    keyring = create_keyring(path)

    assert mode_of(path) == 0o600
    assert keyring.current == 1
    assert list(keyring.keys) == [1]
    assert len(keyring.keys[1]) == KEY_BYTES
    assert load_keyring(path) == keyring
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary left


def test_create_keyring_makes_a_new_random_key_each_time(tmp_path: Path) -> None:
    assert create_keyring(tmp_path / "a.json").keys != create_keyring(tmp_path / "b.json").keys


def test_create_keyring_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    original = create_keyring(path)
    content = path.read_bytes()

    with pytest.raises(ConfigError, match="exists already"):
        create_keyring(path)

    assert path.read_bytes() == content
    assert load_keyring(path) == original


def test_create_keyring_is_owner_only_even_over_a_stale_temporary(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    stale = tmp_path / "keys.json.tmp"
    stale.write_text("left over")
    os.chmod(stale, 0o644)

    create_keyring(path)

    assert mode_of(path) == 0o600


def test_write_keyring_round_trips_several_versions(tmp_path: Path) -> None:
    keyring = Keyring(current=2, keys={1: KEY_1, 2: KEY_2})
    path = tmp_path / "keys.json"
    write_keyring(keyring, path)
    assert mode_of(path) == 0o600
    assert json.loads(path.read_text()) == {
        "current": 2,
        "keys": {"1": KEY_1.hex(), "2": KEY_2.hex()},
    }
    assert load_keyring(path) == keyring


def test_load_keyring_without_a_path_says_which_setting_to_set() -> None:
    with pytest.raises(ConfigError) as caught:
        load_keyring(None)
    assert "FLYWHEEL_PRIVACY__HMAC_KEY_FILE" in str(caught.value)
    assert "flywheel keys create" in str(caught.value)


def test_load_keyring_of_a_missing_file_names_it_and_how_to_create_one(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(ConfigError) as caught:
        load_keyring(path)
    assert str(path) in str(caught.value)
    assert "does not exist" in str(caught.value)
    assert "flywheel keys create" in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json",
        '{"current": 1, "keys": {"1": "' + KEY_1.hex() + '"',  # truncated
        "[]",
        '"' + KEY_1.hex() + '"',
        '{"keys": {"1": "' + KEY_1.hex() + '"}}',
        '{"current": 1}',
        '{"current": null, "keys": {"1": "' + KEY_1.hex() + '"}}',
        '{"current": "one", "keys": {"1": "' + KEY_1.hex() + '"}}',
        '{"current": 1, "keys": ["' + KEY_1.hex() + '"]}',
        '{"current": 1, "keys": {"one": "' + KEY_1.hex() + '"}}',
        '{"current": 1, "keys": {"1": "' + KEY_1.hex()[:-1] + 'z"}}',
        '{"current": 1, "keys": {"1": 12345}}',
    ],
)
def test_load_keyring_refuses_a_malformed_file_without_quoting_it(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_keyring(path)
    message = str(caught.value)
    assert message == f"the pseudonym key file {path} is not a valid key file"
    assert KEY_1.hex()[:16] not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_load_keyring_refuses_a_current_version_without_a_key(tmp_path: Path) -> None:
    path = write_json(tmp_path / "keys.json", {"current": 2, "keys": {"1": KEY_1.hex()}})
    with pytest.raises(ConfigError) as caught:
        load_keyring(path)
    assert "no key for its current version" in str(caught.value)
    assert str(path) in str(caught.value)
    assert KEY_1.hex()[:16] not in str(caught.value)


@pytest.mark.parametrize("short", [b"", b"\x01" * 15])
def test_load_keyring_refuses_a_short_key(tmp_path: Path, short: bytes) -> None:
    path = write_json(
        tmp_path / "keys.json", {"current": 2, "keys": {"1": short.hex(), "2": KEY_2.hex()}}
    )
    with pytest.raises(ConfigError) as caught:
        load_keyring(path)
    assert "shorter than 16 bytes" in str(caught.value)
    assert KEY_2.hex()[:16] not in str(caught.value)
    if short:
        assert short.hex() not in str(caught.value)


def test_load_keyring_accepts_a_16_byte_key(tmp_path: Path) -> None:
    key = b"\x07" * 16
    path = write_json(tmp_path / "keys.json", {"current": 1, "keys": {"1": key.hex()}})
    assert load_keyring(path) == Keyring(current=1, keys={1: key})


def test_pseudonym_is_hmac_sha256_in_hex() -> None:
    # RFC 4231, test case 2.
    keyring = Keyring(current=1, keys={1: b"Jefe"})
    assert keyring.pseudonym("what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_pseudonym_is_deterministic_per_version_and_hides_the_id() -> None:
    keyring = Keyring(current=2, keys={1: KEY_1, 2: KEY_2})
    raw = "user-1"
    pseudonym = keyring.pseudonym(raw)

    assert re.fullmatch(r"[0-9a-f]{64}", pseudonym)
    assert pseudonym == keyring.pseudonym(raw)
    assert pseudonym == Keyring(current=2, keys={1: KEY_1, 2: KEY_2}).pseudonym(raw)
    assert pseudonym == keyring.pseudonym(raw, version=2)
    assert pseudonym != keyring.pseudonym(raw, version=1)
    assert pseudonym != keyring.pseudonym("user-2")
    assert raw not in pseudonym and pseudonym != raw.encode().hex()


def test_all_pseudonyms_covers_every_version() -> None:
    keyring = Keyring(current=3, keys={1: KEY_1, 2: KEY_2, 3: b"\x03" * 32})
    pseudonyms = keyring.all_pseudonyms("user-1")

    assert set(pseudonyms) == {1, 2, 3}
    assert len(set(pseudonyms.values())) == 3
    for version, pseudonym in pseudonyms.items():
        assert pseudonym == keyring.pseudonym("user-1", version=version)
    assert pseudonyms[3] == keyring.pseudonym("user-1")


def test_rotate_adds_a_current_version_and_keeps_the_old(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    first = create_keyring(path)

    rotated = rotate_keyring(path)

    assert rotated.current == 2 and set(rotated.keys) == {1, 2}
    assert rotated.keys[1] == first.keys[1] and rotated.keys[2] != first.keys[1]
    assert load_keyring(path) == rotated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert rotated.pseudonym("user-1") != first.pseudonym("user-1")
    assert rotated.all_pseudonyms("user-1")[1] == first.pseudonym("user-1")


def test_retire_removes_an_old_version_but_never_the_current(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    create_keyring(path)
    rotate_keyring(path)

    with pytest.raises(ConfigError, match="current one; rotate"):
        retire_key(path, 2)
    with pytest.raises(ConfigError, match="no key version 7"):
        retire_key(path, 7)
    assert set(retire_key(path, 1).keys) == {2}
    assert set(load_keyring(path).keys) == {2}


# --- The lake's key fingerprints -----------------------------------------------------------------


def test_fingerprints_tell_keys_apart_without_revealing_them() -> None:
    one, other = Keyring(1, {1: b"k" * 32}), Keyring(1, {1: b"j" * 32})
    assert one.fingerprint(1) == Keyring(1, {1: b"k" * 32}).fingerprint(1)
    assert one.fingerprint(1) != other.fingerprint(1)
    assert re.fullmatch(r"[0-9a-f]{16}", one.fingerprint(1))
    assert (b"k" * 32).hex()[:16] not in one.fingerprint(1)


def settings_with(data_dir: Path, key_file: Path) -> Settings:
    return Settings(data_dir=data_dir, privacy={"hmac_key_file": key_file})


def test_a_pipeline_records_its_key_and_another_key_file_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    lake_key, other_key = tmp_path / "lake-key.json", tmp_path / "other-key.json"
    keyring = create_keyring(lake_key)
    create_keyring(other_key)
    assert keyring_for(settings_with(data_dir, other_key)) is not None  # nothing recorded yet

    build_pipeline(settings_with(data_dir, lake_key), keyring)

    recorded = json.loads((data_dir / FINGERPRINTS).read_text())
    assert recorded == {"1": keyring.fingerprint(1)}
    assert keyring_for(settings_with(data_dir, lake_key)).keys == keyring.keys
    other = settings_with(data_dir, other_key)
    for use in (lambda: keyring_for(other), lambda: build_pipeline(other, load_keyring(other_key))):
        with pytest.raises(ConfigError) as refused:
            use()
        assert "is not the one this data dir's lake was pseudonymised with" in str(refused.value)
        assert keyring.fingerprint(1) in str(refused.value)
        assert str(other_key) in str(refused.value)


def test_rotated_and_retired_versions_keep_matching(tmp_path: Path) -> None:
    data_dir, key_file = tmp_path / "data", tmp_path / "keys.json"
    create_keyring(key_file)
    build_pipeline(settings_with(data_dir, key_file), load_keyring(key_file))
    rotated = rotate_keyring(key_file)

    build_pipeline(settings_with(data_dir, key_file), rotated)  # records version 2 as well
    retired = retire_key(key_file, 1)

    recorded = json.loads((data_dir / FINGERPRINTS).read_text())
    assert recorded == {"1": rotated.fingerprint(1), "2": rotated.fingerprint(2)}
    assert keyring_for(settings_with(data_dir, key_file)).keys == retired.keys


def test_a_key_file_with_none_of_the_lakes_versions_is_refused(tmp_path: Path) -> None:
    data_dir, lake_key, other_key = tmp_path / "data", tmp_path / "lake.json", tmp_path / "o.json"
    build_pipeline(settings_with(data_dir, lake_key), create_keyring(lake_key))
    write_keyring(Keyring(2, {2: KEY_2}), other_key)  # a version 2 the lake never saw

    with pytest.raises(ConfigError, match="holds none of the key versions .* \\(1;"):
        keyring_for(settings_with(data_dir, other_key))


def test_without_a_key_file_the_error_points_at_the_demos_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    create_keyring(data_dir / DEMO_KEY_FILE)
    with pytest.raises(ConfigError) as refused:
        keyring_for(Settings(data_dir=data_dir))
    assert "FLYWHEEL_PRIVACY__HMAC_KEY_FILE" in str(refused.value)
    assert str(data_dir / DEMO_KEY_FILE) in str(refused.value)


def test_an_unreadable_fingerprint_file_is_a_clear_error(tmp_path: Path) -> None:
    data_dir, key_file = tmp_path / "data", tmp_path / "keys.json"
    create_keyring(key_file)
    (data_dir / FINGERPRINTS).parent.mkdir(parents=True)
    (data_dir / FINGERPRINTS).write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the key fingerprints"):
        keyring_for(settings_with(data_dir, key_file))
