-- depends_on: responses, events, edit_changes
-- refresh_by: response_id, other_response_id
-- The comparisons signal_calibration counts, one row each: an implicit signal against an
-- explicit one on the same responses. Kept as rows, keyed by the responses they compare, so that
-- a run recomputes only those of the responses new events touch, and signal_calibration only sums
-- this table.
--   ab_choice  a decided A/B choice whose winner (response_id) and loser (other_response_id)
--              differed in the signal when the choice was made: does the signal favour the
--              winner? Only signals that occurred before the choice count (strictly earlier
--              occurred_at): what a user does with an answer after picking it is caused by
--              the pick (they copy, edit and continue from the answer they chose), so counting
--              it measured the interface's order of events, not the signal.
--   rating     a response rated more up than down or the reverse that has the signal: does the
--              signal point the way of the rating? (Signals at any time.)
-- Positive signals (copy, continued) should point at the A/B winner and at up-rated responses;
-- negative ones (regenerate, edit) at the A/B loser and at down-rated ones. An edit is the
-- signal only where it counts as evidence elsewhere (edit_changes): a real edit within the
-- policy's change thresholds, not one of whitespace or case, nor a total rewrite.
WITH counted_edits AS (
    SELECT response_id, min(occurred_at) AS first_edit_at
    FROM edit_changes
    WHERE real_edit AND change BETWEEN getvariable('edit_min_change')
                                   AND getvariable('edit_max_change')
    GROUP BY response_id
),
compared AS (
    -- Only responses with an explicit signal can be compared: a side of a decided A/B choice,
    -- or rated more up than down or the reverse.
    SELECT
        response_id,
        CASE WHEN ratings_up > ratings_down THEN 1 WHEN ratings_up < ratings_down THEN -1 END
            AS rating,
        first_copy_at,
        e.first_edit_at,
        first_regenerate_at,
        -- Kept: copied, rated up or continued from; a kept response was not regenerated away.
        least(first_copy_at, first_up_at, first_continued_at) AS kept_at,
        first_continued_at
    FROM responses
    LEFT JOIN counted_edits AS e USING (response_id)
    WHERE ab_wins > 0 OR ab_losses > 0 OR ratings_up <> ratings_down
),
spans AS (
    -- One row per response and signal: the signal is there from `since` (exclusive) and, for
    -- regenerate, until the response is kept (`until`); a NULL `since`: never.
    SELECT response_id, rating, signal, direction,
           CASE signal WHEN 'copy' THEN first_copy_at WHEN 'continued' THEN first_continued_at
                       WHEN 'regenerate' THEN first_regenerate_at ELSE first_edit_at END AS since,
           CASE signal WHEN 'regenerate' THEN kept_at END AS until
    FROM compared
    CROSS JOIN (VALUES ('copy', 1), ('continued', 1), ('regenerate', -1), ('edit', -1))
        AS t(signal, direction)
),
ab AS (
    SELECT
        CASE WHEN choice = 'a' THEN response_a_id ELSE response_b_id END AS winner,
        CASE WHEN choice = 'a' THEN response_b_id ELSE response_a_id END AS loser,
        occurred_at AS chosen_at
    FROM events
    WHERE type = 'ab_choice' AND choice IN ('a', 'b')
),
at_choice AS (
    -- Whether each side had the signal when the choice was made.
    SELECT w.response_id, l.response_id AS other_response_id, w.signal, w.direction,
           coalesce(w.since < ab.chosen_at AND NOT coalesce(w.until < ab.chosen_at, false),
                    false) AS winner_has,
           coalesce(l.since < ab.chosen_at AND NOT coalesce(l.until < ab.chosen_at, false),
                    false) AS loser_has
    FROM ab
    JOIN spans AS w ON w.response_id = ab.winner
    JOIN spans AS l ON l.response_id = ab.loser AND l.signal = w.signal
),
versus_ab AS (
    -- The signal on exactly one side says which side it favours.
    SELECT response_id, other_response_id, signal, 'ab_choice' AS explicit,
           winner_has = (direction = 1) AS agrees
    FROM at_choice
    WHERE winner_has <> loser_has
),
versus_rating AS (
    SELECT response_id, NULL::VARCHAR AS other_response_id, signal, 'rating' AS explicit,
           sign(rating) = direction AS agrees
    FROM spans
    WHERE since IS NOT NULL AND until IS NULL AND rating IS NOT NULL
)
SELECT * FROM versus_ab
UNION ALL
SELECT * FROM versus_rating
