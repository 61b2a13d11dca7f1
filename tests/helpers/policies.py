"""A policy file other than the shipped one, for the tests of what a policy change does."""

from __future__ import annotations

from pathlib import Path

from transforms.policy import DEFAULT_POLICY


def custom_policy(folder: Path) -> Path:
    """``folder/custom.toml``: the shipped policy with edits counted only from 30% of the text
    changed and copies weighing little (fewer labels, other confidences)."""
    text = DEFAULT_POLICY.read_text()
    text = text.replace("min_change = 0.02", "min_change = 0.3").replace("copy = 0.5", "copy = 0.1")
    path = folder / "custom.toml"
    path.write_text(text)
    return path
