"""Transform runs record the principles' hash.

``transform_runs.principles_hash``: the sha256 of the principles file (transforms/principles.toml,
the constitution the code in responses is scored against) a run built its models with, beside
``policy_hash``. Runs recorded before this revision keep NULL: they scored no principles.
Downgrading drops the column.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transform_runs", sa.Column("principles_hash", sa.String))


def downgrade() -> None:
    op.drop_column("transform_runs", "principles_hash")
