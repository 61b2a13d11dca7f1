"""The constitution (TOML): written principles the code in responses is held to, each a set of
ruff rule codes and a weight; validated on load, hashed for lineage.

The default file is transforms/principles.toml (it says how a score follows from the weights).
Its hash (``Principles.digest``, of the canonical JSON like the policy's: comments do not count)
is recorded in ``transform_runs.principles_hash`` and in each dataset manifest, and is part of
the fingerprint of ``code_checks``, so that changing a principle rebuilds the scores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from flywheel.files import packaged
from flywheel.tomlfile import load_toml_model

DEFAULT_PRINCIPLES = packaged("transforms", "principles.toml")
WEIGHT_PLACES = 6
"""Weights are read to this many decimal places and summed as decimals: the score of a set of
principles is exact, whatever the order they are added in (the SQL and the Python sum them in
different orders)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Linter(_Section):
    """The settings of the rules that take one."""

    line_length: int = Field(ge=1, le=320)
    """E501's limit."""
    max_complexity: int = Field(ge=1)
    """C901's limit."""


class Principle(_Section):
    """One principle: the ruff rules that find a breach of it, and what a breach costs."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    rules: tuple[str, ...] = Field(min_length=1)
    weight: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _codes(self) -> Principle:
        for code in self.rules:
            if not code.isascii() or not code[:1].isalpha() or not code.isalnum():
                raise ValueError(f"{code!r} is not a ruff rule code (such as S105)")
            if code != code.upper() or not code[-1].isdigit():
                raise ValueError(f"{code!r} is not a ruff rule code (such as S105)")
        return self


class Principles(_Section):
    """The constitution: its version, the linter's settings and the principles."""

    version: int = Field(ge=1)
    linter: Linter
    principle: tuple[Principle, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Principles:
        names = [p.name for p in self.principle]
        if len(set(names)) != len(names):
            raise ValueError("two principles have the same name")
        codes = [code for p in self.principle for code in p.rules]
        repeated = sorted({code for code in codes if codes.count(code) > 1})
        if repeated:
            raise ValueError(f"rule {repeated[0]} is in two principles (one names it)")
        return self

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON: the same principles, the same hash."""
        canonical = json.dumps(self.model_dump(), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def rules(self) -> dict[str, str]:
        """Each rule code and the principle it belongs to."""
        return {code: p.name for p in self.principle for code in p.rules}

    def weights(self) -> dict[str, Decimal]:
        """Each principle's weight as the decimal that scores add up."""
        return {p.name: _decimal(p.weight) for p in self.principle}

    def score(self, broken: Iterable[str]) -> float:
        """The score of Python code that broke ``broken`` (principle names, each counted once):
        1 minus twice their weights' sum, at least -1."""
        weights = self.weights()
        total = sum((weights[name] for name in set(broken)), Decimal(0))
        return float(1 - 2 * min(Decimal(1), total))


def _decimal(weight: float) -> Decimal:
    return Decimal(repr(weight)).quantize(Decimal(1).scaleb(-WEIGHT_PLACES))


def load_principles(path: Path | None = None) -> Principles:
    """Read and validate a principles file; any problem is one ``ConfigError`` naming the key."""
    return load_toml_model(path or DEFAULT_PRINCIPLES, Principles, "principles file")
