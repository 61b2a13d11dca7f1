"""Transform runs, and how many new events each lake file brought.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transform_runs",
        sa.Column("run_id", sa.String, primary_key=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("full_refresh", sa.Boolean, nullable=False),
        sa.Column("files_loaded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("events_loaded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("policy_hash", sa.String),
        sa.Column("status", sa.String, nullable=False),
    )
    # Files loaded before this revision keep NULL: nobody counted their new events then.
    op.add_column("lake_files", sa.Column("new_events", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("lake_files", "new_events")
    op.drop_table("transform_runs")
