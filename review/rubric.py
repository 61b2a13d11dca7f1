"""The rubric: the dimensions reviewers score each answer on, read from a TOML file.

The shipped ``review/rubric.toml`` has correctness, readability, security and efficiency, each
from 1 to 5; ``FLYWHEEL_REVIEW__RUBRIC_FILE`` names another. A file that does not validate is
one ``ConfigError`` naming the file and each bad field (``dimensions.security.max: ...``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from flywheel.files import packaged
from flywheel.tomlfile import load_toml_model

DEFAULT_RUBRIC = packaged("review", "rubric.toml")

DimensionName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class Dimension(BaseModel):
    """One thing reviewers score, on an integer scale from ``min`` to ``max``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(min_length=1)
    min: int = 1
    max: int = 5
    low: str = ""
    """What the lowest score means."""
    high: str = ""
    """What the highest score means."""

    @model_validator(mode="after")
    def _ordered(self) -> Dimension:
        if self.min >= self.max:
            raise ValueError("min must be below max")
        return self


class Rubric(BaseModel):
    """Every dimension, in the file's order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dimensions: dict[DimensionName, Dimension] = Field(min_length=1)
    sha256: str = ""
    """The file's hash (set on load; recorded with each review)."""


def load_rubric(path: Path | None = None) -> Rubric:
    """The rubric of ``path`` (the shipped one when None), validated."""
    path = path or DEFAULT_RUBRIC
    rubric = load_toml_model(path, Rubric, "rubric file")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return rubric.model_copy(update={"sha256": digest})
