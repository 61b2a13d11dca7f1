"""Kafka client settings, topic administration, and the one place Kafka errors are translated.

Every client (kafka-python's producers, consumers and admin clients, and the ingest workers'
librdkafka consumer and admin client) takes its security properties (TLS, SASL) and the
passthrough properties from ``security_config``, so none can connect without them.

kafka-python is imported inside the functions so that importing this module (and so the CLI)
stays fast.
"""

from __future__ import annotations

import functools
import importlib
import re
import time
from typing import Any, Literal

from flywheel.errors import (
    ConfigError,
    FlywheelError,
    KafkaAuthError,
    KafkaError,
    SinkUnavailableError,
    TransientError,
)
from flywheel.logs import hide
from flywheel.settings import KafkaSettings

Client = Literal["producer", "consumer", "admin", "librdkafka"]
"""Who a configuration is for: a kafka-python client, or the workers' librdkafka client."""


def security_config(settings: KafkaSettings, *, client: Client) -> dict[str, Any]:
    """The security (TLS, SASL) and passthrough properties of one client, in its library's
    names; the one place every Kafka client gets them.

    The result holds the passwords in clear (the client libraries want them so): pass it to the
    client and never log or show it.
    """
    if client == "librdkafka":
        return _librdkafka_security(settings)
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    accepted = {
        "producer": KafkaProducer.DEFAULT_CONFIG,
        "consumer": KafkaConsumer.DEFAULT_CONFIG,
        "admin": KafkaAdminClient.DEFAULT_CONFIG,
    }[client]
    config: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.sasl_mechanism is not None:
        config["sasl_mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            config["sasl_oauth_token_provider"] = _token_provider(settings)
        else:
            password = settings.sasl_secret()
            config["sasl_plain_username"] = settings.sasl_username
            config["sasl_plain_password"] = password.get_secret_value() if password else None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        key_password = settings.ssl_key_secret()
        config.update(
            ssl_cafile=_path(settings.ssl_cafile),
            ssl_certfile=_path(settings.ssl_certfile),
            ssl_keyfile=_path(settings.ssl_keyfile),
            ssl_password=key_password.get_secret_value() if key_password else None,
            ssl_check_hostname=settings.ssl_check_hostname,
        )
    # Each passthrough property goes to the clients that take it (settings checked that one
    # does); kafka-python refuses a property it does not know.
    config.update({k: v for k, v in settings.client_properties.items() if k in accepted})
    _hide_secrets(settings)
    return config


def _hide_secrets(settings: KafkaSettings) -> None:
    """Mask the passwords these settings hand to a client in every log record from now on:
    kafka-python logs its whole configuration at DEBUG."""
    for secret in (settings.sasl_secret(), settings.ssl_key_secret()):
        if secret is not None:
            hide(secret.get_secret_value())


def _librdkafka_security(settings: KafkaSettings) -> dict[str, Any]:
    config: dict[str, Any] = {"security.protocol": settings.security_protocol.lower()}
    if settings.sasl_mechanism is not None:
        config["sasl.mechanism"] = settings.sasl_mechanism
        if settings.sasl_mechanism == "OAUTHBEARER":
            if "sasl.oauthbearer.method" not in settings.librdkafka_properties:
                config["oauth_cb"] = _oauth_callback(settings)
        else:
            password = settings.sasl_secret()
            config["sasl.username"] = settings.sasl_username
            config["sasl.password"] = password.get_secret_value() if password else ""
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        optional = {
            "ssl.ca.location": _path(settings.ssl_cafile),
            "ssl.certificate.location": _path(settings.ssl_certfile),
            "ssl.key.location": _path(settings.ssl_keyfile),
            "ssl.key.password": (
                key.get_secret_value() if (key := settings.ssl_key_secret()) else None
            ),
        }
        config.update({k: v for k, v in optional.items() if v is not None})
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.ssl_check_hostname else "none"
        )
    config.update(settings.librdkafka_properties)
    _hide_secrets(settings)
    return config


def _path(path: Any) -> str | None:
    return str(path) if path is not None else None


def _token_provider(settings: KafkaSettings) -> Any:
    """The OAUTHBEARER token provider named by the settings, one per process."""
    assert settings.sasl_oauth_token_provider is not None  # the settings require it
    return _load_token_provider(settings.sasl_oauth_token_provider)


@functools.cache
def _load_token_provider(path: str) -> Any:
    from kafka.net.sasl.oauth import AbstractTokenProvider

    module_name, _, class_name = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in class_name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"FLYWHEEL_KAFKA__SASL_OAUTH_TOKEN_PROVIDER: cannot load {path} ({type(exc).__name__})"
        ) from None
    if not (isinstance(found, type) and issubclass(found, AbstractTokenProvider)):
        raise ConfigError(
            f"FLYWHEEL_KAFKA__SASL_OAUTH_TOKEN_PROVIDER: {path} is not a subclass of "
            "kafka.net.sasl.oauth.AbstractTokenProvider"
        )
    return found()


# librdkafka asks for a token again after 80% of this; the provider decides when to renew.
_OAUTH_TOKEN_LIFETIME_S = 60.0


def _oauth_callback(settings: KafkaSettings) -> Any:
    """librdkafka's ``oauth_cb``, answered by the same token provider as kafka-python's."""
    provider = _token_provider(settings)

    def token(_config: str) -> tuple[str, float]:
        return provider.token(), time.time() + _OAUTH_TOKEN_LIFETIME_S

    return token


# Pinned on purpose: kafka-python silently turns idempotence off when a conflicting setting is
# passed, so these are always passed explicitly and checked after the producer is built.
DURABLE_PRODUCER_SETTINGS: dict[str, Any] = {"acks": "all", "enable_idempotence": True}


def producer_config(settings: KafkaSettings, *, client_suffix: str) -> dict[str, Any]:
    """The keyword arguments of ``KafkaProducer`` for a durable, idempotent producer."""
    if settings.bootstrap_servers is None:
        raise KafkaError("no Kafka configured (FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS is unset)")
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "client_id": f"{settings.client_id}-{client_suffix}",
        "linger_ms": settings.linger_ms,
        "max_block_ms": settings.max_block_ms,
        "request_timeout_ms": settings.request_timeout_ms,
        "bootstrap_timeout_ms": settings.max_block_ms,
        "compression_type": settings.compression_type,
        **security_config(settings, client="producer"),
        **DURABLE_PRODUCER_SETTINGS,
    }
    return config


def consumer_config(
    settings: KafkaSettings, *, client_suffix: str, group_id: str | None
) -> dict[str, Any]:
    """The keyword arguments of a ``KafkaConsumer`` that commits only when told to."""
    if settings.bootstrap_servers is None:
        raise KafkaError("no Kafka configured (FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS is unset)")
    return {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "client_id": f"{settings.client_id}-{client_suffix}",
        "request_timeout_ms": max(settings.request_timeout_ms, 30_000),
        **security_config(settings, client="consumer"),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
    }


def admin_config(settings: KafkaSettings) -> dict[str, Any]:
    """The keyword arguments of a ``KafkaAdminClient``."""
    if settings.bootstrap_servers is None:
        raise KafkaError("no Kafka configured (FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS is unset)")
    return {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "client_id": f"{settings.client_id}-admin",
        "request_timeout_ms": settings.request_timeout_ms,
        "bootstrap_timeout_ms": settings.max_block_ms,
        **security_config(settings, client="admin"),
    }


def metadata_round_trip(producer: Any, topic: str, *, timeout_s: float) -> None:
    """Ask the broker for ``topic``'s metadata now, over the producer's own connections, and wait
    for the answer; raises ``SinkUnavailableError`` if none came within ``timeout_s``.

    The producer's ``partitions_for`` answers from its cache, which outlives the broker; this
    forces a fresh request instead. It relies on kafka-python 3.0's producer internals
    (``_metadata``, ``_sender``), which have no public equivalent.
    """
    import threading

    producer._sender.add_topic(topic)
    answered = threading.Event()
    future = producer._metadata.request_update()
    future.add_both(lambda *_: answered.set())
    producer._sender.wakeup()
    if not answered.wait(timeout_s):
        raise SinkUnavailableError(
            f"the Kafka broker did not answer a metadata request within {timeout_s:g} s"
        )
    if future.failed():
        raise translate(future.exception, action="produce", topic=topic)
    if not producer._metadata.partitions_for_topic(topic):
        raise SinkUnavailableError(f"the Kafka broker knows no partitions of topic {topic}")


def check_durable(producer: Any) -> None:
    """Raise if a built producer is not ``acks=all`` with idempotence on."""
    config = producer.config
    if config["acks"] != -1 or not config["enable_idempotence"]:
        raise KafkaError(
            "the Kafka producer is not durable "
            f"(acks={config['acks']}, enable_idempotence={config['enable_idempotence']})"
        )


def translate(exc: Exception, *, action: str, topic: str | None = None) -> FlywheelError:
    """Map a kafka-python (or confluent-kafka) exception to the platform's errors: retriable
    ones become transient, refused credentials or permissions a ``KafkaAuthError``."""
    from kafka.errors import AuthorizationError, SaslAuthenticationFailedError
    from kafka.errors import KafkaError as KafkaPythonError

    if isinstance(exc, (SaslAuthenticationFailedError, AuthorizationError)):
        return refused(type(exc).__name__, str(exc))
    refusal = _confluent_name(exc)
    if refusal in REFUSED_ERRORS:
        return refused(refusal, exc.args[0].str())
    where = f" on topic {topic}" if topic else ""
    message = f"Kafka {action}{where} failed: {type(exc).__name__}"
    detail = str(exc)
    # kafka-python messages name brokers and topics, never record contents, so they are safe.
    if detail and detail != type(exc).__name__:
        message += f" ({detail[:300]})"
    if action == "connect":
        message += "; is FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS right, and the broker up?"
    if isinstance(exc, KafkaPythonError) and exc.retriable:
        return SinkUnavailableError(message) if action == "produce" else TransientError(message)
    if _confluent_retriable(exc):
        return SinkUnavailableError(message) if action == "produce" else TransientError(message)
    if isinstance(exc, (OSError, TimeoutError)):
        return SinkUnavailableError(message) if action == "produce" else TransientError(message)
    return KafkaError(message)


# librdkafka's errors for "no broker could be reached" (refused, all down, name not resolved).
UNREACHABLE_ERRORS = frozenset({"_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE"})

# confluent-kafka (the ingest workers' consumer) marks few errors retriable itself; these
# mean a broker or the group coordinator is away or busy, and go away on their own.
_CONFLUENT_TRANSIENT = UNREACHABLE_ERRORS | frozenset(
    {
        "_TIMED_OUT", "_TIMED_OUT_QUEUE", "_WAIT_COORD", "_MSG_TIMED_OUT",
        "REQUEST_TIMED_OUT", "NETWORK_EXCEPTION",
        "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS",
        "LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION", "BROKER_NOT_AVAILABLE",
        "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    }
)  # fmt: skip


def _confluent_retriable(exc: Exception) -> bool:
    """True for a confluent-kafka exception whose error is worth retrying."""
    name = _confluent_name(exc)
    if name is None:
        return False
    return bool(exc.args[0].retriable()) or name in _CONFLUENT_TRANSIENT


def _confluent_name(exc: Exception) -> str | None:
    """The error name of a confluent-kafka exception (``_TRANSPORT``), else None."""
    import sys

    confluent = sys.modules.get("confluent_kafka")
    if confluent is None or not isinstance(exc, confluent.KafkaException) or not exc.args:
        return None
    error = exc.args[0]
    return str(error.name()) if isinstance(error, confluent.KafkaError) else None


# librdkafka's errors for a broker that refused this client: its sign-in, the TLS handshake
# (an untrusted or wrongly named certificate), or what its user may do. Retrying cannot help.
REFUSED_ERRORS = frozenset(
    {
        "_AUTHENTICATION", "_SSL", "SASL_AUTHENTICATION_FAILED", "TOPIC_AUTHORIZATION_FAILED",
        "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED",
    }
)  # fmt: skip


def refused(name: str, detail: str, settings: KafkaSettings | None = None) -> KafkaAuthError:
    """The one line for a broker that refused this client, naming the settings to check.

    ``name`` is the client library's error name; ``detail`` its message (librdkafka's and
    kafka-python's never hold a password, and the configured ones are masked anyway).
    """
    detail = re.sub(r"\s*\(after \d+ms in state \w+\)$", "", detail.strip())[:300]
    user = f" of user {settings.sasl_username}" if settings and settings.sasl_username else ""
    mechanism = f" ({settings.sasl_mechanism})" if settings and settings.sasl_mechanism else ""
    if name == "_SSL":
        message = (
            f"TLS with the Kafka brokers failed: {detail}; check FLYWHEEL_KAFKA__SSL_CAFILE (the "
            "authority that signed the brokers' certificates) and the broker addresses"
        )
    elif "AUTHORIZATION" in name.upper():
        message = (
            f"Kafka refused an operation to the client{user}: {name} ({detail}); the user "
            "needs the ACLs for the topics and consumer group"
        )
    else:
        message = (
            f"Kafka refused the sign-in{user}{mechanism}: {detail}; check "
            "FLYWHEEL_KAFKA__SASL_USERNAME and the password (FLYWHEEL_KAFKA__SASL_PASSWORD_FILE "
            "or FLYWHEEL_KAFKA__SASL_PASSWORD)"
        )
    return KafkaAuthError(_masked(message, settings))


def _masked(text: str, settings: KafkaSettings | None) -> str:
    """``text`` with the configured secrets masked, should a library ever echo one."""
    if settings is None:
        return text
    for secret in (settings.sasl_secret(), settings.ssl_key_secret()):
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), "**********")
    return text


def connect_error(
    exc: Exception, settings: KafkaSettings, *, action: str = "connect", topic: str | None = None
) -> FlywheelError:
    """``translate`` for a client that could not connect; with TLS or SASL on, a failed
    bootstrap is looked into (``diagnose``), so a refused sign-in or an untrusted certificate
    is a ``KafkaAuthError`` that names it rather than a timeout."""
    error = translate(exc, action=action, topic=topic)
    if isinstance(error, TransientError) and settings.security_protocol != "PLAINTEXT":
        return diagnose(settings) or error
    return error


def diagnose(settings: KafkaSettings, *, timeout_s: float = 5.0) -> KafkaAuthError | None:
    """A ``KafkaAuthError`` if the brokers refuse these settings' sign-in or TLS, else None
    (they accept it, or cannot be reached at all).

    kafka-python reports a refused sign-in only as a closed socket, and an untrusted
    certificate only in its log, then times out; librdkafka names both. So a short connection
    with librdkafka, configured from the same settings, tells which it was. It stops at the
    first error it is told of.
    """
    import logging

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    if settings.bootstrap_servers is None:
        return None
    seen: list[tuple[str, str]] = []
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": f"{settings.client_id}-probe",
        **security_config(settings, client="librdkafka"),
        "error_cb": lambda error: seen.append((error.name(), error.str())),
        "logger": logging.getLogger("flywheel.kafka.probe"),
    }
    admin = AdminClient(config)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=0.5)
            return None  # the brokers accept these settings; the failure was something else
        except KafkaException:
            pass
        admin.poll(0)
        for name, detail in seen:
            if name in REFUSED_ERRORS:
                return refused(name, detail, settings)
        if seen:
            return None  # not refused: unreachable, or another failure
    return None


def admin_client(settings: KafkaSettings) -> Any:
    """A connected ``KafkaAdminClient``; raises a translated error if the broker is unreachable."""
    from kafka import KafkaAdminClient

    config = admin_config(settings)
    try:
        return KafkaAdminClient(**config)
    except Exception as exc:
        raise connect_error(exc, settings) from None


def create_topics(settings: KafkaSettings) -> dict[str, str]:
    """Create the events and dead-letter topics if missing, and set their retention (also on
    topics that exist); returns ``{topic: created|exists}``."""
    from kafka.admin import ConfigResource, ConfigResourceType
    from kafka.errors import TopicAlreadyExistsError

    wanted = {
        # topic: (partitions, retention.ms)
        settings.events_topic: (settings.partitions, settings.events_retention_ms),
        # Poison messages are rare; one partition keeps their replay order simple.
        settings.dead_letter_topic: (1, settings.dead_letter_retention_ms),
    }
    outcome: dict[str, str] = {}
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        for topic, (partitions, retention_ms) in wanted.items():
            configs = {"retention.ms": str(retention_ms)}
            if topic in existing:
                outcome[topic] = "exists"
            else:
                try:
                    admin.create_topics(
                        {
                            topic: {
                                "num_partitions": partitions,
                                "replication_factor": settings.replication_factor,
                                "configs": configs,
                            }
                        },
                        wait_for_metadata=True,
                    )
                    outcome[topic] = "created"
                    continue
                except TopicAlreadyExistsError:
                    outcome[topic] = "exists"
            # An existing topic keeps its partitions; its retention follows the settings.
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    except FlywheelError:
        raise
    except Exception as exc:
        raise translate(exc, action="create topics") from None
    finally:
        admin.close()
    return outcome


def topic_retention_ms(settings: KafkaSettings, topic: str) -> int | None:
    """A topic's ``retention.ms`` as the broker reports it."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = admin_client(settings)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
        )
    finally:
        admin.close()
    value = described.get("topic", {}).get(topic, {}).get("retention.ms", {}).get("value")
    return int(value) if value is not None else None


def ping(settings: KafkaSettings) -> bool:
    """True if the cluster answers a metadata request."""
    try:
        admin = admin_client(settings)
    except FlywheelError:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()
