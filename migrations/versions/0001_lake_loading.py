"""Lake loading: the events table and the record of loaded lake files.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lake_files",
        sa.Column("path", sa.String, primary_key=True),
        sa.Column("topic", sa.String, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("first_offset", sa.BigInteger, nullable=False),
        sa.Column("last_offset", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String, primary_key=True),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_pseudonym", sa.String),
        sa.Column("pseudonym_key_version", sa.Integer),
        sa.Column("conversation_id", sa.String, nullable=False),
        sa.Column("app_name", sa.String),
        sa.Column("app_version", sa.String),
        sa.Column("consent_training", sa.Boolean),
        sa.Column("consent_policy_version", sa.String),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("response_id", sa.String),
        sa.Column("parent_id", sa.String),
        sa.Column("prompt", sa.JSON),
        sa.Column("response", sa.String),
        sa.Column("model_id", sa.String),
        sa.Column("model_version", sa.String),
        sa.Column("copy_text", sa.String),
        sa.Column("copy_span_start", sa.BigInteger),
        sa.Column("copy_span_end", sa.BigInteger),
        sa.Column("code_block", sa.Boolean),
        sa.Column("edited_text", sa.String),
        sa.Column("new_response_id", sa.String),
        sa.Column("response_a_id", sa.String),
        sa.Column("response_b_id", sa.String),
        sa.Column("choice", sa.String),
        sa.Column("rating_value", sa.String),
        sa.Column("rating_reason", sa.String),
        sa.Column("scrubbed", sa.JSON),
        sa.Column("source_topic", sa.String, nullable=False),
        sa.Column("source_partition", sa.Integer, nullable=False),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        sa.Column("landed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lake_file", sa.String, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("lake_files")
