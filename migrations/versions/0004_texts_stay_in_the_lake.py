"""Texts stay in the lake: ``events`` keeps ids, types, times and signals, without a primary key.

The warehouse used to copy every event whole, prompts (the conversation so far, as JSON) and
texts included, and copy them again into the model tables: 16 times the lake's bytes, and most of
a transform run's time. From this revision ``events`` holds what the models, the incremental
scope, erasure and export select on; the texts (``prompt``, ``response``, ``edited_text``,
``copy_text``, ``rating_reason``) and the fields nothing reads (``app_name``, ``app_version``,
``consent_policy_version``, ``schema_version``, ``pseudonym_key_version``, ``copy_span_start``,
``copy_span_end``, ``new_response_id``, ``scrubbed``, ``source_topic``, ``source_partition``,
``landed_at``) stay in the lake file named in ``lake_file``, which ``warehouse.texts`` reads when
needed.

The primary key on ``event_id`` goes too: DuckDB rewrote its index whole at every checkpoint,
whatever the run changed. The loader keeps each event once by itself (an anti join against what
is loaded, then the first landing within the new files).

DuckDB cannot drop a primary key in place, so the table is rebuilt. Model tables are dropped and
their state cleared: their columns change, and the next run builds them in full. Events whose
lake file was deleted by lake retention before this revision (0003 kept them, texts included)
lose their texts here: exports leave them out, and the next retention pass removes them.

Downgrading restores 0003's ``events`` empty and forgets which lake files were loaded, so the
next run of that version loads the whole lake again (texts included).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MODEL_TABLES = (
    "responses",
    "code_checks",
    "labels",
    "preference_pairs",
    "signal_calibration",
    "rewards",
)


def _narrow_columns() -> list[sa.Column[object]]:
    """The columns ``events`` keeps (a new list each call: a column belongs to one table)."""
    return [
        sa.Column("event_id", sa.String, nullable=False),
        sa.Column("type", sa.String, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_pseudonym", sa.String),
        sa.Column("conversation_id", sa.String, nullable=False),
        sa.Column("consent_training", sa.Boolean),
        sa.Column("response_id", sa.String),
        sa.Column("parent_id", sa.String),
        sa.Column("model_id", sa.String),
        sa.Column("model_version", sa.String),
        sa.Column("code_block", sa.Boolean),
        sa.Column("response_a_id", sa.String),
        sa.Column("response_b_id", sa.String),
        sa.Column("choice", sa.String),
        sa.Column("rating_value", sa.String),
        sa.Column("source_offset", sa.BigInteger, nullable=False),
        sa.Column("lake_file", sa.String, nullable=False),
        sa.Column("prompt_response_ids", sa.ARRAY(sa.String)),
    ]


KEPT = ", ".join(column.name for column in _narrow_columns())


def _narrow_events(name: str) -> None:
    op.create_table(name, *_narrow_columns())


def _whole_events(name: str) -> None:
    """``events`` as revision 0003 had it: every lake column, in the lake's order."""
    op.create_table(
        name,
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
        sa.Column("prompt_response_ids", sa.ARRAY(sa.String)),
    )


def _drop_models() -> None:
    for table in MODEL_TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DELETE FROM model_state")


def upgrade() -> None:
    _drop_models()
    _narrow_events("events_rebuilt")
    op.execute(f"INSERT INTO events_rebuilt ({KEPT}) SELECT {KEPT} FROM events")
    op.drop_table("events")
    op.rename_table("events_rebuilt", "events")


def downgrade() -> None:
    # The texts are not in the warehouse to copy back: 0003's table comes back empty and no lake
    # file is recorded as loaded, so the next run of that version loads the lake again.
    _drop_models()
    op.drop_table("events")
    _whole_events("events")
    op.execute("DELETE FROM lake_files")
