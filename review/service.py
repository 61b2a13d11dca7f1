"""The review stage's service functions: what the CLI, the API and the console call.

Each opens the warehouse (migrated to head) for one piece of work and closes it, so nothing
holds DuckDB's single-writer lock between requests; while a transform run or an export holds
it, a call raises ``WarehouseBusyError`` (the API answers 409 with ``Retry-After``, the CLI
exits 4). Within one process the calls take turns on a lock. Reviewers are named by their id as
configured (``FLYWHEEL_API__REVIEWER_KEYS``) and pseudonymised here, before anything is stored
or logged; admins' calls name no reviewer.

    create_queue(settings, queue_id=, seed=, per_stratum=, overlap=, strata=) -> QueuePublic
    list_queues(settings) -> list[QueuePublic]
    show_queue(settings, queue_id=) -> QueuePublic
    rubric(settings) -> Rubric
    next_item(settings, queue_id=, reviewer_id=) -> ItemPublic | None
    submit_review(settings, queue_id=, review=, reviewer_id=) -> ReviewPublic
    calibration(settings, queue_id=None) -> CalibrationPublic
    suggest_policy(settings, policy_file=None, queue_id=None, min_reviews=20) -> SuggestionPublic
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.errors import ReviewerErasedError
from review import calibration as calibrating
from review import queues
from review.calibration import MIN_REVIEWS, CalibrationPublic, SuggestionPublic
from review.queues import ItemPublic, QueuePublic, ReviewCreate, ReviewPublic
from review.rubric import Rubric, load_rubric

if TYPE_CHECKING:
    from flywheel.settings import Settings

_turns = threading.Lock()
"""One warehouse connection at a time in this process (the API's threads)."""


@dataclass(frozen=True)
class Reviewer:
    """A reviewer as stored: the pseudonym of their id and the key version it was made with."""

    pseudonym: str
    key_version: int


def reviewer_identity(settings: Settings, reviewer_id: str) -> Reviewer:
    """The reviewer's pseudonym under the current pseudonym key (as user ids are made)."""
    from privacy.keys import keyring_for

    keyring = keyring_for(settings)
    return Reviewer(keyring.pseudonym(reviewer_id), keyring.current)


@contextmanager
def _warehouse(settings: Settings, action: str) -> Iterator[Any]:
    from warehouse.db import connected

    with _turns, connected(settings.data_dir, action=action) as db:
        yield db


def rubric(settings: Settings) -> Rubric:
    """The configured rubric (``FLYWHEEL_REVIEW__RUBRIC_FILE``, else the shipped one)."""
    return load_rubric(settings.review.rubric_file)


def create_queue(
    settings: Settings,
    *,
    queue_id: str,
    seed: int,
    per_stratum: int,
    overlap: float = 0.0,
    strata: list[str] | None = None,
    kind: str = "pair",
) -> QueuePublic:
    """Sample a new queue from the warehouse's pairs, or its labelled responses (``kind``
    ``label``; ``review.queues.create_queue``)."""
    scale = rubric(settings)
    with _warehouse(settings, "create a review queue in") as db:
        return queues.create_queue(
            db, queue_id=queue_id, seed=seed, per_stratum=per_stratum, rubric=scale,
            overlap=overlap, strata=strata, kind=kind,
        )  # fmt: skip


def list_queues(settings: Settings) -> list[QueuePublic]:
    """Every review queue, oldest first, with its progress."""
    with _warehouse(settings, "list the review queues of") as db:
        return queues.list_queues(db)


def show_queue(settings: Settings, *, queue_id: str) -> QueuePublic:
    """One review queue (``NotFoundError`` if none has that name)."""
    with _warehouse(settings, "read a review queue of") as db:
        return queues.show_queue(db, queue_id=queue_id)


def _not_erased(settings: Settings, who: Reviewer) -> None:
    """``ReviewerErasedError`` when the reviewer's pseudonym is on the suppression list."""
    from privacy.suppression import SuppressionList, suppression_file

    if who.pseudonym in SuppressionList(suppression_file(settings.data_dir)).current(fresh=True):
        raise ReviewerErasedError(
            "this reviewer's id was erased: their reviews were deleted and no more are taken "
            "under it (configure the reviewer key with another id)"
        )


def next_item(settings: Settings, *, queue_id: str, reviewer_id: str) -> ItemPublic | None:
    """The next item for this reviewer, texts included, sides in the reviewer's order; None
    when the queue has nothing left for them."""
    from warehouse.lake import open_lake

    who = reviewer_identity(settings, reviewer_id)
    _not_erased(settings, who)
    lake_root = open_lake(settings).cache
    with _warehouse(settings, "read a review item of") as db:
        return queues.next_item(db, lake_root, queue_id=queue_id, reviewer=who.pseudonym)


def submit_review(
    settings: Settings, *, queue_id: str, review: ReviewCreate, reviewer_id: str
) -> ReviewPublic:
    """Record the reviewer's verdict and rubric scores on an item (``ReviewerErasedError`` for
    a reviewer whose id was erased)."""
    who = reviewer_identity(settings, reviewer_id)
    _not_erased(settings, who)
    scale = rubric(settings)
    with _warehouse(settings, "record a review in") as db:
        return queues.submit_review(
            db, queue_id=queue_id, review=review, reviewer=who.pseudonym,
            key_version=who.key_version, rubric=scale,
        )  # fmt: skip


def calibration(settings: Settings, *, queue_id: str | None = None) -> CalibrationPublic:
    """Human precision per signal, reward levels against rubric scores, agreement."""
    with _warehouse(settings, "read the reviews of") as db:
        if queue_id is not None:
            queues.show_queue(db, queue_id=queue_id)  # NotFoundError for an unknown queue
        return calibrating.calibration(db, queue_id=queue_id)


def suggest_policy(
    settings: Settings,
    *,
    policy_file: Path | None = None,
    queue_id: str | None = None,
    min_reviews: int = MIN_REVIEWS,
) -> SuggestionPublic:
    """The weights the reviews suggest, as a diff of ``policy_file`` (unset: the transforms'
    configured policy, ``FLYWHEEL_TRANSFORMS__POLICY_FILE``, else the shipped one); nothing is
    written."""
    from transforms.policy import DEFAULT_POLICY

    policy_file = policy_file or settings.transforms.policy_file or DEFAULT_POLICY

    with _warehouse(settings, "read the reviews of") as db:
        if queue_id is not None:
            queues.show_queue(db, queue_id=queue_id)
        return calibrating.suggest_policy(
            db, policy_file=policy_file, queue_id=queue_id,
            min_reviews=min_reviews,
        )  # fmt: skip
