-- depends_on: responses, events
-- refresh_by: response_id
-- Unpaired labels (for KTO): each response with evidence is desirable or undesirable.
-- Evidence for: copied, rated up, won an A/B choice, continued from. Evidence against: rated
-- down, regenerated away without being kept, lost an A/B choice, both answers judged bad, edited
-- (what the user wanted was the edited text). Each counts once, with its policy weight; the net
-- decides the label, and responses whose evidence cancels out get none.
--
-- Lineage (event_ids): the response's generation and every event behind the evidence that was
-- weighed: its copies, ratings and edits, the A/B choices that named it (ties weigh nothing),
-- its regenerations when they counted against it, and the generations that continued from it.
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
),
labelled AS (
    SELECT
        response_id,
        event_id,
        for_it > against_it AS label,
        round(least(1.0, greatest(for_it, against_it)) * abs(for_it - against_it)
              / (for_it + against_it), 6) AS confidence,
        regenerations > 0 AND copies = 0 AND ratings_up = 0 AND NOT continued AS regenerated_away
    FROM evidence
    WHERE for_it <> against_it
),
signal_events AS (
    -- The events behind each kind of evidence, by the response they name.
    SELECT response_id, type AS signal, event_id
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
),
lineage AS (
    SELECT s.response_id, list(s.event_id) AS events
    FROM signal_events AS s
    JOIN labelled AS l ON l.response_id = s.response_id
    WHERE s.signal <> 'regenerate' OR l.regenerated_away
    GROUP BY s.response_id
)
SELECT
    -- Keyed by response: its conversation, user, consent, model and the generation its prompt
    -- and text are read from are in responses (written once, not again here).
    l.response_id,
    l.label,
    l.confidence,
    list_sort(list_distinct(list_concat([l.event_id], n.events))) AS event_ids
FROM labelled AS l
LEFT JOIN lineage AS n ON n.response_id = l.response_id
