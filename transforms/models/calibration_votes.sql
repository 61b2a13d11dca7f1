-- depends_on: responses, events
-- refresh_by: response_id, other_response_id
-- The comparisons signal_calibration counts, one row each: an implicit signal against an
-- explicit one on the same responses. Kept as rows, keyed by the responses they compare, so that
-- a run recomputes only those of the responses new events touch, and signal_calibration only sums
-- this table.
--   ab_choice  a decided A/B choice whose winner (response_id) and loser (other_response_id)
--              differ in the signal: does the signal favour the winner?
--   rating     a response rated more up than down or the reverse that has the signal: does the
--              signal point the way of the rating?
-- Positive signals (copy, continued) should point at the A/B winner and at up-rated responses;
-- negative ones (regenerate, edit) at the A/B loser and at down-rated ones.
WITH flags AS (
    SELECT
        response_id,
        copies > 0 AS copy,
        continued,
        regenerations > 0 AND copies = 0 AND ratings_up = 0 AND NOT continued AS regenerate,
        edits > 0 AS edit,
        CASE WHEN ratings_up > ratings_down THEN 1 WHEN ratings_up < ratings_down THEN -1 END
            AS rating
    FROM responses
    -- Only responses with an explicit signal can be compared: a side of a decided A/B choice,
    -- or rated more up than down or the reverse.
    WHERE ab_wins > 0 OR ab_losses > 0 OR ratings_up <> ratings_down
),
signals AS (
    SELECT * FROM (VALUES ('copy', 1), ('continued', 1), ('regenerate', -1), ('edit', -1))
        AS t(signal, direction)
),
ab AS (
    SELECT
        CASE WHEN choice = 'a' THEN response_a_id ELSE response_b_id END AS winner,
        CASE WHEN choice = 'a' THEN response_b_id ELSE response_a_id END AS loser
    FROM events
    WHERE type = 'ab_choice' AND choice IN ('a', 'b')
),
flag_values AS (
    -- One row per response and signal: is the signal there?
    SELECT f.response_id, s.signal, s.direction,
           CASE s.signal WHEN 'copy' THEN f.copy WHEN 'continued' THEN f.continued
                         WHEN 'regenerate' THEN f.regenerate ELSE f.edit END AS present,
           f.rating
    FROM flags AS f
    CROSS JOIN signals AS s
),
versus_ab AS (
    -- The signal on exactly one side says which side it favours.
    SELECT w.response_id, l.response_id AS other_response_id, w.signal, 'ab_choice' AS explicit,
           (w.present AND NOT l.present) = (w.direction = 1) AS agrees
    FROM ab
    JOIN flag_values AS w ON w.response_id = ab.winner
    JOIN flag_values AS l ON l.response_id = ab.loser AND l.signal = w.signal
    WHERE w.present <> l.present
),
versus_rating AS (
    SELECT response_id, NULL::VARCHAR AS other_response_id, signal, 'rating' AS explicit,
           sign(rating) = direction AS agrees
    FROM flag_values
    WHERE present AND rating IS NOT NULL
)
SELECT * FROM versus_ab
UNION ALL
SELECT * FROM versus_rating
