"""A warehouse with preference pairs of every kind the review samples, settings with reviewer
keys, and a reviewer's answers; the ``review_warehouse`` and ``review_data_dir`` fixtures, a
plugin of the root conftest (``pytest_plugins``) so that the review's API, console and CLI tests
share them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from flywheel.settings import Settings, load_settings
from privacy.keys import Keyring, write_keyring
from tests.factories import WRITE_KEY, generation, make_event
from tests.helpers.lake import land
from warehouse.lake import Lake

KEYRING = Keyring(1, {1: b"k" * 32})
"""The key tests.helpers.lake pseudonymises with."""
ADMIN_KEY = "admin-key-for-review-0123456789"
READER_KEY = "reader-key-for-review-0123456789"
ANA_KEY = "reviewer-key-ana-0123456789"
BO_KEY = "reviewer-key-bo-0123456789"
REVIEWERS = {ANA_KEY: "ana@example.com", BO_KEY: "bo@example.com"}
ERASED = "erase-me"
"""The user of conversation c9, whose pair is erased in the erasure tests."""


def pair_events() -> list[dict[str, Any]]:
    """Nine conversations, each two sibling answers (``r<i>a``, ``r<i>b``) to one prompt:

    - c0..c2: ``a`` copied: copy pairs, confidence 0.5 (mid), unanimous;
    - c3, c4: ``a`` chosen in an A/B comparison: ab_choice pairs, confidence 1 (high);
    - c5: ``a`` chosen in an A/B comparison, ``b`` copied: contested (1.0 against 0.5);
    - c9: user ``erase-me``, ``a`` copied.
    """
    events: list[dict[str, Any]] = []
    for i in (0, 1, 2, 3, 4, 5, 9):
        user = ERASED if i == 9 else f"user-{i}"
        where = {"conversation_id": f"c{i}", "user_id": user}
        prompt = [{"role": "user", "content": f"question {i}"}]
        events += [generation(f"r{i}a", prompt=prompt, **where),
                   generation(f"r{i}b", prompt=prompt, **where)]  # fmt: skip
        if i in (0, 1, 2, 9):
            events.append(make_event("copy", response_id=f"r{i}a", **where))
        if i in (3, 4, 5):
            events.append(make_event("ab_choice", response_a_id=f"r{i}a",
                                     response_b_id=f"r{i}b", choice="a", **where))  # fmt: skip
        if i == 5:
            events.append(make_event("copy", response_id=f"r{i}b", **where))
    return events


def build_warehouse(data_dir: Path) -> None:
    """Land ``pair_events`` and run the transforms."""
    from transforms.runner import run_transforms

    land(Lake.in_data_dir(data_dir), pair_events())
    run_transforms(data_dir)


@pytest.fixture(scope="module")
def review_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with ``pair_events`` landed and transformed, built once per module: each test
    copies it (``review_data_dir``)."""
    data_dir = tmp_path_factory.mktemp("review") / "data"
    build_warehouse(data_dir)
    return data_dir


@pytest.fixture
def review_data_dir(review_warehouse: Path, tmp_path: Path) -> Path:
    """A private copy of ``review_warehouse``, with the pseudonym key of ``review_settings``
    written beside it."""
    data_dir = tmp_path / "data"
    shutil.copytree(review_warehouse, data_dir)
    # The copied lake catalog names the original's place (warehouse.table refuses it): it is
    # built again from the copy's files by the first command that needs it.
    (data_dir / "lake-catalog.db").unlink(missing_ok=True)
    review_settings(data_dir)
    return data_dir


def review_settings(data_dir: Path, **more: Any) -> Settings:
    """Settings of ``data_dir`` with the pseudonym key written beside it, an admin, a reader, a
    write key and two reviewer keys."""
    key_file = data_dir.parent / f"{data_dir.name}-keys.json"
    if not key_file.exists():
        write_keyring(KEYRING, key_file)
    api = {
        "write_keys": [WRITE_KEY],
        "admin_keys": [ADMIN_KEY],
        "reader_keys": [READER_KEY],
        "reviewer_keys": [{"key": k, "reviewer": r} for k, r in REVIEWERS.items()],
    }
    return load_settings(data_dir=data_dir, privacy={"hmac_key_file": key_file}, api=api, **more)


def scores(left: int = 4, right: int = 2) -> dict[str, dict[str, int]]:
    """Rubric scores of both sides on every shipped dimension."""
    dimensions = ("correctness", "readability", "security", "efficiency")
    return {"left": dict.fromkeys(dimensions, left), "right": dict.fromkeys(dimensions, right)}
