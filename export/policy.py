"""Dataset policies (TOML): what each published dataset holds, validated on load, hashed.

The shipped file (export/datasets.toml) defines a dataset called ``default`` and the schedules;
``FLYWHEEL_EXPORT__DATASETS_FILE`` points at another one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flywheel.errors import ConfigError
from flywheel.files import packaged
from flywheel.tomlfile import load_toml_model

DEFAULT_DATASETS_FILE = packaged("export", "datasets.toml")

Kind = Literal["dpo", "kto", "reward"]
Signal = Literal["ab_choice", "edit", "regenerate", "copy", "rating", "continued"]
SPLIT_NAME = r"^[a-z][a-z0-9_]*$"
LANGUAGE = r"^([a-z]{2,3}|code|multilingual)$"
"""A language of the card: an ISO 639-1, 639-2 or 639-3 code, or the Hub's ``code`` or
``multilingual``."""
LICENSE = r"^[a-z0-9][a-z0-9.+-]{0,63}$"
"""A license identifier as the Hub's card names them (``apache-2.0``, ``cc-by-4.0``, ``other``)."""
DEFAULT_LANGUAGE = ["en"]
DEFAULT_LICENSE = "other"
FILTERS = ("metadata_filter", "models", "apps", "since", "until")
"""The policy's row filters: left out of its record (and digest) when unset, like the card's
``language`` and ``license``, so that a dataset that sets none publishes what it did before
they existed."""
_UNSET_OMITTED = (*FILTERS, "language", "license")
METADATA_KEY = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
"""A metadata key, as the event contract takes them (``ingest.contract.METADATA_KEY``)."""
MetadataValue = str | bool | int | float


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_cron(expression: str | None) -> str | None:
    """Accept a five-field expression that fires, so ``flywheel schedule`` can always go on.

    croniter also takes a sixth field (seconds) and a seventh (year), and accepts dates that do
    not exist (``0 0 31 2 *``), failing only when asked for the next time.
    """
    if expression is None:
        return None
    from croniter import CroniterBadDateError, croniter

    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError(
            f"{expression!r} is not a cron expression of five fields "
            "(minute hour day-of-month month day-of-week)"
        )
    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{expression!r} never fires (none of its months has that day)") from None
    return expression


IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
"""A model or column name an extra column may come from: lower-case, as model files are named."""
ROW_COLUMNS = frozenset({
    "prompt", "chosen", "rejected", "completion", "label", "margin", "id", "confidence",
    "signals", "event_ids", "models", "user", "conversation", "split", "chosen_shown_first",
})  # fmt: skip
"""The columns a config's rows already have (TRL's, the lineage, the export's own)."""


class ExtraColumns(_Strict):
    """Columns of a model (a team's own, ``FLYWHEEL_TRANSFORMS__MODELS_DIR``, or a shipped
    one) joined into a dataset's rows by the row's response or pair id."""

    model: str = Field(pattern=IDENTIFIER)
    """The warehouse table the columns are read from; one row per key value (or none)."""
    key: Literal["response_id", "pair_id"] = "response_id"
    """``response_id``: a kto row takes the columns of its response as they are named; a dpo
    or reward row takes them twice, ``chosen_<column>`` and ``rejected_<column>`` (the chosen
    side of an edit pair is the edited text, which has no response: NULL). ``pair_id``: dpo and
    reward rows take them by their pair, as named; kto rows do not."""
    columns: list[str] = Field(min_length=1)

    @field_validator("columns")
    @classmethod
    def _columns(cls, columns: list[str]) -> list[str]:
        import re

        for column in columns:
            if not re.match(IDENTIFIER, column):
                raise ValueError(f"{column!r} is not a column name (lower-case letters, digits, _)")
        if len(set(columns)) != len(columns):
            raise ValueError("lists a column twice")
        return columns

    def names(self, kind: Kind) -> list[str]:
        """The columns this adds to a config's rows, as the dataset names them."""
        if self.key == "pair_id":
            return list(self.columns) if kind != "kto" else []
        if kind == "kto":
            return list(self.columns)
        return [f"{side}_{column}" for side in ("chosen", "rejected") for column in self.columns]


class DatasetPolicy(_Strict):
    """One dataset: which rows, how many per user and prompt, which splits and formats."""

    description: str = ""
    kinds: list[Kind] = Field(default=["dpo", "kto", "reward"], min_length=1)
    min_confidence: float = Field(default=0.2, ge=0, le=1)
    signals: list[Signal] = Field(
        default=["ab_choice", "edit", "regenerate", "copy", "rating", "continued"], min_length=1
    )
    max_rows_per_user: int = Field(default=200, ge=1)
    max_rows_per_prompt: int = Field(default=5, ge=0)
    splits: dict[str, float] = {"train": 0.9, "test": 0.1}
    seed: int = 1
    formats: list[Literal["parquet", "jsonl"]] = ["parquet"]
    message_format: Literal["standard", "conversational"] = "standard"
    min_rows: int = Field(default=10, ge=0)
    metadata_filter: dict[str, MetadataValue | list[MetadataValue]] | None = None
    """Only rows whose every response was generated with this metadata: each key at its value
    (or one of the listed values). A row is judged by the metadata of its responses'
    generation events (both responses of a pair), never by its signals' events."""
    models: list[str] | None = None
    """Only rows whose every response was generated by one of these models: a model id
    (``chat-small``: any version) or an id and version as the ``models`` column shows them
    (``chat-small@2026-09``)."""
    apps: list[str] | None = None
    """Only rows whose every response's generation came from one of these client applications
    (the event's ``app.name``, read from the lake: the warehouse does not keep it)."""
    since: datetime | None = None
    """Only rows whose every response was generated at or after this time (``occurred_at``)."""
    until: datetime | None = None
    """Only rows whose every response was generated before this time (exclusive)."""
    language: list[str] | None = None
    """The card's ``language`` (the Hub's codes); unset, ``DEFAULT_LANGUAGE``."""
    license: str | None = None
    """The card's ``license`` (the Hub's identifiers); unset, ``DEFAULT_LICENSE``."""
    extra_columns: list[ExtraColumns] = []
    """Columns joined into the rows from other models (``ExtraColumns``), after the lineage
    columns, in the order listed."""
    # When the dataset is exported, not what it holds: left out of model_dump, hence out of the
    # digest (a new schedule alone publishes nothing new) and of the manifest's policy record.
    schedule: str | None = Field(default=None, exclude=True)
    evaluate: Literal["off", "accuracy", "ablations"] = Field(default="ablations", exclude=True)
    """Whether an export trains the light reward model on the version's train split and records
    its held-out accuracy (``accuracy``), with one model more per signal left out
    (``ablations``, the slowest), in the manifest and the card. How the version is described,
    not what it holds: out of the digest like ``schedule``, so turning it on publishes nothing
    new."""
    keep_versions: int | None = Field(default=None, ge=1, exclude=True)
    """After each publication, only the newest this many versions (superseded ones aside) keep
    their data files; older ones keep their manifest, card and quality report
    (``export.retention``). Unset, every version keeps its data. When versions are kept, not
    what they hold: out of the digest like ``schedule``."""

    @field_validator("kinds", "signals", "formats")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("lists a value twice")
        return values

    @field_validator("models", "apps", "language")
    @classmethod
    def _named(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        if not values:
            raise ValueError("lists no value; leave the key out to take every row")
        if len(set(values)) != len(values):
            raise ValueError("lists a value twice")
        if any(not value.strip() for value in values):
            raise ValueError("lists an empty name")
        return values

    @field_validator("language")
    @classmethod
    def _languages(cls, values: list[str] | None) -> list[str] | None:
        import re

        for value in values or []:
            if not re.match(LANGUAGE, value):
                raise ValueError(
                    f"{value!r} is not a language code (ISO 639: two or three lower-case "
                    "letters, or code, or multilingual)"
                )
        return values

    @field_validator("license")
    @classmethod
    def _license(cls, value: str | None) -> str | None:
        import re

        if value is not None and not re.match(LICENSE, value):
            raise ValueError(
                f"{value!r} is not a license identifier (lower-case, e.g. apache-2.0, "
                "cc-by-4.0 or other)"
            )
        return value

    @field_validator("since", "until", mode="before")
    @classmethod
    def _instant(cls, value: object) -> object:
        """A TOML date is its midnight in UTC; a time needs its offset (UTC is ``Z``)."""
        if isinstance(value, date) and not isinstance(value, datetime):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError(
                f"{value.isoformat()} has no time zone offset; write e.g. {value.isoformat()}Z "
                "for UTC"
            )
        return value

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:  # a string without an offset
            raise ValueError(f"{value.isoformat()} has no time zone offset")
        return None if value is None else value.astimezone(UTC)

    @field_validator("splits")
    @classmethod
    def _ratios(cls, splits: dict[str, float]) -> dict[str, float]:
        import re

        if not splits:
            raise ValueError("needs at least one split")
        for name, ratio in splits.items():
            if not re.match(SPLIT_NAME, name):
                raise ValueError(f"split name {name!r} must be lower-case letters, digits and _")
            if not 0 < ratio <= 1:
                raise ValueError(f"split {name!r} has ratio {ratio}; ratios are in (0, 1]")
        if abs(sum(splits.values()) - 1) > 1e-9:
            raise ValueError(f"ratios add up to {sum(splits.values()):g}, not 1")
        return splits

    @field_validator("schedule")
    @classmethod
    def _cron(cls, expression: str | None) -> str | None:
        return _check_cron(expression)

    @field_validator("metadata_filter")
    @classmethod
    def _metadata_filter(
        cls, selection: dict[str, MetadataValue | list[MetadataValue]] | None
    ) -> dict[str, MetadataValue | list[MetadataValue]] | None:
        import re

        if selection is None:
            return None
        if not selection:
            raise ValueError("names no key; leave metadata_filter out to take every row")
        for key, value in selection.items():
            if not re.match(METADATA_KEY, key):
                raise ValueError(
                    f"{key!r} is not a metadata key (a letter or _, then letters, digits or _)"
                )
            if isinstance(value, list) and not value:
                raise ValueError(f"{key!r} lists no value")
        return selection

    def metadata_values(self) -> dict[str, list[MetadataValue]]:
        """``metadata_filter`` with every key's values as a list (empty: no filter)."""
        return {
            key: value if isinstance(value, list) else [value]
            for key, value in sorted((self.metadata_filter or {}).items())
        }

    @model_validator(mode="after")
    def _parquet_always(self) -> DatasetPolicy:
        if "parquet" not in self.formats:
            raise ValueError("formats must include parquet (JSON Lines is an extra copy)")
        return self

    @model_validator(mode="after")
    def _window(self) -> DatasetPolicy:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(
                f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})"
            )
        return self

    @property
    def filtered(self) -> bool:
        """Whether a filter selects the rows by their responses' generations."""
        return any(getattr(self, key) is not None for key in FILTERS)

    @model_validator(mode="after")
    def _extra_names(self) -> DatasetPolicy:
        for extra in self.extra_columns:
            if extra.key == "pair_id" and not any(kind != "kto" for kind in self.kinds):
                raise ValueError(
                    f"extra_columns from {extra.model} by pair_id: no config of the dataset "
                    "has pairs (dpo, reward)"
                )
        for kind in self.kinds:
            seen: set[str] = set()
            for name in (n for extra in self.extra_columns for n in extra.names(kind)):
                if name in ROW_COLUMNS or name in seen:
                    raise ValueError(
                        f"extra column {name!r} of the {kind} config is already a column: "
                        "leave it out or take it from one model only"
                    )
                seen.add(name)
        return self

    def extra_names(self, kind: Kind) -> list[str]:
        """The extra columns of a config's rows, in order."""
        return [name for extra in self.extra_columns for name in extra.names(kind)]

    def record(self, name: str) -> dict[str, Any]:
        """The manifest's ``policy``: the dataset's name and policy, without its schedule, its
        ``evaluate`` and ``keep_versions`` settings, and without the filters, ``language``,
        ``license`` and ``extra_columns`` when they are unset, so that a dataset's digest is what
        it was before those keys existed (and nothing is published again for it). Times are
        ISO 8601 in UTC."""
        dump = self.model_dump(mode="json")
        for key in _UNSET_OMITTED:
            if dump[key] is None:
                del dump[key]
        if not dump["extra_columns"]:
            del dump["extra_columns"]
        return {"name": name, **dump}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> DatasetPolicy:
        """The policy a manifest recorded (``record``; a ``schedule`` of older records is
        kept, and left out of the digest as ever)."""
        return cls.model_validate({k: v for k, v in record.items() if k != "name"})

    def digest(self, name: str) -> str:
        """sha256 of the dataset's name and policy (without its schedule) as canonical JSON."""
        canonical = json.dumps(self.record(name), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def digests(self, name: str, recorded: Mapping[str, object] | None) -> set[str]:
        """``digest``, and the digest versions published before it had (the schedule included,
        taken from the version's ``recorded`` policy), so that this change of the digest alone
        does not make the next export publish the same data again."""
        found = {self.digest(name)}
        if recorded is not None and "schedule" in recorded:
            legacy = {**self.record(name), "schedule": recorded["schedule"]}
            found.add(hashlib.sha256(json.dumps(legacy, sort_keys=True).encode()).hexdigest())
        return found


class Schedule(_Strict):
    """When `flywheel schedule` runs the transforms (each dataset has its own schedule)."""

    transforms: str | None = "*/15 * * * *"
    """Cron expression; ``""`` turns the scheduled transform runs off."""
    retention: str | None = "30 3 * * *"
    """When the retention job runs (only if a retention period is set)."""
    lake_maintenance: str | None = "0 4 * * *"
    """When the lake's table is compacted and its old snapshots expired (``flywheel lake
    compact``)."""

    @field_validator("transforms", "retention", "lake_maintenance")
    @classmethod
    def _cron(cls, expression: str | None) -> str | None:
        return _check_cron(expression or None)


class DatasetsFile(_Strict):
    """The whole file: the schedule and the datasets by name."""

    schedule: Schedule = Schedule()
    datasets: dict[str, DatasetPolicy] = Field(min_length=1)

    @field_validator("datasets")
    @classmethod
    def _names(cls, datasets: dict[str, DatasetPolicy]) -> dict[str, DatasetPolicy]:
        import re

        for name in datasets:
            if not re.match(r"^[a-z0-9][a-z0-9_.-]{0,63}$", name):
                raise ValueError(
                    f"dataset name {name!r} must be lower-case letters, digits, '.', '_' or '-'"
                )
        return datasets

    def dataset(self, name: str) -> DatasetPolicy:
        """The named dataset's policy; an unknown name is a ``ConfigError`` listing the known."""
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets))
            raise ConfigError(f"no dataset called {name!r} (the policy defines: {known})") from None


def load_datasets(path: Path | None = None) -> DatasetsFile:
    """Read and validate a datasets file; any problem is one ``ConfigError`` naming the key."""
    return load_toml_model(path or DEFAULT_DATASETS_FILE, DatasetsFile, "datasets file")
