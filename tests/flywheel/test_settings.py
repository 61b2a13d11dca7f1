from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.errors import ConfigError
from flywheel.settings import load_settings


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
