-- depends_on: responses, code_checks, edit_changes
-- refresh_by: response_id
-- A multi-level reward per response. Each level is a score in [-1, 1] kept as its own column,
-- and the total weighs them with the policy's [rewards] section:
--   explicit  A/B outcome and ratings, each weighted, averaged over the evidence present;
--   implicit  copied or continued from (+), regenerated away or edited (-), likewise, an edit
--             with the weight edit_changes gives it (a real edit within the policy's
--             thresholds, more the more it changed; any other edit is no evidence);
--   process   share of the checks its code blocks pass, mapped to [-1, 1] (0 without
--             checkable code): a Python block has three (parses, compiles, lint-clean: no
--             syntax error, invalid statement or undefined name for ruff), a JSON, YAML or SQL
--             block one (parses); each block counts the same;
--   constitutional  the principles its Python code keeps (transforms/principles.toml, checked
--             by ruff; code_checks scores it, 0 without Python that compiles);
--   penalty   -1 if the response still holds a scrubbed secret (it leaked one), else 0.
WITH levels AS (
    SELECT
        r.response_id,
        -- explicit
        CASE WHEN r.ab_wins > r.ab_losses + r.ab_both_bad THEN 1
             WHEN r.ab_wins < r.ab_losses + r.ab_both_bad THEN -1 END AS ab,
        CASE WHEN r.ratings_up > r.ratings_down THEN 1
             WHEN r.ratings_up < r.ratings_down THEN -1 END AS rated,
        -- implicit
        CASE WHEN r.copies > 0 THEN 1 END AS copied,
        CASE WHEN r.continued THEN 1 END AS continued,
        CASE WHEN r.regenerations > 0 AND r.copies = 0 AND r.ratings_up = 0 AND NOT r.continued
             THEN -1 END AS regenerated,
        CASE WHEN d.weight > 0 THEN -1 END AS edited,
        d.weight AS edit_weight,
        coalesce(c.python_blocks + c.json_blocks + c.yaml_blocks + c.sql_blocks, 0)
            AS checkable,
        -- In thirds of a block: a Python block's three checks, another block's one.
        coalesce(c.python_parsed + c.python_compiled + c.python_clean
                 + 3 * (c.json_parsed + c.yaml_parsed + c.sql_parsed), 0) AS passed_thirds,
        coalesce(c.constitutional_score, 0) AS constitutional_score,
        coalesce(c.leaked_secret, false) AS leaked_secret
    FROM responses AS r
    LEFT JOIN code_checks AS c USING (response_id)
    LEFT JOIN (
        SELECT response_id, sum(weight) AS weight  -- one edit per response weighs
        FROM edit_changes
        WHERE weight > 0
        GROUP BY response_id
    ) AS d USING (response_id)
),
scored AS (
    SELECT
        *,
        coalesce(
            (coalesce(ab * getvariable('weights_ab_choice'), 0)
             + coalesce(rated * getvariable('weights_rating'), 0))
            / nullif(CASE WHEN ab IS NULL THEN 0 ELSE getvariable('weights_ab_choice') END
                     + CASE WHEN rated IS NULL THEN 0 ELSE getvariable('weights_rating') END, 0),
            0) AS explicit_score,
        coalesce(
            (coalesce(copied * getvariable('weights_copy'), 0)
             + coalesce(continued * getvariable('weights_continued'), 0)
             + coalesce(regenerated * getvariable('weights_regenerate'), 0)
             + coalesce(edited * edit_weight, 0))
            / nullif(CASE WHEN copied IS NULL THEN 0 ELSE getvariable('weights_copy') END
                     + CASE WHEN continued IS NULL THEN 0 ELSE getvariable('weights_continued') END
                     + CASE WHEN regenerated IS NULL THEN 0
                            ELSE getvariable('weights_regenerate') END
                     + coalesce(edit_weight, 0), 0),
            0) AS implicit_score,
        CASE WHEN checkable > 0 THEN 2.0 * passed_thirds / (3 * checkable) - 1 ELSE 0 END
            AS process_score,
        CASE WHEN leaked_secret THEN -1 ELSE 0 END AS penalty
    FROM levels
)
SELECT
    -- Keyed by response (its conversation, user, consent and model are in responses).
    response_id,
    round_half_up(explicit_score, 6) AS explicit_score,
    round_half_up(implicit_score, 6) AS implicit_score,
    round_half_up(process_score, 6) AS process_score,
    round_half_up(constitutional_score, 6) AS constitutional_score,
    penalty,
    checkable AS code_blocks_checked,
    leaked_secret,
    round_half_up(getvariable('rewards_explicit') * explicit_score
          + getvariable('rewards_implicit') * implicit_score
          + getvariable('rewards_process') * process_score
          + getvariable('rewards_constitutional') * constitutional_score
          + getvariable('rewards_leaked_secret') * penalty, 6) AS reward
FROM scored
