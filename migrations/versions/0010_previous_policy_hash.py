"""Transform runs record the policy the previous run built with.

``transform_runs.previous_policy_hash``: the ``policy_hash`` of the last run that succeeded before
this one, so a run that changed the weights is found in the history without comparing rows.
Equal to ``policy_hash`` when the policy stayed; NULL for a warehouse's first run and for runs
recorded before this revision. Downgrading drops the column.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transform_runs", sa.Column("previous_policy_hash", sa.String))


def downgrade() -> None:
    op.drop_column("transform_runs", "previous_policy_hash")
