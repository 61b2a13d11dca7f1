-- depends_on: events, responses, edit_changes
-- refresh_by: chosen_response_id, rejected_response_id
-- Preference pairs (chosen over rejected for the same prompt) with a confidence, the signals
-- behind each pair, how much the evidence disagreed, and lineage.
--
-- Between two sibling responses (same conversation and parent message), every signal casts a
-- vote for one side with its policy weight:
--   ab_choice   the chosen side of an A/B comparison of two siblings (tie and both_bad cast none;
--               a choice between answers to different messages has no prompt to pair them
--               under, and unpaired_ab_choices lists it instead);
--   regenerate  the sibling the user finally kept (copied, rated up or continued from) over each
--               sibling they regenerated away, whatever the length of the chain;
--   copy        a copied sibling over an un-copied one;
--   rating      a sibling rated more up than down over one that is not (un-rated, rated down,
--               or as much down as up).
-- Every rule reads both sides alike, so swapping two siblings' ids swaps their pair: nothing is
-- decided by id order. The side with more weight wins; equal weight gives no pair. Edits make
-- pairs of their own: the edited text over the original, for the edit that carries a weight in
-- edit_changes (the latest real edit, within the policy's thresholds), as confident as that
-- weight.
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
        sign(ratings_up - ratings_down) AS rating,
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
    -- Only between siblings: the pair's prompt is the one both answer.
    SELECT
        p.a,
        p.b,
        CASE WHEN e.choice = 'a' THEN e.response_a_id ELSE e.response_b_id END AS winner,
        'ab_choice' AS signal,
        getvariable('weights_ab_choice') AS weight,
        [e.event_id] AS events
    FROM events AS e
    JOIN sibling_pairs AS p
        ON p.a = least(e.response_a_id, e.response_b_id)
        AND p.b = greatest(e.response_a_id, e.response_b_id)
    WHERE e.type = 'ab_choice' AND e.choice IN ('a', 'b')
),
sibling_sides AS (
    -- Each pair of siblings with what happened to both sides.
    SELECT
        p.a, p.b,
        sa.kept AS a_kept, sa.regenerated AS a_regenerated, sa.copied AS a_copied,
        sa.rating AS a_rating,
        sb.kept AS b_kept, sb.regenerated AS b_regenerated, sb.copied AS b_copied,
        sb.rating AS b_rating
    FROM sibling_pairs AS p
    JOIN sides AS sa ON sa.response_id = p.a
    JOIN sides AS sb ON sb.response_id = p.b
),
state_votes AS (
    -- Votes that follow from what happened to each sibling (copies, ratings, regenerations).
    -- One SELECT per signal: Spark cannot read a pair's columns in a lateral VALUES list.
    SELECT a, b, winner, signal, weight
    FROM (
        SELECT a, b,
               CASE WHEN a_kept AND b_regenerated AND NOT b_kept THEN a
                    WHEN b_kept AND a_regenerated AND NOT a_kept THEN b END AS winner,
               'regenerate' AS signal, getvariable('weights_regenerate') AS weight
        FROM sibling_sides
        UNION ALL
        SELECT a, b,
               CASE WHEN a_copied AND NOT b_copied THEN a
                    WHEN b_copied AND NOT a_copied THEN b END,
               'copy', getvariable('weights_copy')
        FROM sibling_sides
        UNION ALL
        SELECT a, b,
               CASE WHEN a_rating > 0 AND b_rating < a_rating THEN a
                    WHEN b_rating > 0 AND a_rating < b_rating THEN b END,
               'rating', getvariable('weights_rating')
        FROM sibling_sides
    )
    WHERE winner IS NOT NULL
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
        list_sort(list(DISTINCT signal)) AS signals,
        flatten(list(events)) AS votes_from  -- sorted and deduplicated with the pair's own
    FROM votes
    GROUP BY a, b
),
weighed AS (
    -- Rounded: the same weights summed in another order can differ in the last bits, and an
    -- even split must read as one.
    SELECT
        a, b,
        round_half_up(coalesce(for_a, 0), 9) AS for_a,
        round_half_up(coalesce(for_b, 0), 9) AS for_b,
        signals,
        votes_from
    FROM tallies
),
response_pairs AS (
    SELECT
        CASE WHEN for_a > for_b THEN a ELSE b END AS chosen_id,
        CASE WHEN for_a > for_b THEN b ELSE a END AS rejected_id,
        greatest(for_a, for_b) AS winning,
        least(for_a, for_b) AS losing,
        signals,
        votes_from
    FROM weighed
    WHERE for_a <> for_b
),
edits AS (
    -- The edit of each response that counts, with its weight (edit_changes).
    SELECT edit_event_id, response_id, weight
    FROM edit_changes
    WHERE weight > 0
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
    round_half_up(least(1.0, p.winning) * (p.winning - p.losing) / (p.winning + p.losing), 6)
        AS confidence,
    round_half_up(p.losing / (p.winning + p.losing), 6) AS disagreement,
    p.signals,
    list_sort(list_distinct(list_concat([c.event_id, r.event_id], p.votes_from))) AS event_ids,
    -- Sorted: list_distinct keeps no order on DuckDB, and keeps it on Spark.
    list_sort(list_distinct([c.model_id || coalesce('@' || c.model_version, ''),
                             r.model_id || coalesce('@' || r.model_version, '')])) AS models
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
    d.weight AS confidence,
    0.0 AS disagreement,
    ['edit'] AS signals,
    list_sort([s.event_id, d.edit_event_id]) AS event_ids,
    [s.model_id || coalesce('@' || s.model_version, '')] AS models
FROM edits AS d
JOIN responses AS s ON s.response_id = d.response_id
