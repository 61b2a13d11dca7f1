-- depends_on: events, responses, edit_changes
-- refresh_by: chosen_response_id, rejected_response_id
-- Preference pairs (chosen over rejected for the same prompt) with a confidence, the signals
-- behind each pair, how much the evidence disagreed, and lineage.
--
-- Between two sibling responses (same conversation and parent message), every signal casts a
-- vote for one side with its policy weight:
--   ab_choice   the chosen side of an A/B comparison (tie and both_bad cast none);
--   regenerate  the sibling the user finally kept (copied, rated up or continued from) over each
--               sibling they regenerated away, whatever the length of the chain;
--   copy        a copied sibling over an un-copied one;
--   rating      an up-rated sibling over an un-rated or down-rated one.
-- The side with more weight wins; equal weight gives no pair. Edits make pairs of their own:
-- the edited text over the original, when the edit is real (policy thresholds).
--
-- Lineage (event_ids): the two generations and every event behind a vote, whichever side it
-- favoured: A/B choices; for a copy vote the copies; for a rating vote both sides' ratings; for a
-- regenerate vote the regenerations and what kept the winner (its copies, its ups, the
-- generations that continued from it). An edit pair: the generation and the edit.
--
-- Texts stay in the lake: a pair names the events its prompt, chosen and rejected texts are read
-- from (a generation's prompt and response, an edit's edited text). The edit rule's comparison
-- of the texts is the edit_changes model (transforms/edits.py).
WITH sides AS (
    -- What happened to each response, without its texts (they join at the end).
    SELECT
        response_id, conversation_id, parent_id,
        copies > 0 AS copied,
        ratings_up > 0 AS rated_up,
        ratings_down > 0 AS rated_down,
        regenerations > 0 AS regenerated,
        copies > 0 OR ratings_up > 0 OR continued AS kept
    FROM responses
),
sibling_pairs AS (
    -- Every unordered pair of siblings, once (a < b).
    SELECT a.response_id AS a, b.response_id AS b, a.conversation_id, a.parent_id
    FROM sides AS a
    JOIN sides AS b
        ON a.conversation_id = b.conversation_id
        AND a.parent_id = b.parent_id
        AND a.response_id < b.response_id
),
ab_votes AS (
    SELECT
        least(response_a_id, response_b_id) AS a,
        greatest(response_a_id, response_b_id) AS b,
        CASE WHEN choice = 'a' THEN response_a_id ELSE response_b_id END AS winner,
        'ab_choice' AS signal,
        getvariable('weights_ab_choice') AS weight,
        [event_id] AS events
    FROM events
    WHERE type = 'ab_choice' AND choice IN ('a', 'b')
),
state_votes AS (
    -- Votes that follow from what happened to each sibling (copies, ratings, regenerations).
    SELECT p.a, p.b, v.winner, v.signal, v.weight
    FROM sibling_pairs AS p
    JOIN sides AS sa ON sa.response_id = p.a
    JOIN sides AS sb ON sb.response_id = p.b
    CROSS JOIN LATERAL (
        SELECT * FROM (VALUES
            (CASE WHEN sa.kept AND sb.regenerated AND NOT sb.kept THEN p.a
                  WHEN sb.kept AND sa.regenerated AND NOT sa.kept THEN p.b END,
             'regenerate', getvariable('weights_regenerate')),
            (CASE WHEN sa.copied AND NOT sb.copied THEN p.a
                  WHEN sb.copied AND NOT sa.copied THEN p.b END,
             'copy', getvariable('weights_copy')),
            (CASE WHEN sa.rated_up AND (sb.rated_down OR NOT sb.rated_up) THEN p.a
                  WHEN sb.rated_up AND (sa.rated_down OR NOT sa.rated_up) THEN p.b END,
             'rating', getvariable('weights_rating'))
        ) AS t(winner, signal, weight)
    ) AS v
    WHERE v.winner IS NOT NULL
),
voted AS (
    SELECT a AS response_id FROM state_votes
    UNION
    SELECT b FROM state_votes
),
evidence AS (
    -- The events behind the state of each response that cast a state vote: its copies, its
    -- ratings (and the ups among them), its regenerations, and the generations that continued
    -- from it.
    SELECT
        response_id,
        coalesce(list(event_id) FILTER (WHERE type = 'copy'), []) AS copies,
        coalesce(list(event_id) FILTER (WHERE type = 'rating'), []) AS ratings,
        coalesce(list(event_id) FILTER (WHERE type = 'rating' AND rating_value = 'up'), [])
            AS ups,
        coalesce(list(event_id) FILTER (WHERE type = 'regenerate'), []) AS regenerations,
        coalesce(list(event_id) FILTER (WHERE type = 'generation'), []) AS continuations
    FROM (
        SELECT response_id, type, rating_value, event_id
        FROM events
        WHERE type IN ('copy', 'rating', 'regenerate')
        UNION ALL
        SELECT unnest(prompt_response_ids), type, NULL, event_id
        FROM events
        WHERE type = 'generation'
    )
    WHERE response_id IN (SELECT response_id FROM voted)
    GROUP BY response_id
),
state_evidence AS (
    -- Each state vote with the events behind it: a copy vote, the winner's copies; a rating
    -- vote, both sides' ratings; a regenerate vote, the loser's regenerations and what kept the
    -- winner (its copies, its ups, the generations that continued from it).
    SELECT
        v.a, v.b, v.winner, v.signal, v.weight,
        CASE v.signal
            WHEN 'copy' THEN CASE WHEN v.winner = v.a THEN ea.copies ELSE eb.copies END
            WHEN 'rating' THEN list_concat(ea.ratings, eb.ratings)
            ELSE CASE
                WHEN v.winner = v.a
                    THEN list_concat(eb.regenerations, ea.copies, ea.ups, ea.continuations)
                ELSE list_concat(ea.regenerations, eb.copies, eb.ups, eb.continuations)
            END
        END AS events
    FROM state_votes AS v
    LEFT JOIN evidence AS ea ON ea.response_id = v.a
    LEFT JOIN evidence AS eb ON eb.response_id = v.b
),
votes AS (
    SELECT * FROM ab_votes
    UNION ALL
    SELECT * FROM state_evidence
),
tallies AS (
    SELECT
        a, b,
        sum(weight) FILTER (WHERE winner = a) AS for_a,
        sum(weight) FILTER (WHERE winner = b) AS for_b,
        list(DISTINCT signal ORDER BY signal) AS signals,
        flatten(list(events)) AS votes_from  -- sorted and deduplicated with the pair's own
    FROM votes
    GROUP BY a, b
),
response_pairs AS (
    SELECT
        CASE WHEN coalesce(for_a, 0) > coalesce(for_b, 0) THEN a ELSE b END AS chosen_id,
        CASE WHEN coalesce(for_a, 0) > coalesce(for_b, 0) THEN b ELSE a END AS rejected_id,
        greatest(coalesce(for_a, 0), coalesce(for_b, 0)) AS winning,
        least(coalesce(for_a, 0), coalesce(for_b, 0)) AS losing,
        signals,
        votes_from
    FROM tallies
    WHERE coalesce(for_a, 0) <> coalesce(for_b, 0)
),
edits AS (
    -- The latest real edit of each response, and how much it changed (edit_changes).
    SELECT edit_event_id, response_id, change
    FROM edit_changes
    WHERE real_edit
    QUALIFY row_number() OVER (PARTITION BY response_id ORDER BY occurred_at DESC,
                               edit_event_id) = 1
)
SELECT
    md5(concat_ws('|', 'pair', p.chosen_id, p.rejected_id)) AS pair_id,
    c.conversation_id,
    c.parent_id,
    c.user_pseudonym,
    c.consent_training AND r.consent_training AS consent_training,
    c.event_id AS prompt_event_id,
    c.event_id AS chosen_event_id,
    r.event_id AS rejected_event_id,
    p.chosen_id AS chosen_response_id,
    p.rejected_id AS rejected_response_id,
    round(least(1.0, p.winning) * (p.winning - p.losing) / (p.winning + p.losing), 6)
        AS confidence,
    round(p.losing / (p.winning + p.losing), 6) AS disagreement,
    p.signals,
    list_sort(list_distinct(list_concat([c.event_id, r.event_id], p.votes_from))) AS event_ids,
    list_distinct([c.model_id || coalesce('@' || c.model_version, ''),
                   r.model_id || coalesce('@' || r.model_version, '')]) AS models
FROM response_pairs AS p
JOIN responses AS c ON c.response_id = p.chosen_id
JOIN responses AS r ON r.response_id = p.rejected_id
UNION ALL
SELECT
    md5(concat_ws('|', 'edit', d.edit_event_id)) AS pair_id,
    s.conversation_id,
    s.parent_id,
    s.user_pseudonym,
    s.consent_training,
    s.event_id AS prompt_event_id,
    d.edit_event_id AS chosen_event_id,
    s.event_id AS rejected_event_id,
    NULL AS chosen_response_id,
    s.response_id AS rejected_response_id,
    round(getvariable('weights_edit')
          * least(1.0, 0.5 + 0.5 * d.change / getvariable('edit_max_change')), 6) AS confidence,
    0.0 AS disagreement,
    ['edit'] AS signals,
    list_sort([s.event_id, d.edit_event_id]) AS event_ids,
    [s.model_id || coalesce('@' || s.model_version, '')] AS models
FROM edits AS d
JOIN responses AS s ON s.response_id = d.response_id
WHERE d.change >= getvariable('edit_min_change') AND d.change <= getvariable('edit_max_change')
