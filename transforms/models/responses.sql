-- depends_on: events
-- refresh_by: conversation_id
-- Every response shown (a generation event), with its siblings and every signal it received.
-- Its prompt and text stay in the lake: event_id is the generation they are read from.
-- Signals that arrived before their generation join as soon as the generation lands: a run
-- recomputes every conversation a new event touches (transforms/incremental.py).
WITH generations AS (
    -- A client that reported the same response twice under two event ids: keep the first
    -- (earliest, then lowest event id), whole, in one aggregation.
    SELECT unnest(arg_min(
        struct_pack(event_id, response_id, conversation_id, parent_id, prompt_response_ids,
                    user_pseudonym, occurred_at, model_id, model_version, consent_training),
        (occurred_at, event_id)))
    FROM events
    WHERE type = 'generation'
    GROUP BY response_id
),
sibling_counts AS (
    SELECT conversation_id, parent_id, count(*) AS siblings
    FROM generations
    GROUP BY ALL
),
signals AS (
    SELECT
        response_id,
        count(*) FILTER (WHERE type = 'copy') AS copies,
        count(*) FILTER (WHERE type = 'copy' AND code_block) AS code_copies,
        count(*) FILTER (WHERE type = 'edit') AS edits,
        count(*) FILTER (WHERE type = 'regenerate') AS regenerations,
        count(*) FILTER (WHERE type = 'rating' AND rating_value = 'up') AS ratings_up,
        count(*) FILTER (WHERE type = 'rating' AND rating_value = 'down') AS ratings_down,
        -- When each signal first arrived: calibration_votes compares an A/B choice only with
        -- the signals given before it.
        min(occurred_at) FILTER (WHERE type = 'copy') AS first_copy_at,
        min(occurred_at) FILTER (WHERE type = 'edit') AS first_edit_at,
        min(occurred_at) FILTER (WHERE type = 'regenerate') AS first_regenerate_at,
        min(occurred_at) FILTER (WHERE type = 'rating' AND rating_value = 'up') AS first_up_at
    FROM events
    WHERE type IN ('copy', 'edit', 'regenerate', 'rating')
    GROUP BY response_id
),
ab_sides AS (
    SELECT response_a_id AS response_id, choice = 'a' AS won, choice = 'b' AS lost, choice
    FROM events
    WHERE type = 'ab_choice'
    UNION ALL
    SELECT response_b_id, choice = 'b', choice = 'a', choice
    FROM events
    WHERE type = 'ab_choice'
),
ab AS (
    SELECT
        response_id,
        count(*) FILTER (WHERE won) AS ab_wins,
        count(*) FILTER (WHERE lost) AS ab_losses,
        count(*) FILTER (WHERE choice = 'tie') AS ab_ties,
        count(*) FILTER (WHERE choice = 'both_bad') AS ab_both_bad
    FROM ab_sides
    GROUP BY response_id
),
continued AS (
    -- A later prompt that carries the response as an assistant message continued from it.
    SELECT response_id, min(occurred_at) AS first_continued_at
    FROM (SELECT unnest(prompt_response_ids) AS response_id, occurred_at FROM generations)
    GROUP BY response_id
)
SELECT
    g.response_id,
    g.event_id,
    g.conversation_id,
    g.parent_id,
    g.user_pseudonym,
    g.occurred_at,
    g.model_id,
    g.model_version,
    g.consent_training,
    n.siblings,
    coalesce(s.copies, 0) AS copies,
    coalesce(s.code_copies, 0) AS code_copies,
    coalesce(s.edits, 0) AS edits,
    coalesce(s.regenerations, 0) AS regenerations,
    coalesce(s.ratings_up, 0) AS ratings_up,
    coalesce(s.ratings_down, 0) AS ratings_down,
    coalesce(ab.ab_wins, 0) AS ab_wins,
    coalesce(ab.ab_losses, 0) AS ab_losses,
    coalesce(ab.ab_ties, 0) AS ab_ties,
    coalesce(ab.ab_both_bad, 0) AS ab_both_bad,
    c.response_id IS NOT NULL AS continued,
    s.first_copy_at,
    s.first_edit_at,
    s.first_regenerate_at,
    s.first_up_at,
    c.first_continued_at
FROM generations AS g
JOIN sibling_counts AS n
    ON n.conversation_id = g.conversation_id AND n.parent_id IS NOT DISTINCT FROM g.parent_id
LEFT JOIN signals AS s ON s.response_id = g.response_id
LEFT JOIN ab ON ab.response_id = g.response_id
LEFT JOIN continued AS c ON c.response_id = g.response_id
