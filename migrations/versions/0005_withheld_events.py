"""Events without training consent stay out of ``events``.

With ``FLYWHEEL_PRIVACY__WITHOUT_CONSENT=keep`` such events land in the lake, flagged by
``consent_training``. The export left out rows of unconsented responses, but an unconsented
copy, rating, A/B choice, edit or continuation of a consented response still counted as
evidence: it made preference pairs, labels and rewards, and its event id appeared in their
lineage. From this revision the loader keeps only events with ``consent_training`` true in
``events``; the others are listed by id in ``withheld_events`` (no user, no content), so that
the loader's first-landing-wins rule still holds for them.

Upgrading moves the unconsented events already loaded, and clears ``model_state``: the next run
builds every model in full from what is left. Downgrading puts nothing back (the lake still has
them: a full refresh of the older version loads them again).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "withheld_events",
        sa.Column("event_id", sa.String, nullable=False),
        sa.Column("lake_file", sa.String, nullable=False),
    )
    op.execute(
        "INSERT INTO withheld_events SELECT event_id, lake_file FROM events "
        "WHERE consent_training IS NOT TRUE"
    )
    op.execute("DELETE FROM events WHERE consent_training IS NOT TRUE")
    op.execute("DELETE FROM model_state")


def downgrade() -> None:
    op.drop_table("withheld_events")
