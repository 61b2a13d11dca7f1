-- depends_on: preference_pairs, labels, responses
-- (no refresh_by: a summary of every pair and label, rebuilt in full on each run)
-- Pairs and labels per day and signal: what the console's signals page draws and sums, a row
-- per day and signal instead of joining every pair and label to its response on each read.
--   pairs        pairs naming the signal, by the UTC day their rejected response was generated
--                (an edit pair's rejected side is the edited response);
--   desirable,   labels whose response received the signal, by the UTC day it was generated;
--   undesirable  a label counts under every signal its response received (the conditions are
--                warehouse.lineage.SIGNAL_CONDITIONS, the signals a KTO row publishes).
-- A day and signal with none of the three has no row.
WITH pair_signals AS (
    SELECT CAST(r.occurred_at AT TIME ZONE 'UTC' AS DATE) AS day, unnest(p.signals) AS signal
    FROM preference_pairs AS p
    JOIN responses AS r ON r.response_id = p.rejected_response_id
),
pairs AS (
    SELECT day, signal, count(*) AS pairs
    FROM pair_signals
    GROUP BY ALL
),
label_signals AS (
    SELECT CAST(r.occurred_at AT TIME ZONE 'UTC' AS DATE) AS day, l.label, t.signal
    FROM labels AS l
    JOIN responses AS r USING (response_id)
    CROSS JOIN (VALUES ('ab_choice'), ('rating'), ('copy'), ('edit'), ('regenerate'),
                       ('continued')) AS t(signal)
    WHERE CASE t.signal
        WHEN 'ab_choice' THEN r.ab_wins + r.ab_losses + r.ab_both_bad > 0
        WHEN 'rating' THEN r.ratings_up + r.ratings_down > 0
        WHEN 'copy' THEN r.copies > 0
        WHEN 'edit' THEN r.edits > 0
        WHEN 'regenerate' THEN r.regenerations > 0
        WHEN 'continued' THEN r.continued
    END
),
labelled AS (
    SELECT day, signal, count(*) FILTER (WHERE label) AS desirable,
           count(*) FILTER (WHERE NOT label) AS undesirable
    FROM label_signals
    GROUP BY ALL
)
SELECT
    coalesce(p.day, l.day) AS day,
    coalesce(p.signal, l.signal) AS signal,
    coalesce(p.pairs, 0) AS pairs,
    coalesce(l.desirable, 0) AS desirable,
    coalesce(l.undesirable, 0) AS undesirable
FROM pairs AS p
FULL JOIN labelled AS l ON l.day = p.day AND l.signal = p.signal
ORDER BY day, signal
