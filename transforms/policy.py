"""The signal policy (TOML): weights and thresholds, validated on load, hashed for lineage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flywheel.files import packaged
from flywheel.tomlfile import load_toml_model

DEFAULT_POLICY = packaged("transforms", "policy.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Weights(_Section):
    """How much each signal counts."""

    ab_choice: float = Field(ge=0)
    rating: float = Field(ge=0)
    edit: float = Field(ge=0)
    copy_: float = Field(ge=0, alias="copy")
    regenerate: float = Field(ge=0)
    continued: float = Field(ge=0)


class EditRule(_Section):
    """When an edit is a real preference."""

    min_change: float = Field(ge=0, le=1)
    max_change: float = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> EditRule:
        if self.min_change >= self.max_change:
            raise ValueError("min_change must be below max_change")
        return self


class RewardLevels(_Section):
    """How much each level of a response's reward counts."""

    explicit: float = Field(ge=0)
    implicit: float = Field(ge=0)
    process: float = Field(ge=0)
    constitutional: float = Field(default=0.0, ge=0)
    """The principles the code keeps (transforms/principles.toml); policy files written before
    the level existed give it no weight."""
    leaked_secret: float = Field(ge=0)


class Policy(_Section):
    """Every weight and threshold of the transforms."""

    weights: Weights
    edit: EditRule
    rewards: RewardLevels

    @property
    def digest(self) -> str:
        """sha256 of the policy's canonical JSON: the same policy, the same hash."""
        canonical = json.dumps(self.model_dump(by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def load_policy(path: Path | None = None) -> Policy:
    """Read and validate a policy file; any problem is one ``ConfigError`` naming the key."""
    return load_toml_model(path or DEFAULT_POLICY, Policy, "policy file")
