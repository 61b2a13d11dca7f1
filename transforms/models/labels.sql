-- depends_on: responses
-- refresh_by: response_id
-- Unpaired labels (for KTO): each response with evidence is desirable or undesirable.
-- Evidence for: copied, rated up, won an A/B choice, continued from. Evidence against: rated
-- down, regenerated away without being kept, lost an A/B choice, both answers judged bad, edited
-- (what the user wanted was the edited text). Each counts once, with its policy weight; the net
-- decides the label, and responses whose evidence cancels out get none.
WITH evidence AS (
    SELECT
        *,
        (CASE WHEN copies > 0 THEN getvariable('weights_copy') ELSE 0 END
         + CASE WHEN ratings_up > 0 THEN getvariable('weights_rating') ELSE 0 END
         + CASE WHEN ab_wins > 0 THEN getvariable('weights_ab_choice') ELSE 0 END
         + CASE WHEN continued THEN getvariable('weights_continued') ELSE 0 END) AS for_it,
        (CASE WHEN ratings_down > 0 THEN getvariable('weights_rating') ELSE 0 END
         + CASE WHEN regenerations > 0 AND copies = 0 AND ratings_up = 0 AND NOT continued
                THEN getvariable('weights_regenerate') ELSE 0 END
         + CASE WHEN ab_losses > 0 OR ab_both_bad > 0 THEN getvariable('weights_ab_choice')
                ELSE 0 END
         + CASE WHEN edits > 0 THEN getvariable('weights_edit') ELSE 0 END) AS against_it
    FROM responses
)
SELECT
    -- Keyed by response: its conversation, user, consent, model and the generation its prompt
    -- and text are read from are in responses (written once, not again here).
    response_id,
    for_it > against_it AS label,
    round(least(1.0, greatest(for_it, against_it)) * abs(for_it - against_it)
          / (for_it + against_it), 6) AS confidence
FROM evidence
WHERE for_it <> against_it
