-- depends_on: responses
-- refresh_by: response_id
-- A signal of our own: responses the user copied within a minute of seeing them (found what
-- they needed at a glance), and how many seconds that took.
SELECT
    response_id,
    coalesce(first_copy_at <= occurred_at + INTERVAL 1 MINUTE, false) AS quick_copy,
    date_diff('second', occurred_at, first_copy_at) AS seconds_to_copy
FROM responses
