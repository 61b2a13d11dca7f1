"""Lineage the warehouse computes when it is read rather than storing it.

A label's lineage is not a column of ``labels``: stored as a list it cost a full transform run at
0.5M events 0.5 s (``labels`` 0.58 s against 0.09 s). The export publishes it, ``flywheel export
trace`` reports it, and erasure finds the labels whose lineage names an erased user's event, all
from this one query.
"""

LABEL_LINEAGE = """
-- A label's lineage: its generation and every event behind the evidence transforms/models/
-- labels.sql weighed: its copies, ratings and edits, the A/B choices naming it (a tie weighs
-- nothing), its regenerations when they counted against it (it was not kept: not copied, rated
-- up or continued from, as labels.sql has it), and the generations that continued from it.
SELECT l.response_id, list_sort(list_distinct(list(s.event_id))) AS event_ids
FROM labels AS l
JOIN responses AS r USING (response_id)
JOIN (
    SELECT response_id, 'generation' AS signal, event_id FROM responses
    UNION ALL
    SELECT response_id, type, event_id
    FROM events
    WHERE type IN ('copy', 'rating', 'edit', 'regenerate')
    UNION ALL
    SELECT unnest([response_a_id, response_b_id]), 'ab_choice', event_id
    FROM events
    WHERE type = 'ab_choice' AND choice <> 'tie'
    UNION ALL
    SELECT unnest(prompt_response_ids), 'continued', event_id
    FROM events
    WHERE type = 'generation'
) AS s ON s.response_id = l.response_id
WHERE s.signal <> 'regenerate'
    OR (r.copies = 0 AND r.ratings_up = 0 AND NOT r.continued)
GROUP BY l.response_id
"""
"""``(response_id, event_ids)`` of every label: what the export publishes, ``export trace``
reports, and erasure searches for the users' events."""

SIGNAL_CONDITIONS = {
    "ab_choice": "r.ab_wins + r.ab_losses + r.ab_both_bad > 0",
    "rating": "r.ratings_up + r.ratings_down > 0",
    "copy": "r.copies > 0",
    "edit": "r.edits > 0",
    "regenerate": "r.regenerations > 0",
    "continued": "r.continued",
}
"""Each signal a response can have received, as a condition on its ``responses`` row ``r``."""

RESPONSE_SIGNALS = (
    "list_filter(["
    + ", ".join(f"CASE WHEN {when} THEN '{name}' END" for name, when in SIGNAL_CONDITIONS.items())
    + "], lambda s: s IS NOT NULL)"
)
"""The signals a response received, as a list (``r`` is its ``responses`` row): those a label
saw, published as a KTO row's ``signals`` and counted per signal by the demo and the console."""
