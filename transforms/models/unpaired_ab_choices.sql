-- depends_on: events, responses
-- (no refresh_by: rebuilt in full on each run; a choice whose sides never landed names no
-- response an incremental run can find it by, and A/B choices are few)
-- A/B choices that cannot make a preference pair, one row each, with the reason. A pair is one
-- prompt with two answers to it, so an A/B choice pairs only siblings (the same conversation and
-- parent message). The others come from a client that named the wrong responses, or from one
-- whose generations have not landed yet:
--   not_siblings   both responses are known but answer different messages;
--   side_unknown   a side's generation is not in the warehouse (yet: a late generation that
--                  makes them siblings takes the row away on the run that loads it).
-- Ties and both_bad choices make no pair anyway and are listed alike, with their choice, so the
-- table counts every malformed A/B event. Labels still count each side's outcome: the user did
-- judge the two texts shown side by side; only a pair needs them to share a prompt.
SELECT
    e.event_id,
    e.response_a_id,
    e.response_b_id,
    e.choice,
    e.conversation_id,
    e.occurred_at,
    CASE
        WHEN a.response_id IS NULL OR b.response_id IS NULL THEN 'side_unknown'
        ELSE 'not_siblings'
    END AS reason
FROM events AS e
LEFT JOIN responses AS a ON a.response_id = e.response_a_id
LEFT JOIN responses AS b ON b.response_id = e.response_b_id
WHERE e.type = 'ab_choice'
    AND (a.response_id IS NULL
         OR b.response_id IS NULL
         -- preference_pairs' sibling test, exactly
         OR NOT coalesce(a.conversation_id = b.conversation_id AND a.parent_id = b.parent_id,
                         false))
