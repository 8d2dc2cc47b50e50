-- Apply the plan rows of action 'delete' with seq in ($1, $2] (rollback_plan.sql), in the
-- rollback's transaction: the rows the run inserted go. Returns the plan rows in the range
-- and the rows deleted.
WITH chunk AS (
    SELECT asset_id
    FROM pg_temp.loader_rollback_plan
    WHERE seq > $1 AND seq <= $2 AND action = 'delete'
),
deleted AS (
    DELETE FROM image_assets AS ia
    USING chunk AS p
    WHERE ia.id = p.asset_id
    RETURNING ia.id
)
SELECT (SELECT count(*) FROM chunk) AS planned, (SELECT count(*) FROM deleted) AS applied;
