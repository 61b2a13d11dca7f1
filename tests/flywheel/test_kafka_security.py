"""Kafka's TLS and SASL settings: secrets from files, the passthrough's checks, what each client
is given, and that a password shows nowhere (repr, errors, logs)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from kafka.net.sasl.oauth import AbstractTokenProvider

from flywheel.errors import ConfigError, KafkaAuthError
from flywheel.kafka import producer_config, refused, security_config, translate
from flywheel.settings import KafkaSettings, load_settings
from flywheel.shell.cli import exit_code

PASSWORD = "s3cret-kafka-password-81"


def sasl(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed by the settings\n")
    return {
        "bootstrap_servers": "broker-1:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "flywheel-app",
        "sasl_password": PASSWORD,
        "ssl_cafile": str(ca),
        **fields,
    }


def test_the_password_is_read_from_a_file_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    settings = KafkaSettings(**sasl(tmp_path, sasl_password=None, sasl_password_file=secret))
    assert settings.sasl_secret() is not None
    assert settings.sasl_secret().get_secret_value() == PASSWORD  # type: ignore[union-attr]
    # A copy made from the dump reads the file again (it is not in the dump).
    assert PASSWORD not in str(settings.model_dump())
    again = KafkaSettings.model_validate(settings.model_dump())
    assert again.sasl_secret() == settings.sasl_secret()


def test_environment_variables_configure_sasl_ssl(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    (tmp_path / "ca.pem").write_text("x")
    monkeypatch.setenv("FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS", "broker-1:9093")
    monkeypatch.setenv("FLYWHEEL_KAFKA__SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("FLYWHEEL_KAFKA__SASL_MECHANISM", "scram-sha-256")
    monkeypatch.setenv("FLYWHEEL_KAFKA__SASL_USERNAME", "flywheel-app")
    monkeypatch.setenv("FLYWHEEL_KAFKA__SASL_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("FLYWHEEL_KAFKA__SSL_CAFILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("FLYWHEEL_KAFKA__CLIENT_PROPERTIES", '{"connections_max_idle_ms": 60000}')
    kafka = load_settings().kafka
    assert (kafka.security_protocol, kafka.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert kafka.client_properties == {"connections_max_idle_ms": 60000}
    assert PASSWORD not in repr(kafka) and PASSWORD not in str(load_settings())


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"sasl_mechanism": None}, "needs FLYWHEEL_KAFKA__SASL_MECHANISM"),
        ({"security_protocol": "SSL"}, "SASL_MECHANISM is set but"),
        ({"sasl_username": None}, "needs FLYWHEEL_KAFKA__SASL_USERNAME"),
        ({"sasl_password": None}, "needs FLYWHEEL_KAFKA__SASL_PASSWORD_FILE"),
        ({"sasl_password_file": "/nowhere/password"}, "are both set"),
        ({"sasl_password": "changeme"}, "placeholder"),
        ({"sasl_mechanism": "OAUTHBEARER"}, "needs FLYWHEEL_KAFKA__SASL_OAUTH_TOKEN_PROVIDER"),
        ({"ssl_cafile": "/nowhere/ca.pem"}, "FLYWHEEL_KAFKA__SSL_CAFILE: /nowhere/ca.pem is not"),
        ({"client_properties": {"ssl_cipherz": "x"}}, "unknown kafka-python client property"),
        ({"client_properties": {"acks": 1}}, "acks is pinned to all"),
        ({"client_properties": {"sasl_plain_password": "x"}}, "FLYWHEEL_KAFKA__SASL_PASSWORD"),
        ({"librdkafka_properties": {"sasl.password": "x"}}, "FLYWHEEL_KAFKA__SASL_PASSWORD"),
        ({"librdkafka_properties": {"group.id": "x"}}, "FLYWHEEL_INGEST__GROUP_ID"),
    ],
)
def test_incomplete_or_wrong_security_is_one_config_error_without_the_password(
    tmp_path: Path, fields: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(kafka=sasl(tmp_path, **fields))
    message = str(caught.value)
    assert fragment in message
    assert PASSWORD not in message and "\n" not in message


@pytest.mark.parametrize(("content", "fragment"), [("", "is empty"), (None, "cannot read")])
def test_a_password_file_that_is_empty_or_missing_is_named(
    tmp_path: Path, content: str | None, fragment: str
) -> None:
    secret = tmp_path / "password"
    if content is not None:
        secret.write_text(content)
    with pytest.raises(ConfigError, match=f"SASL_PASSWORD_FILE: .*{fragment}"):
        load_settings(kafka=sasl(tmp_path, sasl_password=None, sasl_password_file=str(secret)))


def test_each_kafka_python_client_gets_the_security_and_the_properties_it_takes(
    tmp_path: Path,
) -> None:
    settings = KafkaSettings(
        **sasl(
            tmp_path,
            client_properties={"ssl_ciphers": "ECDHE+AESGCM", "connections_max_idle_ms": 60000},
        )
    )
    producer = producer_config(settings, client_suffix="api")
    assert producer["security_protocol"] == "SASL_SSL"
    assert producer["sasl_mechanism"] == "SCRAM-SHA-512"
    assert producer["sasl_plain_username"] == "flywheel-app"
    assert producer["sasl_plain_password"] == PASSWORD
    assert producer["ssl_cafile"] == str(tmp_path / "ca.pem")
    assert producer["ssl_check_hostname"] is True
    assert (producer["ssl_ciphers"], producer["connections_max_idle_ms"]) == ("ECDHE+AESGCM", 60000)
    assert (producer["acks"], producer["enable_idempotence"]) == ("all", True)
    admin = security_config(settings, client="admin")
    # kafka-python's admin client takes no ssl_ciphers (and would refuse it).
    assert "ssl_ciphers" not in admin and admin["connections_max_idle_ms"] == 60000


def test_the_workers_librdkafka_client_gets_the_same_security(tmp_path: Path) -> None:
    settings = KafkaSettings(
        **sasl(
            tmp_path,
            ssl_check_hostname=False,
            librdkafka_properties={"socket.keepalive.enable": True},
        )
    )
    config = security_config(settings, client="librdkafka")
    assert config == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "flywheel-app",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.endpoint.identification.algorithm": "none",
        "socket.keepalive.enable": True,
    }


def test_plaintext_clients_get_no_security_properties() -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:9092")
    assert security_config(settings, client="producer") == {"security_protocol": "PLAINTEXT"}
    assert security_config(settings, client="librdkafka") == {"security.protocol": "plaintext"}


def test_a_password_given_to_a_client_is_masked_in_every_log_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = KafkaSettings(**sasl(tmp_path))
    config = security_config(settings, client="producer")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("kafka.producer.kafka").debug("Starting with configuration: %s", config)
    assert PASSWORD not in caplog.text
    assert "'sasl_plain_password': '**********'" in caplog.text


def test_a_refused_sign_in_names_the_user_and_the_settings_and_exits_3(tmp_path: Path) -> None:
    settings = KafkaSettings(**sasl(tmp_path))
    error = refused(
        "_AUTHENTICATION",
        "sasl_ssl://broker-1:9093/bootstrap: SASL authentication error: Authentication failed "
        f"(password {PASSWORD}) (after 352ms in state AUTH_REQ)",
        settings,
    )
    message = str(error)
    assert message.startswith("Kafka refused the sign-in of user flywheel-app (SCRAM-SHA-512)")
    assert "FLYWHEEL_KAFKA__SASL_PASSWORD_FILE" in message and "after 352ms" not in message
    assert PASSWORD not in message
    assert isinstance(error, ConfigError) and exit_code(error) == 3


def test_kafka_python_authentication_errors_become_kafka_auth_errors() -> None:
    from kafka.errors import SaslAuthenticationFailedError, TopicAuthorizationFailedError

    assert isinstance(translate(SaslAuthenticationFailedError("bad"), action="x"), KafkaAuthError)
    denied = translate(TopicAuthorizationFailedError(), action="produce", topic="t")
    assert isinstance(denied, KafkaAuthError) and "ACLs" in str(denied)


class StaticTokens(AbstractTokenProvider):
    """An OAUTHBEARER token provider for the test below."""

    def token(self) -> str:
        return "a-token"


def test_oauthbearer_takes_tokens_from_the_named_provider_in_both_clients() -> None:
    settings = KafkaSettings(
        bootstrap_servers="broker-1:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=f"{__name__}:StaticTokens",
    )
    provider = security_config(settings, client="producer")["sasl_oauth_token_provider"]
    assert provider.token() == "a-token"
    token, expires_at = security_config(settings, client="librdkafka")["oauth_cb"]("")
    assert token == "a-token" and expires_at > time.time()
    with_oidc = settings.model_copy(
        update={"librdkafka_properties": {"sasl.oauthbearer.method": "oidc"}}
    )
    assert "oauth_cb" not in security_config(with_oidc, client="librdkafka")


def test_a_token_provider_that_cannot_be_loaded_is_a_config_error() -> None:
    settings = KafkaSettings(
        bootstrap_servers="broker-1:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider="no_such_module:Tokens",
    )
    with pytest.raises(ConfigError, match="cannot load no_such_module:Tokens"):
        security_config(settings, client="producer")
