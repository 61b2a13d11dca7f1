"""The warehouse schema as SQLAlchemy Core metadata; alembic migrations (migrations/) create it.

Tables written by the loader (``warehouse.load``):

- ``lake_files``: every lake file loaded, with its offsets and the run that loaded it; written in
  the same transaction as the file's events, so a file is loaded entirely or not at all.
- ``events``: every landed event once (the loader's dedupe on ``event_id`` is the final guard
  after the workers' window), without its texts: ids, type, times, user, consent, the signal's
  fields, the event's metadata (added in 0006) and the lake file it came from. Prompts and
  texts stay in the lake and are read from there when needed (``warehouse.texts``; migration
  0004 says why).
- ``withheld_events``: the ids of landed events without training consent (kept in the lake with
  ``FLYWHEEL_PRIVACY__WITHOUT_CONSENT=keep``), which ``events`` never holds: no model counts
  them, and their first landing still wins over a later copy (added in 0005).
- ``transform_runs``: one row per ``flywheel transform run``: when, what it loaded, the policy
  and principles hashes, the outcome.
- ``transform_run_models``: per run and model built, how (full, incremental, unchanged), its rows
  afterwards and the rows the build added and removed (added in 0011).
- ``model_state``: per model, the fingerprint it was built with and the highest ``lake_files.seq``
  it has seen (written by transforms/, read to decide what the next run rebuilds).

Tables written by the human review (``review``, added in 0007): ``review_queues`` (a sample and
its parameters), ``review_items`` (the pairs it drew) and ``reviews`` (each reviewer's verdict
and rubric scores, under the reviewer's pseudonym).

Derived tables (responses, preference pairs, labels, rewards, calibration) are built by the SQL
models in transforms/ and are not part of this metadata: a model whose SQL or policy changed is
rebuilt, not migrated.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
)

metadata = MetaData()

lake_files = Table(
    "lake_files",
    metadata,
    Column("path", String, primary_key=True, comment="Relative to the lake root."),
    Column("topic", String, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("first_offset", BigInteger, nullable=False),
    Column("last_offset", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column(
        "new_events", BigInteger, comment="Events of the file not loaded before (added in 0002)."
    ),
    Column("run_id", String, nullable=False),
    Column("loaded_at", DateTime(timezone=True), nullable=False),
    Column(
        "seq",
        BigInteger,
        comment="Load order, from the lake_file_seq sequence, never reused (added in 0003).",
    ),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String, nullable=False, comment="Unique: the loader keeps each once."),
    Column("type", String, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("user_pseudonym", String),
    Column("conversation_id", String, nullable=False),
    Column("consent_training", Boolean),
    Column("response_id", String),
    Column("parent_id", String),
    Column("model_id", String),
    Column("model_version", String),
    Column("code_block", Boolean),
    Column("response_a_id", String),
    Column("response_b_id", String),
    Column("choice", String),
    Column("rating_value", String),
    Column("source_offset", BigInteger, nullable=False),
    Column("lake_file", String, nullable=False, comment="Where the event's texts are read."),
    Column(
        "prompt_response_ids",
        ARRAY(String),
        comment="Response ids named by a generation's prompt (added in 0003).",
    ),
    Column(
        "metadata",
        String,
        comment="The event's metadata as the lake holds it: canonical JSON, scrubbed (0006).",
    ),
)

withheld_events = Table(
    "withheld_events",
    metadata,
    Column("event_id", String, nullable=False),
    Column("lake_file", String, nullable=False),
)

transform_runs = Table(
    "transform_runs",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("full_refresh", Boolean, nullable=False),
    Column("files_loaded", Integer, nullable=False, server_default="0"),
    Column("events_loaded", BigInteger, nullable=False, server_default="0"),
    Column("policy_hash", String),
    Column("status", String, nullable=False),
    # Added in 0009: the principles file's hash (transforms/principles.py).
    Column("principles_hash", String),
    # Added in 0010: the policy hash of the last run that succeeded before this one.
    Column("previous_policy_hash", String),
)

transform_run_models = Table(
    "transform_run_models",
    metadata,
    Column("run_id", String, primary_key=True),
    Column("model", String, primary_key=True),
    Column("mode", String, nullable=False, comment="full, incremental or unchanged."),
    Column("rows", BigInteger, nullable=False, comment="The table's rows after the build."),
    Column("added", BigInteger, comment="Rows the build added, as a multiset."),
    Column("removed", BigInteger, comment="Rows the build removed, as a multiset."),
    Column("seconds", Float, nullable=False),
)

model_state = Table(
    "model_state",
    metadata,
    Column("model", String, primary_key=True),
    Column("fingerprint", String, nullable=False, comment="SQL, policy and upstream models."),
    Column("through_seq", BigInteger, nullable=False, comment="Highest lake_files.seq seen."),
    Column("run_id", String, nullable=False),
    Column("built_at", DateTime(timezone=True), nullable=False),
    Column("full_build", Boolean, nullable=False, comment="Rebuilt in full, not incrementally."),
)

review_queues = Table(
    "review_queues",
    metadata,
    Column("queue_id", String, primary_key=True, comment="The queue's name."),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("kind", String, nullable=False, comment="What it samples: 'pair'."),
    Column("seed", BigInteger, nullable=False),
    Column("params", String, nullable=False, comment="The sampling, as JSON (docs/review.md)."),
    Column("rubric_sha256", String, nullable=False),
)

review_items = Table(
    "review_items",
    metadata,
    Column("item_id", String, primary_key=True),
    Column("queue_id", String, nullable=False),
    Column("position", Integer, nullable=False, comment="Order in which reviewers get it."),
    Column("stratum", String, nullable=False),
    Column("wanted_reviews", Integer, nullable=False),
    Column("pair_id", String, nullable=False),
    Column("conversation_id", String, nullable=False),
    Column("prompt_event_id", String, nullable=False),
    Column("chosen_event_id", String, nullable=False),
    Column("rejected_event_id", String, nullable=False),
    Column("chosen_response_id", String),
    Column("rejected_response_id", String),
    Column("signals", ARRAY(String), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("disagreement", Float, nullable=False),
    Column("event_ids", ARRAY(String), nullable=False, comment="The pair's lineage."),
)

reviews = Table(
    "reviews",
    metadata,
    Column("review_id", String, primary_key=True),
    Column("queue_id", String, nullable=False),
    Column("item_id", String, nullable=False),
    Column("reviewer_pseudonym", String, nullable=False, comment="HMAC of the reviewer's id."),
    Column("reviewer_key_version", Integer, nullable=False),
    Column("left_side", String, nullable=False, comment="'chosen' or 'rejected'."),
    Column("verdict", String, nullable=False, comment="chosen, rejected, tie or both_bad."),
    Column("chosen_scores", String, nullable=False, comment="Rubric scores, JSON."),
    Column("rejected_scores", String, nullable=False, comment="Rubric scores, JSON."),
    Column("rubric_sha256", String, nullable=False),
    Column("reviewed_at", DateTime(timezone=True), nullable=False),
    Column("conversation_id", String, nullable=False),
    Column("chosen_event_id", String, nullable=False),
    Column("rejected_event_id", String, nullable=False),
    Column("chosen_response_id", String),
    Column("rejected_response_id", String),
)
