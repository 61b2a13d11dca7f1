"""Events keep their metadata.

``events.metadata``: the event's metadata (contract v1's optional flat object of the client's
own labels, e.g. ``{"experiment": "exp-7"}``) as the lake stores it, canonical JSON text with
its string values scrubbed; NULL for an event without. A dataset selects its rows by the
metadata of their responses' generations (``metadata_filter`` in the datasets file).

Events loaded before this revision keep NULL: no lake file landed before the contract took
metadata holds any, so nothing needs reading back. Downgrading drops the column (the lake keeps
the metadata).

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("metadata", sa.String))


def downgrade() -> None:
    op.drop_column("events", "metadata")
