"""Kafka client settings, topic administration, and the one place Kafka errors are translated.

kafka-python is imported inside the functions so that importing this module (and so the CLI)
stays fast.
"""

from __future__ import annotations

from typing import Any

from flywheel.errors import FlywheelError, KafkaError, SinkUnavailableError, TransientError
from flywheel.settings import KafkaSettings

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
        **DURABLE_PRODUCER_SETTINGS,
    }
    return config


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
    """Map a kafka-python exception to the platform's errors: retriable ones become transient."""
    from kafka.errors import KafkaError as KafkaPythonError

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


# confluent-kafka (the ingest workers' consumer) marks few errors retriable itself; these
# mean a broker or the group coordinator is away or busy, and go away on their own.
_CONFLUENT_TRANSIENT = frozenset(
    {
        "_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_TIMED_OUT_QUEUE", "_WAIT_COORD",
        "_RESOLVE", "_MSG_TIMED_OUT", "REQUEST_TIMED_OUT", "NETWORK_EXCEPTION",
        "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR", "COORDINATOR_LOAD_IN_PROGRESS",
        "LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION", "BROKER_NOT_AVAILABLE",
        "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    }
)  # fmt: skip


def _confluent_retriable(exc: Exception) -> bool:
    """True for a confluent-kafka exception whose error is worth retrying."""
    import sys

    confluent = sys.modules.get("confluent_kafka")
    if confluent is None or not isinstance(exc, confluent.KafkaException) or not exc.args:
        return False
    error = exc.args[0]
    if not isinstance(error, confluent.KafkaError):
        return False
    return bool(error.retriable()) or error.name() in _CONFLUENT_TRANSIENT


def admin_client(settings: KafkaSettings) -> Any:
    """A connected ``KafkaAdminClient``; raises a translated error if the broker is unreachable."""
    from kafka import KafkaAdminClient

    if settings.bootstrap_servers is None:
        raise KafkaError("no Kafka configured (FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS is unset)")
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers.split(","),
            client_id=f"{settings.client_id}-admin",
            request_timeout_ms=settings.request_timeout_ms,
            bootstrap_timeout_ms=settings.max_block_ms,
        )
    except Exception as exc:
        raise translate(exc, action="connect") from None


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
