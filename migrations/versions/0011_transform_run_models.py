"""What each transform run did to each model.

``transform_run_models``: one row per model a run built: how (``full``, ``incremental`` or
``unchanged``), its rows afterwards, the rows the build added and removed (as multisets: a row
rebuilt identical is neither, a changed row one of each; transforms/changes.py) and its time.
Written in the run's models transaction, so a failed run has none. Runs recorded before this
revision have no rows here: nobody counted their changes. Downgrading drops the table.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transform_run_models",
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("mode", sa.String, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("added", sa.BigInteger),
        sa.Column("removed", sa.BigInteger),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "model"),
    )


def downgrade() -> None:
    op.drop_table("transform_run_models")
