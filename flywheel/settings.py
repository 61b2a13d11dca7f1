"""Settings for every stage, read once from ``FLYWHEEL_*`` environment variables (and ``.env``).

Nested sections use ``__``: ``FLYWHEEL_KAFKA__BOOTSTRAP_SERVERS``, ``FLYWHEEL_API__WRITE_KEYS``.
List settings take JSON: ``FLYWHEEL_API__WRITE_KEYS='["key-one-..."]'``.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from flywheel.errors import ConfigError

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


class KafkaSettings(BaseModel):
    """Where events travel between the API and the ingest workers."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

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


class ApiSettings(BaseModel):
    """The HTTP ingest API."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    write_keys: list[SecretStr] = []
    """Bearer keys allowed to post events (JSON list). Required by ``flywheel serve``."""
    admin_keys: list[SecretStr] = []
    """Bearer keys allowed to call the admin and privacy endpoints (JSON list)."""
    cors_origins: list[str] = []
    """Browser origins allowed to post events (exact origins; ``*`` is refused)."""
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

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_origin(cls, origins: list[str]) -> list[str]:
        if "*" in origins:
            raise ValueError("FLYWHEEL_API__CORS_ORIGINS must list exact origins, not '*'")
        return origins


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


class ExportSettings(BaseModel):
    """Published datasets and the schedule."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    datasets_file: Path | None = None
    """Dataset policies and schedules (TOML); unset: the shipped ``export/datasets.toml``, which
    defines the ``default`` dataset."""
    keep_failed_attempts: int = Field(default=5, ge=1)
    """How many failed export attempts (data and quality report, ``failed-*`` folders) to keep
    per dataset; older ones are deleted when a new attempt fails."""


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
    ingest: IngestSettings = IngestSettings()
    """Ingest workers."""
    privacy: PrivacySettings = PrivacySettings()
    """Pseudonymisation and scrubbing."""
    export: ExportSettings = ExportSettings()
    """Published datasets and the schedule."""

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
    def _blank_bootstrap_means_embedded(self) -> Settings:
        if self.kafka.bootstrap_servers is not None and not self.kafka.bootstrap_servers.strip():
            self.kafka.bootstrap_servers = None
        return self

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
            if isinstance(field.default, Path):
                default = str(field.default)
            for noise in ("typing.", "pydantic.types.", "pathlib."):
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
        lines.append(f"| `{env}` | `{type_name}` | `{default}` | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path("docs/configuration.md").write_text(reference_markdown())
