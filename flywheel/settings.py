"""Settings for every stage, read once from ``FLYWHEEL_*`` environment variables (and ``.env``).

Nested sections use ``__``: ``FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS``, ``FLYWHEEL_API__WRITE_KEYS``.
List settings take JSON: ``FLYWHEEL_API__WRITE_KEYS='["key-one-..."]'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from flywheel.errors import ConfigError
from flywheel.storage import LakeLocation, parse_lake_url

# Values people paste from templates; a deployment that still carries one is refused.
PLACEHOLDER_SECRETS = frozenset(
    {"changeme", "changethis", "change-me", "secret", "password", "example", "test", "xxx", "todo"}
)
MIN_KEY_LENGTH = 16


def _check_keys(keys: list[SecretStr], setting: str) -> list[SecretStr]:
    for key in keys:
        value = key.get_secret_value()
        if value.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(f"{setting} contains a placeholder key; generate a real one")
        if len(value) < MIN_KEY_LENGTH:
            raise ValueError(f"{setting} keys must be at least {MIN_KEY_LENGTH} characters long")
    return keys


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _check_origins(origins: list[str], setting: str) -> list[str]:
    """Exact browser origins (``scheme://host[:port]``), written as browsers send them in the
    ``Origin`` header: lower case, no default port, no path; ``*`` is refused."""
    checked = []
    for origin in origins:
        if "*" in origin:
            raise ValueError(f"{setting} must list exact origins, not '*'")
        parts = urlsplit(origin.strip().lower())
        try:
            port = parts.port
        except ValueError:
            port = -1
        if (
            parts.scheme not in _DEFAULT_PORTS
            or not parts.hostname
            or port == -1
            or parts.username is not None
            or parts.password is not None
            or parts.path
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                f"{setting}: {origin!r} is not an origin; write scheme://host[:port] with no "
                "path and no trailing slash, e.g. https://chat.example.com"
            )
        if port == _DEFAULT_PORTS[parts.scheme]:
            port = None  # browsers leave the default port out of the Origin header
        checked.append(f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else ""))
    return checked


def _check_password(value: str) -> None:
    if value.strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError("a Kafka password is a placeholder; use the real one")


def _one_secret(value: SecretStr | None, file: Path | None, setting: str) -> SecretStr | None:
    """A secret given either directly or as a file (read now, so a missing file stops the
    start-up), never both."""
    if file is None:
        return value
    if value is not None:
        raise ValueError(
            f"FLYWHEEL_KAFKA__{setting} and FLYWHEEL_KAFKA__{setting}_FILE are both set; keep one"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ValueError(f"FLYWHEEL_KAFKA__{setting}_FILE: cannot read {file}: {reason}") from None
    # Mounted secrets often end with a newline the password does not have.
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ValueError(f"FLYWHEEL_KAFKA__{setting}_FILE: {file} is empty")
    _check_password(text)
    return SecretStr(text)


# kafka-python properties that a setting of ours sets (by that setting's name), or that the
# platform pins (by why): refused in FLYWHEEL_KAFKA__CLIENT_PROPERTIES.
CLIENT_MANAGED: dict[str, str] = {
    "bootstrap_servers": "BOOTSTRAP_SERVERS", "client_id": "CLIENT_ID",
    "security_protocol": "SECURITY_PROTOCOL", "sasl_mechanism": "SASL_MECHANISM",
    "sasl_plain_username": "SASL_USERNAME", "sasl_plain_password": "SASL_PASSWORD",
    "sasl_oauth_token_provider": "SASL_OAUTH_TOKEN_PROVIDER", "ssl_cafile": "SSL_CAFILE",
    "ssl_certfile": "SSL_CERTFILE", "ssl_keyfile": "SSL_KEYFILE",
    "ssl_password": "SSL_KEY_PASSWORD", "ssl_check_hostname": "SSL_CHECK_HOSTNAME",
    "linger_ms": "LINGER_MS", "max_block_ms": "MAX_BLOCK_MS",
    "request_timeout_ms": "REQUEST_TIMEOUT_MS", "compression_type": "COMPRESSION_TYPE",
    "acks": "pinned to all (durability)", "enable_idempotence": "pinned on (durability)",
    "group_id": "set by each command", "enable_auto_commit": "pinned off (exactly once)",
}  # fmt: skip

# The same for the ingest workers' librdkafka consumer (FLYWHEEL_KAFKA__LIBRDKAFKA_PROPERTIES).
LIBRDKAFKA_MANAGED: dict[str, str] = {
    "bootstrap.servers": "BOOTSTRAP_SERVERS", "client.id": "CLIENT_ID",
    "security.protocol": "SECURITY_PROTOCOL", "sasl.mechanism": "SASL_MECHANISM",
    "sasl.mechanisms": "SASL_MECHANISM", "sasl.username": "SASL_USERNAME",
    "sasl.password": "SASL_PASSWORD", "ssl.ca.location": "SSL_CAFILE",
    "ssl.certificate.location": "SSL_CERTFILE", "ssl.key.location": "SSL_KEYFILE",
    "ssl.key.password": "SSL_KEY_PASSWORD",
    "ssl.endpoint.identification.algorithm": "SSL_CHECK_HOSTNAME",
    "group.id": "set by FLYWHEEL_INGEST__GROUP_ID",
    "group.instance.id": "set by FLYWHEEL_INGEST__INSTANCE_ID",
    "enable.auto.commit": "pinned off (exactly once)",
    "enable.auto.offset.store": "pinned off (exactly once)",
}  # fmt: skip


def _refuse_managed(properties: Iterable[str], managed: dict[str, str]) -> None:
    """Refuse properties that a setting of ours sets or the platform pins, naming which."""
    found = sorted(set(properties) & set(managed))
    if found:
        reasons = []
        for key in found:
            where = managed[key]
            why = f"set by FLYWHEEL_KAFKA__{where}" if where.isupper() else where
            reasons.append(f"{key} is {why}")
        raise ValueError("; ".join(reasons) + ", not here")


def check_client_properties(
    properties: dict[str, str | int | float | bool],
) -> dict[str, str | int | float | bool]:
    """Refuse kafka-python properties that no client takes, or that a setting of ours sets."""
    if not properties:
        return properties
    _refuse_managed(properties, CLIENT_MANAGED)
    # Only here, and only when properties are given: kafka-python is slow to import.
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    known = (
        set(KafkaProducer.DEFAULT_CONFIG)
        | set(KafkaConsumer.DEFAULT_CONFIG)
        | set(KafkaAdminClient.DEFAULT_CONFIG)
    )
    unknown = sorted(set(properties) - known)
    if unknown:
        raise ValueError(
            f"unknown kafka-python client propert{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(unknown)} (use the names kafka-python's KafkaProducer, KafkaConsumer "
            "and KafkaAdminClient take, e.g. ssl_ciphers)"
        )
    return properties


class KafkaSettings(BaseModel):
    """Where events travel between the API and the ingest workers."""

    # Validation errors must not quote their input: it holds the passwords.
    model_config = ConfigDict(
        use_attribute_docstrings=True, extra="forbid", hide_input_in_errors=True
    )

    bootstrap_servers: str | None = None
    """Comma-separated ``host:port`` list. Unset: embedded mode, no Kafka at all."""
    events_topic: str = "flywheel.events.v1"
    """Topic the API produces accepted events to, keyed by conversation id."""
    dead_letter_topic: str = "flywheel.events.v1.dlq"
    """Topic the ingest workers send poison messages to, with the reason."""
    partitions: int = Field(default=6, ge=1)
    """Partitions of the events topic made by ``flywheel kafka init``; bounds ingest parallelism."""
    replication_factor: int = Field(default=1, ge=1)
    """Replication factor of the topics created by ``flywheel kafka init`` (3 in production)."""
    events_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=-1)
    """How long the events topic keeps records (its ``retention.ms``, set by ``flywheel kafka
    init``); long enough for ingest workers to catch up after an outage. -1: forever."""
    dead_letter_retention_ms: int = Field(default=3 * 24 * 3600 * 1000, ge=-1)
    """How long the dead-letter topic keeps records (``retention.ms``, set by ``flywheel kafka
    init``). Dead letters hold raw, unscrubbed events that erasure cannot reach: keep this short
    (3 days by default: a weekend to replay or discard them)."""
    client_id: str = "flywheel"
    """Client id prefix reported to the broker."""
    produce_timeout_s: float = Field(default=10.0, gt=0)
    """How long the API waits for the broker's ack of a request's events before answering 503."""
    max_block_ms: int = Field(default=5000, ge=0)
    """How long a send may wait for metadata or buffer space (kafka-python ``max_block_ms``)."""
    linger_ms: int = Field(default=5, ge=0)
    """Producer batching delay; a few ms lets concurrent requests share a produce request."""
    compression_type: Literal["gzip"] | None = None
    """Producer compression; unset sends uncompressed (fastest on loopback)."""
    request_timeout_ms: int = Field(default=10000, ge=1000)
    """Timeout of a single request to the broker."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How every client reaches the brokers: ``SASL_SSL`` for a managed Kafka (TLS and a user
    name), ``SSL`` for TLS alone (with a client certificate for mutual TLS)."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    """SASL mechanism; required with ``SASL_SSL`` and ``SASL_PLAINTEXT``, refused otherwise."""
    sasl_username: str | None = None
    """SASL user name (``PLAIN`` and ``SCRAM-*``)."""
    sasl_password: SecretStr | None = None
    """SASL password (``PLAIN`` and ``SCRAM-*``); prefer ``SASL_PASSWORD_FILE``. Never logged."""
    sasl_password_file: Path | None = None
    """File holding the SASL password (a mounted secret; one trailing newline is ignored)."""
    sasl_oauth_token_provider: str | None = None
    """``OAUTHBEARER``: ``package.module:Class``, a kafka-python ``AbstractTokenProvider``
    subclass made with no arguments (it reads its own settings); the ingest workers take their
    tokens from it too, unless ``LIBRDKAFKA_PROPERTIES`` sets ``sasl.oauthbearer.method``."""
    ssl_cafile: Path | None = None
    """PEM file of the certificate authorities that signed the brokers' certificates; unset:
    the system's trusted authorities."""
    ssl_certfile: Path | None = None
    """PEM client certificate, for brokers that require mutual TLS."""
    ssl_keyfile: Path | None = None
    """PEM private key of ``SSL_CERTFILE``."""
    ssl_key_password: SecretStr | None = None
    """Password of ``SSL_KEYFILE`` if it is encrypted; prefer ``SSL_KEY_PASSWORD_FILE``."""
    ssl_key_password_file: Path | None = None
    """File holding the password of ``SSL_KEYFILE``."""
    ssl_check_hostname: bool = True
    """Check that a broker's certificate names the host connected to (keep on in production)."""
    client_properties: dict[str, str | int | float | bool] = {}
    """Other kafka-python client properties, by their kafka-python names (JSON object, e.g.
    ``{"ssl_ciphers": "ECDHE+AESGCM", "connections_max_idle_ms": 300000}``); each goes to the
    clients (producer, consumer, admin) that take it. Properties with a setting of their own
    are refused."""
    librdkafka_properties: dict[str, str | int | float | bool] = {}
    """Other properties of the ingest workers' consumer (librdkafka names, JSON object, e.g.
    ``{"sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.token.endpoint.url": "..."}``)."""

    _sasl_password_read: SecretStr | None = PrivateAttr(default=None)
    _ssl_key_password_read: SecretStr | None = PrivateAttr(default=None)

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _any_case_name(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("sasl_password", "ssl_key_password")
    @classmethod
    def _not_a_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_password(value.get_secret_value())
        return value

    @field_validator("client_properties")
    @classmethod
    def _known_client_properties(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        return check_client_properties(value)

    @field_validator("librdkafka_properties")
    @classmethod
    def _librdkafka_properties_not_managed(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        _refuse_managed(value, LIBRDKAFKA_MANAGED)
        return value

    @model_validator(mode="after")
    def _security_is_complete(self) -> KafkaSettings:
        sasl = self.security_protocol.startswith("SASL_")
        if not sasl and self.sasl_mechanism is not None:
            raise ValueError(
                f"FLYWHEEL_KAFKA__SASL_MECHANISM is set but FLYWHEEL_KAFKA__SECURITY_PROTOCOL is "
                f"{self.security_protocol}; use SASL_SSL (or SASL_PLAINTEXT)"
            )
        if sasl and self.sasl_mechanism is None:
            raise ValueError(
                f"FLYWHEEL_KAFKA__SECURITY_PROTOCOL={self.security_protocol} needs "
                "FLYWHEEL_KAFKA__SASL_MECHANISM "
                "(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)"
            )
        self._sasl_password_read = _one_secret(
            self.sasl_password, self.sasl_password_file, "SASL_PASSWORD"
        )
        self._ssl_key_password_read = _one_secret(
            self.ssl_key_password, self.ssl_key_password_file, "SSL_KEY_PASSWORD"
        )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            if not self.sasl_username:
                raise ValueError(f"SASL {self.sasl_mechanism} needs FLYWHEEL_KAFKA__SASL_USERNAME")
            if self._sasl_password_read is None:
                raise ValueError(
                    f"SASL {self.sasl_mechanism} needs FLYWHEEL_KAFKA__SASL_PASSWORD_FILE "
                    "(or FLYWHEEL_KAFKA__SASL_PASSWORD)"
                )
        if self.sasl_mechanism == "OAUTHBEARER" and not self.sasl_oauth_token_provider:
            raise ValueError(
                "SASL OAUTHBEARER needs FLYWHEEL_KAFKA__SASL_OAUTH_TOKEN_PROVIDER "
                "(package.module:Class)"
            )
        if self.sasl_oauth_token_provider is not None and not re.fullmatch(
            r"[\w.]+:[\w.]+", self.sasl_oauth_token_provider
        ):
            raise ValueError(
                "FLYWHEEL_KAFKA__SASL_OAUTH_TOKEN_PROVIDER must be package.module:Class"
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"FLYWHEEL_KAFKA__{name.upper()}: {path} is not a file")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError(
                "FLYWHEEL_KAFKA__SSL_KEYFILE is set without FLYWHEEL_KAFKA__SSL_CERTFILE"
            )
        return self

    def sasl_secret(self) -> SecretStr | None:
        """The SASL password, from ``SASL_PASSWORD_FILE`` or ``SASL_PASSWORD``."""
        return self._sasl_password_read

    def ssl_key_secret(self) -> SecretStr | None:
        """The password of the client key, from ``SSL_KEY_PASSWORD_FILE`` or
        ``SSL_KEY_PASSWORD``."""
        return self._ssl_key_password_read


EventTypeName = Literal["generation", "copy", "edit", "regenerate", "ab_choice", "rating"]
"""The event types of the contract (``ingest.contract.EVENT_TYPES``; a test keeps them equal)."""

BROWSER_EVENT_TYPES: list[EventTypeName] = ["copy", "edit", "regenerate", "ab_choice", "rating"]
"""What a browser may post by default: its users' reactions. A ``generation`` carries the
prompt and the model's response, which the backend that called the model knows first hand."""

KeyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class PublishableKeySettings(BaseModel):
    """A browser key: public by nature, so bound to origins, event types and a rate."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    key: SecretStr
    """The key, at least 16 random characters."""
    name: KeyName | None = None
    """What logs and metrics call the key (the key itself never appears there); unset:
    ``publishable-<position in the list, from 1>``."""
    origins: list[str] = Field(min_length=1)
    """The browser origins the key is accepted from (the request's ``Origin`` header)."""
    rate_per_second: float = Field(default=50.0, gt=0)
    """Events per second the key may post, on average (per API process)."""
    burst: int = Field(default=200, ge=1)
    """Events the key may post at once after a quiet spell (the token bucket's size)."""
    event_types: list[EventTypeName] = Field(
        default_factory=lambda: list(BROWSER_EVENT_TYPES), min_length=1
    )
    """The event types the key may post."""

    @field_validator("key")
    @classmethod
    def _key_is_real(cls, key: SecretStr) -> SecretStr:
        return _check_keys([key], "FLYWHEEL_API__PUBLISHABLE_KEYS")[0]

    @field_validator("origins")
    @classmethod
    def _exact_origins(cls, origins: list[str]) -> list[str]:
        return _check_origins(origins, "FLYWHEEL_API__PUBLISHABLE_KEYS origins")


class ReviewerKeySettings(BaseModel):
    """A reviewer's key: it may read and answer review queues, nothing else."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    key: SecretStr
    """The key, at least 16 random characters."""
    reviewer: str = Field(min_length=1, max_length=256, pattern=r"\S")
    """Who reviews with it (an e-mail address or a staff id). Stored only as its pseudonym
    (HMAC under the pseudonym key, as user ids are), so erasing this id as a user also erases
    the reviews written under it."""

    @field_validator("key")
    @classmethod
    def _key_is_real(cls, key: SecretStr) -> SecretStr:
        return _check_keys([key], "FLYWHEEL_API__REVIEWER_KEYS")[0]


class ApiSettings(BaseModel):
    """The HTTP ingest API."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    write_keys: list[SecretStr] = []
    """Bearer keys of backends, allowed to post events of every type (JSON list). ``flywheel
    serve`` needs a write key or a publishable key."""
    publishable_keys: list[PublishableKeySettings] = []
    """Browser keys (JSON list of objects): ``{"key": "...", "name": "web", "origins":
    ["https://chat.example.com"], "rate_per_second": 50, "burst": 200, "event_types": ["copy",
    "edit", "regenerate", "ab_choice", "rating"]}``; only ``key`` and ``origins`` are required.
    A publishable key may only post events (``POST /v1/events`` or ``POST /v1/beacon``), only
    from its origins, only its event types, and at most ``rate_per_second`` events a second
    with bursts of ``burst`` (docs/api.md). Its origins are allowed by CORS too."""
    reader_keys: list[SecretStr] = []
    """Bearer keys allowed to read the published datasets (``GET /v1/datasets...``), nothing
    else (JSON list)."""
    admin_keys: list[SecretStr] = []
    """Bearer keys allowed to call the admin endpoints: erasure, the datasets, and managing
    review queues and reading their calibration (JSON list)."""
    reviewer_keys: list[ReviewerKeySettings] = []
    """Bearer keys of human reviewers (JSON list of objects): ``{"key": "...", "reviewer":
    "ana@example.com"}``. A reviewer key may read review queues and answer their items
    (``/v1/review/...``), nothing else; the reviewer is stored only as a pseudonym
    (docs/review.md)."""
    cors_origins: list[str] = []
    """Browser origins allowed by CORS besides the publishable keys' origins (exact origins;
    ``*`` is refused)."""
    max_events_per_request: int = Field(default=500, ge=1)
    """Most events one ``POST /v1/events`` may carry."""
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Largest request body, counted as it streams in."""
    max_event_bytes: int = Field(default=64 * 1024, ge=256)
    """Largest single event, measured as its compact JSON."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """A client must send a request's complete headers within this many seconds of connecting
    (or of its first byte after an idle keep-alive), else the connection is closed (with a 408
    if part of a request arrived)."""
    keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    """How long an idle keep-alive connection is kept open between requests."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    """Largest request line plus headers; a longer head is refused and the connection closed."""
    ready_timeout_s: float = Field(default=2.0, gt=0)
    """How long ``/readyz`` waits for the broker's answer (Kafka mode) before answering 503."""
    ready_cache_s: float = Field(default=1.0, ge=0)
    """How long a readiness answer is reused, so frequent probes do not each reach the broker
    or the disk."""
    ready_min_free_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    """Embedded mode: ``/readyz`` answers 503 while the lake's file system has less free space
    than this."""

    @field_validator("write_keys")
    @classmethod
    def _write_keys_are_real(cls, keys: list[SecretStr]) -> list[SecretStr]:
        return _check_keys(keys, "FLYWHEEL_API__WRITE_KEYS")

    @field_validator("admin_keys")
    @classmethod
    def _admin_keys_are_real(cls, keys: list[SecretStr]) -> list[SecretStr]:
        return _check_keys(keys, "FLYWHEEL_API__ADMIN_KEYS")

    @field_validator("reader_keys")
    @classmethod
    def _reader_keys_are_real(cls, keys: list[SecretStr]) -> list[SecretStr]:
        return _check_keys(keys, "FLYWHEEL_API__READER_KEYS")

    @field_validator("cors_origins")
    @classmethod
    def _exact_cors_origins(cls, origins: list[str]) -> list[str]:
        return _check_origins(origins, "FLYWHEEL_API__CORS_ORIGINS")

    @model_validator(mode="after")
    def _publishable_keys_stand_alone(self) -> ApiSettings:
        # A publishable key is visible to every visitor of the page that sends it: were it also
        # a write, reader or admin key, anyone could use those rights.
        secret = {
            key.get_secret_value()
            for key in (
                *self.write_keys,
                *self.reader_keys,
                *self.admin_keys,
                *(r.key for r in self.reviewer_keys),
            )
        }
        reviewers: set[str] = set()
        others = {
            key.get_secret_value() for key in (*self.write_keys, *self.reader_keys,
                                               *self.admin_keys)
        }  # fmt: skip
        for position, reviewer in enumerate(self.reviewer_keys, start=1):
            value = reviewer.key.get_secret_value()
            if value in reviewers:
                raise ValueError(f"FLYWHEEL_API__REVIEWER_KEYS: key {position} is listed twice")
            if value in others:
                # A verdict is always a blind person's: a reviewer key that could also read
                # the calibration (admin) or the datasets would see what the signals chose.
                raise ValueError(
                    f"FLYWHEEL_API__REVIEWER_KEYS: key {position} is also a write, reader or "
                    "admin key; a reviewer judges blind, give them a key of their own"
                )
            reviewers.add(value)
        seen: set[str] = set()
        names: set[str] = set()
        for position, browser in enumerate(self.publishable_keys, start=1):
            value = browser.key.get_secret_value()
            if value in secret:
                raise ValueError(
                    f"FLYWHEEL_API__PUBLISHABLE_KEYS: key {position} is also a write, reader, "
                    "admin or reviewer key; a browser key is public, give it a key of its own"
                )
            if value in seen:
                raise ValueError(f"FLYWHEEL_API__PUBLISHABLE_KEYS: key {position} is listed twice")
            seen.add(value)
            browser.name = browser.name or f"publishable-{position}"
            if browser.name in names:
                raise ValueError(
                    f"FLYWHEEL_API__PUBLISHABLE_KEYS: the name {browser.name!r} is used twice"
                )
            names.add(browser.name)
        return self

    @property
    def browser_origins(self) -> list[str]:
        """Every origin CORS allows: ``cors_origins`` and the publishable keys' origins."""
        origins = dict.fromkeys(self.cors_origins)
        for browser in self.publishable_keys:
            origins.update(dict.fromkeys(browser.origins))
        return list(origins)


class ContractSettings(BaseModel):
    """The event contract's configurable limits (the API and the ingest workers apply both)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    max_text_chars: int = Field(default=64 * 1024, ge=1)
    """Longest free text of an event, in characters: a prompt message's text or text part, a
    response, a copied or edited text, a tool call's arguments. At most the smaller of
    ``API__MAX_EVENT_BYTES`` and ``INGEST__MAX_EVENT_BYTES`` (a text takes a byte per character
    at least); ``GET /v1/schema`` states it. Set the same value for the API and the workers."""


class IngestSettings(BaseModel):
    """The ingest workers: Kafka to the lake."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    group_id: str = "flywheel-ingest"
    """Kafka consumer group of the workers; workers in one group share the partitions."""
    instance_id: str | None = None
    """Static group membership id (unique per worker); a restarted worker then gets its
    partitions back at once instead of after the session timeout."""
    batch_max_events: int = Field(default=5000, ge=1)
    """A micro-batch lands once it holds this many messages..."""
    batch_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """...or this many bytes of message values..."""
    batch_max_wait_ms: int = Field(default=1000, ge=1)
    """...or once its first message waited this long."""
    max_event_bytes: int = Field(default=64 * 1024, ge=256)
    """Messages larger than this are dead-lettered as ``oversize``."""
    dedupe_window: int = Field(default=100_000, ge=0)
    """How many of a partition's newest landed event ids are remembered to drop client resends."""
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    """How long the group waits for a silent worker before giving its partitions to others."""
    max_poll_interval_ms: int = Field(default=120_000, ge=1000)
    """Longest time between polls before a worker is considered stuck and fenced out."""
    retry_max_s: float = Field(default=30.0, gt=0)
    """Longest pause between retries of a transient failure (disk full, broker away)."""
    metrics_port: int | None = None
    """Port of the worker's Prometheus ``/metrics`` endpoint; unset: none."""
    prepare_in_subprocess: bool = False
    """Validate, anonymise and write batches in a helper process while the main process reads
    Kafka; false (the default) does both in one process, which is faster on two cores now that
    reading is native (docs/benchmarks.md). Worth trying with cores to spare."""


class PrivacySettings(BaseModel):
    """Pseudonymisation and scrubbing."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    hmac_key_file: Path | None = None
    """File holding the HMAC key(s) for user pseudonyms; kept outside the lake and warehouse."""
    names_model: str | None = None
    """spaCy model (package name or folder) for detecting person names with Presidio; needs
    ``pip install 'feedback-flywheel[names]'`` and the model. Unset: names are not detected."""
    lake_retention_days: int | None = Field(default=None, ge=1)
    """Delete lake files landed more than this many days ago (``flywheel schedule`` runs the
    retention job daily; the newest file of each partition is kept as the workers' resume
    point). Unset: keep the lake forever."""
    delete_superseded_files: bool = True
    """When an erasure supersedes a dataset version, delete its data files (its manifest, card
    and quality report stay as a record); false keeps them, marked superseded."""
    without_consent: Literal["drop", "keep"] = "drop"
    """Events whose user did not consent to training (``consent.training`` false or no consent
    at all): ``drop`` them before landing, or ``keep`` them in the lake, flagged by
    ``consent_training``; either way the warehouse does not load them, so no model counts them
    and no dataset changes by a byte."""


class LakeSettings(BaseModel):
    """Where the lake is."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    url: str | None = None
    """The lake's folder or object-storage prefix: a local path, or ``s3://bucket/prefix`` (S3
    or a compatible store, reached through the standard AWS environment: ``AWS_ENDPOINT_URL``,
    ``AWS_REGION``, the credential variables or a profile). Unset: ``<data dir>/lake``. Every
    command uses the lake it names; ``flywheel demo`` makes its own and refuses an ``s3://``
    URL. Landed files form an Apache Iceberg table (``catalog``; docs/architecture.md)."""

    catalog: str | None = None
    """The Iceberg catalog of the lake's table, as a SQLAlchemy URL: ``postgresql+psycopg://...``
    for workers on several hosts (docs/operations.md). Unset: a SQLite file in the data dir
    (``lake-catalog.db``), for one host."""
    commit_interval_s: float = Field(default=60.0, gt=0)
    """How often an ingest worker commits the files landed since the last commit to the lake's
    table (each worker tries; a commit finding nothing new costs one read of the catalog).
    ``flywheel transform run`` commits first, whatever the interval."""

    @field_validator("url")
    @classmethod
    def _url_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_lake_url(value)
        return value


class ExportSettings(BaseModel):
    """Published datasets and the schedule."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    datasets_file: Path | None = None
    """Dataset policies and schedules (TOML); unset: the shipped ``export/datasets.toml``, which
    defines the ``default`` dataset."""
    keep_failed_attempts: int = Field(default=5, ge=1)
    """How many failed export attempts (data and quality report, ``failed-*`` folders) to keep
    per dataset; older ones are deleted when a new attempt fails."""
    target: str | None = None
    """Where versions are published: a local folder, or ``s3://bucket/prefix`` (S3 or a
    compatible store, reached through the standard AWS environment as the lake's is). Unset:
    ``<data dir>/datasets``. A version is ``<target>/<dataset>/v<N>/``; on S3 its manifest is
    written last, with a conditional put, and is its commit (docs/export.md)."""

    @field_validator("target")
    @classmethod
    def _target_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_lake_url(value)
        return value


class ReviewSettings(BaseModel):
    """Human review of sampled pairs (docs/review.md)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    rubric_file: Path | None = None
    """The rubric reviewers score each answer on (TOML: dimensions, each with a scale and what
    its ends mean). Unset: the shipped ``review/rubric.toml`` (correctness, readability,
    security, efficiency, 1 to 5)."""


class TransformsSettings(BaseModel):
    """The transforms: where the models are built."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    engine: Literal["duckdb", "spark"] = "duckdb"
    """``duckdb``: the warehouse file on this host. ``spark``: Apache Spark builds the models
    from the lake's Iceberg table into Iceberg tables in the lake's catalog (``spark``
    settings, docs/spark.md), and exports read them from there. ``flywheel transform run
    --engine`` overrides it for one run."""
    models_dir: Path | None = None
    """A folder of the team's own models: ``.sql`` files shaped like the shipped ones
    (``-- depends_on:``, ``-- refresh_by:``), built beside them in dependency order by every
    transform run (the CLI, the scheduler, Dagster, Spark). A file named like a shipped model
    or a warehouse table is refused, not run (docs/transforms.md, "Adding a signal")."""
    policy_file: Path | None = None
    """The signal policy (TOML: weights and thresholds, docs/transforms.md) every transform run
    builds the models with: ``flywheel transform run``, the scheduler, the Dagster assets and
    ``review suggest-policy``. Unset: the shipped policy. ``--policy`` overrides it for one
    command; a run whose policy differs from the previous run's says so in one line."""


class SparkSettings(BaseModel):
    """The transforms on Apache Spark (``flywheel transform run --engine spark``)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    master: str = "local[2]"
    """The Spark master: ``local[N]`` on this host, ``spark://host:7077``, ``yarn``, or
    ``k8s://...``. Under ``spark-submit`` the master and properties it was given win
    (docs/spark.md)."""
    properties: dict[str, str] = {}
    """Further Spark properties, as JSON (``{"spark.executor.memory": "4g"}``); they override
    the platform's own (the Iceberg catalog, the jars, the session time zone)."""
    jars_cache: Path | None = None
    """Where Spark keeps the jars it resolves from Maven Central on first use (Ivy's cache).
    Unset: ``~/.cache/flywheel/spark``. A cluster without access to Maven Central gets them
    with ``--jars`` instead (docs/spark.md)."""


class DagsterSettings(BaseModel):
    """The Dagster assets (the ``dagster`` extra, ``flywheel.shell.dagster``)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    start_date: date = date(2026, 1, 1)
    """First landing day (UTC) of the assets' daily partitions (the last is today). A day before
    the lake's first file landed has nothing to load: set it to that day."""


class Settings(BaseSettings):
    """All settings of the platform; see docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix="FLYWHEEL_",
        env_nested_delimiter="__",
        env_file=".env",
        # FLYWHEEL_X= (empty) means unset, not "" (a data dir or key file named "." otherwise).
        env_ignore_empty=True,
        extra="ignore",
        use_attribute_docstrings=True,
        hide_input_in_errors=True,
    )

    data_dir: Path = Path("data")
    """Root folder of the lake, the warehouse and the published datasets."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Minimum level of log records written to stderr."""
    log_format: Literal["json", "console"] = "console"
    """``json`` writes one JSON object per line (for log shippers); ``console`` is for people."""
    kafka: KafkaSettings = KafkaSettings()
    """Kafka connection and topics."""
    api: ApiSettings = ApiSettings()
    """HTTP ingest API."""
    contract: ContractSettings = ContractSettings()
    """The event contract's limits."""
    ingest: IngestSettings = IngestSettings()
    """Ingest workers."""
    privacy: PrivacySettings = PrivacySettings()
    """Pseudonymisation and scrubbing."""
    export: ExportSettings = ExportSettings()
    """Published datasets and the schedule."""
    lake: LakeSettings = LakeSettings()
    """Where the lake is."""
    transforms: TransformsSettings = TransformsSettings()
    """The transforms: where the models are built."""
    review: ReviewSettings = ReviewSettings()
    """Human review of sampled pairs."""
    spark: SparkSettings = SparkSettings()
    """The transforms on Apache Spark."""
    dagster: DagsterSettings = DagsterSettings()
    """The Dagster assets."""

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} is a file, not a folder")
        return value

    @model_validator(mode="after")
    def _texts_fit_in_an_event(self) -> Settings:
        limit = min(self.api.max_event_bytes, self.ingest.max_event_bytes)
        if self.contract.max_text_chars > limit:
            # Raised as the text limit's error, so it names FLYWHEEL_CONTRACT__MAX_TEXT_CHARS.
            raise ValidationError.from_exception_data(
                "Settings",
                [
                    {
                        "type": "less_than_equal",
                        "loc": ("contract", "max_text_chars"),
                        "input": self.contract.max_text_chars,
                        "ctx": {"le": f"{limit} (the per-event byte limit)"},
                    }
                ],
            )
        return self

    @model_validator(mode="after")
    def _blank_bootstrap_means_embedded(self) -> Settings:
        if self.kafka.bootstrap_servers is not None and not self.kafka.bootstrap_servers.strip():
            self.kafka.bootstrap_servers = None
        return self

    @property
    def lake_location(self) -> LakeLocation:
        """The lake's location: ``FLYWHEEL_LAKE__URL``, else ``<data dir>/lake``."""
        if self.lake.url is None:
            return LakeLocation(str(self.data_dir / "lake"))
        return parse_lake_url(self.lake.url)

    @property
    def datasets_location(self) -> LakeLocation:
        """Where datasets are published: ``FLYWHEEL_EXPORT__TARGET``, else
        ``<data dir>/datasets``."""
        if self.export.target is None:
            return LakeLocation(str(self.data_dir / "datasets"))
        return parse_lake_url(self.export.target)

    @property
    def embedded(self) -> bool:
        """True when no Kafka is configured and events are handled in-process."""
        return self.kafka.bootstrap_servers is None


def load_settings(**overrides: object) -> Settings:
    """Read and validate the settings, turning validation failures into one ``ConfigError``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            # Named as it is set: ("kafka", "partitions") is FLYWHEEL_KAFKA__PARTITIONS.
            where = "FLYWHEEL_" + "__".join(str(part).upper() for part in error["loc"])
            problems.append(f"{where}: {error['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
    except SettingsError as exc:
        # pydantic-settings names only the section ("api") whose JSON did not parse.
        found = re.search(r'field "(\w+)"', str(exc))
        section = f"FLYWHEEL_{found.group(1).upper()}" if found else "FLYWHEEL_"
        named = sorted(k.upper() for k in os.environ if k.upper().startswith(section)) or [section]
        raise ConfigError(
            f"invalid settings: {', '.join(named)} could not be parsed: a list setting takes "
            "JSON, e.g. FLYWHEEL_API__WRITE_KEYS='[\"key-one\"]'"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError("invalid settings: the .env file here is not UTF-8 text") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()


def setting_rows() -> list[tuple[str, str, str, str]]:
    """``(environment variable, type, default, description)`` for every leaf setting."""
    rows = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            env = f"{prefix}{name.upper()}"
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, env + "__")
                continue
            type_name = getattr(annotation, "__name__", None) or str(annotation)
            type_name = str(annotation) if "[" in str(annotation) else type_name
            default = "(unset)" if field.default is None else repr(field.default)
            if isinstance(field.default, list) and not field.default:
                default = "[]"
            if isinstance(field.default, Path | date):
                default = str(field.default)
            # A model of ours is named by its class alone (its module is __main__ under -m).
            for noise in ("typing.", "pydantic.types.", "pathlib.", f"{__name__}.", "__main__."):
                type_name = type_name.replace(noise, "")
            type_name = type_name.replace(" | None", ", optional")
            if type_name.startswith("Optional["):
                type_name = type_name[len("Optional[") : -1] + ", optional"
            description = (field.description or "").replace("``", "`")
            rows.append((env, type_name, default, description))

    walk(Settings, "FLYWHEEL_")
    return rows


def reference_markdown() -> str:
    """The configuration reference page (docs/configuration.md) generated from the models."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from flywheel/settings.py: `python -m flywheel.settings`. Do not edit. -->",
        "",
        "Every setting is an environment variable (or a line in `.env`). Nested sections use `__`;",
        'list settings take JSON, e.g. `FLYWHEEL_API__WRITE_KEYS=\'["key-1", "key-2"]\'`.',
        "Invalid values stop every command with one line naming the setting.",
        "",
        "| variable | type | default | meaning |",
        "|---|---|---|---|",
    ]
    for env, type_name, default, description in setting_rows():
        meaning = " ".join(description.split()).replace("|", "\\|")
        type_name = type_name.replace("|", "\\|")  # a union's bars would split the row
        lines.append(f"| `{env}` | `{type_name}` | `{default}` | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path("docs/configuration.md").write_text(reference_markdown())
