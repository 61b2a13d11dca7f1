"""Incremental models: a load order on lake files, prompt references on events, model state.

- ``lake_files.seq``: the order files were loaded in (from the ``lake_file_seq`` sequence, which
  never restarts, not even on a full refresh). A model remembers the highest ``seq`` it has seen,
  so the next run knows which events are new to it.
- ``events.prompt_response_ids``: the response ids a generation's prompt carries (the answers
  the conversation continued from), as a list, so models need not parse the prompt JSON.
- ``model_state``: per model, what it was built from (a fingerprint of its SQL, the policy and
  its upstream models) and up to which ``seq``.

Existing rows are backfilled: files in the order they were loaded, references from the stored
prompt JSON. A warehouse upgraded from 0002 has no model state, so its first run builds every
model in full.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("lake_files", sa.Column("seq", sa.BigInteger))
    op.execute(
        "UPDATE lake_files SET seq = numbered.seq FROM (SELECT path, "
        "row_number() OVER (ORDER BY loaded_at, path) AS seq FROM lake_files) AS numbered "
        "WHERE lake_files.path = numbered.path"
    )
    [(highest,)] = op.get_bind().execute(sa.text("SELECT coalesce(max(seq), 0) FROM lake_files"))
    op.execute(f"CREATE SEQUENCE lake_file_seq START WITH {int(highest) + 1}")

    op.execute("ALTER TABLE events ADD COLUMN prompt_response_ids VARCHAR[]")
    op.execute(
        "UPDATE events SET prompt_response_ids = list_filter("
        "json_extract_string(prompt, '$[*].response_id'), lambda r: r IS NOT NULL) "
        "WHERE prompt IS NOT NULL"
    )

    op.create_table(
        "model_state",
        sa.Column("model", sa.String, primary_key=True),
        sa.Column("fingerprint", sa.String, nullable=False),
        sa.Column("through_seq", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.String, nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("full_build", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_state")
    op.drop_column("events", "prompt_response_ids")
    op.execute("DROP SEQUENCE lake_file_seq")
    op.drop_column("lake_files", "seq")
