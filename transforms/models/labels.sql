-- depends_on: responses, edit_changes
-- refresh_by: response_id
-- Unpaired labels (for KTO): each response with evidence is desirable or undesirable.
-- Evidence for: copied, rated up, won an A/B choice, continued from. Evidence against: rated
-- down, regenerated away without being kept, lost an A/B choice, both answers judged bad, edited
-- (what the user wanted was the edited text). Each counts once, with its policy weight, but an
-- edit with the weight edit_changes gives it: only a real edit within the policy's thresholds
-- counts, more the more it changed (the rule preference_pairs applies to edit pairs). The net
-- decides the label, and responses whose evidence cancels out get none.
WITH edited AS (
    SELECT response_id, sum(weight) AS weight  -- one edit per response weighs
    FROM edit_changes
    WHERE weight > 0
    GROUP BY response_id
),
evidence AS (
    SELECT
        r.*,
        (CASE WHEN copies > 0 THEN getvariable('weights_copy') ELSE 0 END
         + CASE WHEN ratings_up > 0 THEN getvariable('weights_rating') ELSE 0 END
         + CASE WHEN ab_wins > 0 THEN getvariable('weights_ab_choice') ELSE 0 END
         + CASE WHEN continued THEN getvariable('weights_continued') ELSE 0 END) AS for_it,
        (CASE WHEN ratings_down > 0 THEN getvariable('weights_rating') ELSE 0 END
         + CASE WHEN regenerations > 0 AND copies = 0 AND ratings_up = 0 AND NOT continued
                THEN getvariable('weights_regenerate') ELSE 0 END
         + CASE WHEN ab_losses > 0 OR ab_both_bad > 0 THEN getvariable('weights_ab_choice')
                ELSE 0 END
         + coalesce(d.weight, 0)) AS against_it
    FROM responses AS r
    LEFT JOIN edited AS d USING (response_id)
)
SELECT
    -- Keyed by response: its conversation, user, consent, model and the generation its prompt
    -- and text are read from are in responses (written once, not again here).
    response_id,
    for_it > against_it AS label,
    round_half_up(least(1.0, greatest(for_it, against_it)) * abs(for_it - against_it)
          / (for_it + against_it), 6) AS confidence
FROM evidence
-- Rounded: an edit's weight is rounded, and an even split must read as one.
WHERE round_half_up(for_it, 9) <> round_half_up(against_it, 9)
