"""Human review: queues of sampled items and the reviewers' verdicts.

- ``review_queues``: one row per queue, with the sampling's parameters and outcome as JSON
  (seed, strata, population and sample per stratum), so a queue can be drawn again and checked.
- ``review_items``: what a queue sampled: a preference pair, with the ids its texts are read
  from (texts stay in the lake), its signals, confidence and disagreement at sampling time, its
  stratum, and how many reviews it wants (2 for the items that measure agreement).
- ``reviews``: one verdict per reviewer and item: the reviewer's pseudonym (HMAC of their id,
  never the id), which side was shown on the left, the verdict mapped back to the pair
  (``chosen``, ``rejected``, ``tie``, ``both_bad``) and the rubric scores of each side as JSON.
  A review repeats its item's conversation and response and event ids, so that erasure finds it
  by the same columns as every other table (docs/privacy.md).

Downgrading drops the three tables and the reviews with them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_queues",
        sa.Column("queue_id", sa.String, primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("params", sa.String, nullable=False),
        sa.Column("rubric_sha256", sa.String, nullable=False),
    )
    op.create_table(
        "review_items",
        sa.Column("item_id", sa.String, primary_key=True),
        sa.Column("queue_id", sa.String, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("stratum", sa.String, nullable=False),
        sa.Column("wanted_reviews", sa.Integer, nullable=False),
        sa.Column("pair_id", sa.String, nullable=False),
        sa.Column("conversation_id", sa.String, nullable=False),
        sa.Column("prompt_event_id", sa.String, nullable=False),
        sa.Column("chosen_event_id", sa.String, nullable=False),
        sa.Column("rejected_event_id", sa.String, nullable=False),
        sa.Column("chosen_response_id", sa.String),
        sa.Column("rejected_response_id", sa.String),
        sa.Column("signals", sa.ARRAY(sa.String), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("disagreement", sa.Float, nullable=False),
        sa.Column("event_ids", sa.ARRAY(sa.String), nullable=False),
    )
    op.create_table(
        "reviews",
        sa.Column("review_id", sa.String, primary_key=True),
        sa.Column("queue_id", sa.String, nullable=False),
        sa.Column("item_id", sa.String, nullable=False),
        sa.Column("reviewer_pseudonym", sa.String, nullable=False),
        sa.Column("reviewer_key_version", sa.Integer, nullable=False),
        sa.Column("left_side", sa.String, nullable=False),
        sa.Column("verdict", sa.String, nullable=False),
        sa.Column("chosen_scores", sa.String, nullable=False),
        sa.Column("rejected_scores", sa.String, nullable=False),
        sa.Column("rubric_sha256", sa.String, nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("conversation_id", sa.String, nullable=False),
        sa.Column("chosen_event_id", sa.String, nullable=False),
        sa.Column("rejected_event_id", sa.String, nullable=False),
        sa.Column("chosen_response_id", sa.String),
        sa.Column("rejected_response_id", sa.String),
    )


def downgrade() -> None:
    op.drop_table("reviews")
    op.drop_table("review_items")
    op.drop_table("review_queues")
