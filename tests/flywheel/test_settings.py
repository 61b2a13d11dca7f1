from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from flywheel.errors import ConfigError
from flywheel.settings import EventTypeName, load_settings
from ingest.contract import EVENT_TYPES


def test_defaults_are_embedded_mode_under_data() -> None:
    settings = load_settings()
    assert settings.embedded
    assert str(settings.data_dir) == "data"
    assert settings.api.max_events_per_request == 500
    assert settings.api.max_request_bytes == 1024 * 1024
    assert settings.api.max_event_bytes == 64 * 1024


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", "/srv/flywheel")
    monkeypatch.setenv("FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS", "10.0.0.1:9092,10.0.0.2:9092")
    monkeypatch.setenv("FLYWHEEL_KAFKA__PARTITIONS", "12")
    monkeypatch.setenv("FLYWHEEL_API__WRITE_KEYS", '["0123456789abcdef-key"]')
    monkeypatch.setenv("FLYWHEEL_PRIVACY__HMAC_KEY_FILE", "/run/secrets/hmac")
    settings = load_settings()
    assert not settings.embedded
    assert str(settings.data_dir) == "/srv/flywheel"
    assert settings.kafka.partitions == 12
    assert settings.api.write_keys[0].get_secret_value() == "0123456789abcdef-key"
    assert str(settings.privacy.hmac_key_file) == "/run/secrets/hmac"


def test_blank_bootstrap_means_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS", "  ")
    assert load_settings().embedded


def test_secrets_are_not_printed() -> None:
    settings = load_settings(api={"write_keys": ["0123456789abcdef-key"]})
    assert "0123456789abcdef-key" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("FLYWHEEL_API__WRITE_KEYS", '["changeme"]', "placeholder"),
        ("FLYWHEEL_API__ADMIN_KEYS", '["short"]', "at least 16"),
        ("FLYWHEEL_API__CORS_ORIGINS", '["*"]', "not '*'"),
        ("FLYWHEEL_API__WRITE_KEYS", "not-json", "FLYWHEEL_API__WRITE_KEYS could not be parsed"),
        ("FLYWHEEL_KAFKA__PARTITIONS", "0", "FLYWHEEL_KAFKA__PARTITIONS: "),
        ("FLYWHEEL_LOG_LEVEL", "LOUD", "FLYWHEEL_LOG_LEVEL: "),
        ("FLYWHEEL_DATA_DIR", __file__, "is a file, not a folder"),
    ],
)
def test_bad_settings_are_one_clear_config_error(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", "")
    monkeypatch.setenv("FLYWHEEL_PRIVACY__HMAC_KEY_FILE", "")
    settings = load_settings()
    assert settings.data_dir == Path("data") and settings.privacy.hmac_key_file is None


def test_the_log_level_takes_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


def test_a_dotenv_that_is_not_utf8_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_bytes(b"FLYWHEEL_LOG_LEVEL=caf\xe9\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="the .env file here is not UTF-8 text"):
        load_settings()


def test_publishable_keys_take_json_objects_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "FLYWHEEL_API__PUBLISHABLE_KEYS",
        '[{"key": "pk-web-0123456789abcdef", "origins": ["https://chat.example.com"]},'
        ' {"key": "pk-ide-0123456789abcdef", "name": "ide", "origins": ["http://localhost:3000"],'
        ' "rate_per_second": 5, "burst": 20, "event_types": ["copy", "rating"]}]',
    )
    monkeypatch.setenv("FLYWHEEL_API__CORS_ORIGINS", '["https://admin.example.com"]')
    web, ide = load_settings().api.publishable_keys
    assert (web.name, web.rate_per_second, web.burst) == ("publishable-1", 50, 200)
    assert web.event_types == ["copy", "edit", "regenerate", "ab_choice", "rating"]
    assert (ide.name, ide.rate_per_second, ide.burst, ide.event_types) == (
        "ide", 5, 20, ["copy", "rating"]
    )  # fmt: skip
    assert load_settings().api.browser_origins == [
        "https://admin.example.com", "https://chat.example.com", "http://localhost:3000"
    ]  # fmt: skip
    assert "pk-web-0123456789abcdef" not in repr(load_settings())


def test_origins_are_kept_as_browsers_send_them() -> None:
    api = load_settings(
        api={"cors_origins": ["HTTPS://Chat.Example.com:443", "http://localhost:8080"]}
    ).api
    assert api.cors_origins == ["https://chat.example.com", "http://localhost:8080"]


def test_the_settings_know_every_event_type_of_the_contract() -> None:
    assert get_args(EventTypeName) == EVENT_TYPES


@pytest.mark.parametrize(
    ("publishable", "fragment"),
    [
        ({"key": "changeme", "origins": ["https://a.example"]}, "placeholder"),
        ({"key": "short", "origins": ["https://a.example"]}, "at least 16"),
        ({"key": "pk-0123456789abcdef", "origins": ["*"]}, "not '*'"),
        ({"key": "pk-0123456789abcdef", "origins": ["https://*.example.com"]}, "not '*'"),
        ({"key": "pk-0123456789abcdef", "origins": ["https://a.example/"]}, "not an origin"),
        ({"key": "pk-0123456789abcdef", "origins": ["a.example"]}, "not an origin"),
        ({"key": "pk-0123456789abcdef", "origins": []}, "ORIGINS"),
        ({"key": "pk-0123456789abcdef"}, "ORIGINS"),
        ({"key": "pk-0123456789abcdef", "origins": ["https://a.example"], "burst": 0}, "BURST"),
        (
            {"key": "pk-0123456789abcdef", "origins": ["https://a.example"], "name": "a b"},
            "NAME",
        ),
        (
            {"key": "pk-0123456789abcdef", "origins": ["https://a.example"], "event_types": ["x"]},
            "EVENT_TYPES",
        ),
    ],
)
def test_bad_publishable_keys_are_one_clear_config_error(
    publishable: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(api={"publishable_keys": [publishable]})
    assert "FLYWHEEL_API__PUBLISHABLE_KEYS" in str(caught.value)
    assert fragment in str(caught.value)
    assert "pk-0123456789abcdef" not in str(caught.value)


@pytest.mark.parametrize("scope", ["write_keys", "reader_keys", "admin_keys", "reviewer_keys"])
def test_a_publishable_key_is_never_also_a_secret_key(scope: str) -> None:
    key = "pk-0123456789abcdef"
    listed = [{"key": key, "reviewer": "ana"}] if scope == "reviewer_keys" else [key]
    with pytest.raises(
        ConfigError, match="key 1 is also a write, reader, admin or reviewer key"
    ) as caught:
        load_settings(
            api={
                scope: listed,
                "publishable_keys": [{"key": key, "origins": ["https://a.example"]}],
            }
        )
    assert key not in str(caught.value)


def test_reviewer_keys_name_their_reviewer_and_are_real_keys() -> None:
    settings = load_settings(
        api={"reviewer_keys": [{"key": "rv-0123456789abcdef", "reviewer": "ana@example.com"}]}
    )
    [reviewer] = settings.api.reviewer_keys
    assert reviewer.reviewer == "ana@example.com"
    for bad, named in [
        ({"key": "changeme", "reviewer": "ana"}, "placeholder"),
        ({"key": "short", "reviewer": "ana"}, "at least 16"),
        ({"key": "rv-0123456789abcdef"}, "REVIEWER_KEYS__0__REVIEWER"),
        ({"key": "rv-0123456789abcdef", "reviewer": " "}, "REVIEWER_KEYS__0__REVIEWER"),
    ]:
        with pytest.raises(ConfigError, match=named) as caught:
            load_settings(api={"reviewer_keys": [bad]})
        assert "\n" not in str(caught.value)
    twice = [{"key": "rv-0123456789abcdef", "reviewer": r} for r in ("ana", "bo")]
    with pytest.raises(ConfigError, match="REVIEWER_KEYS: key 2 is listed twice"):
        load_settings(api={"reviewer_keys": twice})
    # A reviewer judges blind: their key may not also be an admin, reader or write key.
    for scope in ("admin_keys", "reader_keys", "write_keys"):
        shared = {"reviewer_keys": [{"key": "rv-0123456789abcdef", "reviewer": "ana"}],
                  scope: ["rv-0123456789abcdef"]}  # fmt: skip
        with pytest.raises(ConfigError, match="key 1 is also a write, reader or admin key"):
            load_settings(api=shared)


def test_publishable_keys_and_their_names_are_unique() -> None:
    origins = ["https://a.example"]
    with pytest.raises(ConfigError, match="key 2 is listed twice"):
        load_settings(
            api={"publishable_keys": [{"key": "pk-0123456789abcdef", "origins": origins}] * 2}
        )
    named = [
        {"key": "pk-0123456789abcdef", "origins": origins, "name": "web"},
        {"key": "pk-fedcba9876543210", "origins": origins, "name": "web"},
    ]
    with pytest.raises(ConfigError, match="the name 'web' is used twice"):
        load_settings(api={"publishable_keys": named})
