"""Review queues of single responses: the KTO labels, judged good or bad one answer at a time.

- ``review_items.label``: for an item of a ``label`` queue, the label the signals gave the
  response (true: desirable); null for a pair. Such an item names its response as the chosen
  side (``chosen_event_id``, ``chosen_response_id``; the prompt is read from the same
  generation) and has no rejected side, so ``rejected_event_id`` may now be null, in
  ``review_items`` and in ``reviews`` (which repeats the item's ids for erasure).
- A review of a label item stores the reviewer's ``good`` or ``bad`` as its verdict and the
  answer's rubric scores as ``chosen_scores`` (``rejected_scores`` is ``{}``).

Downgrading deletes the label queues, their items and their reviews (a pair's columns cannot
hold them), then restores the columns as they were.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE review_items ADD COLUMN label BOOLEAN")
    op.execute("ALTER TABLE review_items ALTER COLUMN rejected_event_id DROP NOT NULL")
    op.execute("ALTER TABLE reviews ALTER COLUMN rejected_event_id DROP NOT NULL")


def downgrade() -> None:
    op.execute(
        "DELETE FROM reviews WHERE item_id IN (SELECT item_id FROM review_items "
        "WHERE label IS NOT NULL)"
    )
    op.execute("DELETE FROM review_items WHERE label IS NOT NULL")
    op.execute("DELETE FROM review_queues WHERE kind = 'label'")
    op.execute("ALTER TABLE reviews ALTER COLUMN rejected_event_id SET NOT NULL")
    op.execute("ALTER TABLE review_items ALTER COLUMN rejected_event_id SET NOT NULL")
    op.execute("ALTER TABLE review_items DROP COLUMN label")
