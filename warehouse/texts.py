"""Prompts and texts, read from the lake file each event was loaded from.

The warehouse keeps no texts (migration 0004): ``events.lake_file`` names the file an event's
row was loaded from, and that file holds its prompt, response and edited text. ``fetch_texts``
reads them for a set of events into a temporary table of the connection, reading only the files
those events came from and only the text columns. An event whose file is gone (expired by lake
retention) gets no row.

Two copies of an event can sit in two files, or twice in one (a resend older than the workers'
dedupe window); the row is the one the warehouse loaded, matched on the event id, the file and
the offset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_FETCH = """
CREATE OR REPLACE TEMP TABLE lake_texts AS
SELECT
    landed.event_id,
    {prompt} AS prompt,
    {structure} AS structure,
    coalesce(landed.response, landed.edited_text) AS text
FROM read_parquet($files, filename = true{by_name}) AS landed
SEMI JOIN wanted_texts AS wanted
    ON wanted.event_id = landed.event_id
    AND wanted.lake_file = $names[list_position($files, landed.filename)]
    AND wanted.source_offset = landed.source_offset
WHERE {keep}
"""


def fetch_texts(
    db: Any, lake_root: Path, events: str, *, prompts: bool = True, keep: str = "true"
) -> None:
    """Read the texts of ``events`` (a ``SELECT`` of ``event_id, lake_file, source_offset`` rows
    of ``events``) into the temporary table ``lake_texts`` (``event_id``, ``prompt`` as JSON,
    ``structure``: the prompt's ``prompt_structure`` as JSON, NULL for most, ``text``: the
    response of a generation, the edited text of an edit). ``prompts=False`` leaves ``prompt``
    and ``structure`` NULL (and unread); ``keep`` is a condition on the lake row (``landed``) a
    text must meet."""
    db.execute(f"CREATE OR REPLACE TEMP TABLE wanted_texts AS {events}")
    names = [name for (name,) in db.execute(
        "SELECT DISTINCT lake_file FROM wanted_texts ORDER BY lake_file").fetchall()]  # fmt: skip
    present = [name for name in names if (lake_root / name).is_file()]
    if not present:
        db.execute(
            "CREATE OR REPLACE TEMP TABLE lake_texts "
            "(event_id VARCHAR, prompt JSON, structure JSON, text VARCHAR)"
        )
        return
    prompt = "to_json(landed.prompt)" if prompts else "NULL::JSON"
    # Files landed before prompt_structure existed lack the column: read by name, they give
    # NULL. Only the prompts need it, so the transforms' reads stay as they were.
    structure = "to_json(landed.prompt_structure)" if prompts else "NULL::JSON"
    db.execute(
        _FETCH.format(
            prompt=prompt,
            structure=structure,
            keep=keep,
            by_name=", union_by_name = true" if prompts else "",
        ),
        {"files": [str(lake_root / name) for name in present], "names": present},
    )
