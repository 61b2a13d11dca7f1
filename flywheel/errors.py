"""The one error hierarchy of Feedback Flywheel.

Every error the platform raises on purpose derives from ``FlywheelError``. Errors carry identifiers
(topic, partition, offset, event id, setting name), never raw event text, so they are safe to log.

    FlywheelError
    ├── ConfigError              a setting is missing or wrong; the user must fix the configuration
    │   └── MissingExtraError    a command needs an optional part that is not installed
    ├── NotFoundError            what a command names does not exist (a dataset version)
    ├── ReviewInputError         a review or a queue request is invalid (names each field)
    ├── ReviewConflictError      a queue name taken, an item the reviewer already reviewed
    ├── ContractError            an event breaks the event contract (permanent: never retried)
    ├── TransientError           worth retrying with backoff (never dead-lettered)
    │   └── SinkUnavailableError the event sink (Kafka) did not acknowledge in time
    ├── KafkaError               a Kafka call failed permanently (bad topic, auth, config)
    │   └── KafkaAuthError       the brokers refused the credentials or the TLS handshake failed
    │                            (also a ConfigError: the configuration must be fixed)
    ├── LocalKafkaError          the local development broker could not be resolved or started
    ├── LocalS3Error             the local S3 server (moto_server) could not be started
    ├── WarehouseError           the DuckDB warehouse could not be opened, migrated or written
    │   ├── WarehouseBusyError   another process holds the warehouse (DuckDB has one writer)
    │   └── QueryError           a query given to `flywheel sql` failed (bad SQL, or a write)
    └── ExportError              a dataset could not be published (nothing was)
        ├── ExportBusyError      another export of the same dataset is running
        ├── QualityGateError     the quality gate failed a critical expectation
        ├── VersionNotFoundError a dataset has no such version (also a NotFoundError)
        └── ManifestVersionError a dataset manifest was written by a newer release

Only ``api/`` maps these to HTTP status codes, and only ``flywheel.shell.cli`` maps them to exit
codes.
"""

from __future__ import annotations

from collections.abc import Sequence


class FlywheelError(Exception):
    """Root of every error the platform raises on purpose."""


class ConfigError(FlywheelError):
    """A setting is missing, malformed or a placeholder; the message names the setting."""


class MissingExtraError(ConfigError):
    """A command needs an optional part of the package (an extra) that is not installed; the
    message names the extra and the pip command that installs it."""


class NotFoundError(FlywheelError):
    """What a command or request names (a dataset version) does not exist."""


class ReviewInputError(FlywheelError):
    """A review queue request or a submitted review is invalid; ``errors`` names each field
    (``path``, ``type``, ``message``), never a submitted text."""

    def __init__(self, message: str, *, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class ReviewConflictError(FlywheelError):
    """A review queue of that name exists, or the reviewer already reviewed the item, or the
    item has every review it wants."""


class ReviewerErasedError(FlywheelError):
    """The reviewer's id was erased (it is on the suppression list): they review no more under
    it, as an erased user's events are dropped."""


class ContractError(FlywheelError):
    """An event does not satisfy the event contract; permanent, never retried."""

    def __init__(self, message: str, *, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class TransientError(FlywheelError):
    """A failure that may go away on its own; callers retry with backoff."""


class SinkUnavailableError(TransientError):
    """The event sink could not acknowledge the events (broker down, timeout)."""

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class KafkaError(FlywheelError):
    """A Kafka operation failed for a reason retrying will not fix."""


class KafkaAuthError(KafkaError, ConfigError):
    """The brokers refused the client's credentials, or TLS failed (an untrusted certificate);
    retrying will not help until the configuration is fixed. Never carries a secret."""


class LocalKafkaError(FlywheelError):
    """The local development broker could not be resolved, formatted or started."""


class LocalS3Error(FlywheelError):
    """The local S3 server for tests and benchmarks (``moto_server``) could not be started."""


class WarehouseError(FlywheelError):
    """The warehouse could not be opened, migrated or written; the message names the file."""


class WarehouseBusyError(WarehouseError):
    """Another process holds the warehouse's write lock (another transform run, most likely)."""


class QueryError(WarehouseError):
    """A query a person gave (``flywheel sql``) failed: it does not parse, names what is not
    there, or tries to write the warehouse or reach a file; the message is DuckDB's first line."""


class ExportError(FlywheelError):
    """A dataset could not be published (nothing was published)."""


class ExportBusyError(ExportError):
    """Another export of the same dataset is running."""


class QualityGateError(ExportError):
    """The quality gate failed a critical expectation; the report is kept beside the attempt.
    ``failed``: one line per failed critical expectation (config, column, expectation, what was
    observed), the message lists the first few."""

    def __init__(self, message: str, *, report: str, failed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.report = report
        self.failed = list(failed)


class VersionNotFoundError(ExportError, NotFoundError):
    """A dataset has no such published version."""


class ManifestVersionError(ExportError):
    """A dataset manifest has a ``manifest_version`` newer than this release reads; upgrading
    the code (not retrying) is the fix."""
