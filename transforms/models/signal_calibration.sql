-- depends_on: calibration_votes
-- (no refresh_by: an aggregate over every comparison, rebuilt in full on each run)
-- How often each implicit signal agrees with the explicit ones on the same responses, with a
-- 95% Wilson interval, from the comparisons in calibration_votes. Positive signals (copy,
-- continued) should point at the A/B winner and at up-rated responses; negative ones
-- (regenerate, edit) at the A/B loser and at down-rated ones. Use it to check and set the
-- policy's weights.
-- The run adds rows against `review` (reviewers' verdicts) from the warehouse's reviews, which
-- are not in the lake (warehouse/reviews.py).
WITH counts AS (
    SELECT signal, explicit, count(*) FILTER (WHERE agrees) AS agree, count(*) AS n
    FROM calibration_votes
    GROUP BY ALL
)
SELECT
    signal,
    explicit,
    agree,
    n - agree AS disagree,
    n,
    round_half_up(agree / n, 6) AS agreement,
    -- Wilson score interval, z = 1.96
    round_half_up((agree / n + 1.9208 / n
           - 1.96 * sqrt(agree / n * (1 - agree / n) / n + 0.9604 / (n * n)))
          / (1 + 3.8416 / n), 6) AS wilson_low,
    round_half_up((agree / n + 1.9208 / n
           + 1.96 * sqrt(agree / n * (1 - agree / n) / n + 0.9604 / (n * n)))
          / (1 + 3.8416 / n), 6) AS wilson_high
FROM counts
ORDER BY signal, explicit
