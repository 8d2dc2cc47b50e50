-- Apply the plan rows of action 'restore' with seq in ($1, $2] (rollback_plan.sql), in the
-- rollback's transaction: each row gets its exact before-image back, plain values (NULL,
-- '{}' and '{NULL}' ai_tags alike). Returns the plan rows in the range and the rows restored.
WITH chunk AS (
    SELECT asset_id, prev_ai_tags, prev_cdn_url, prev_updated_at
    FROM pg_temp.loader_rollback_plan
    WHERE seq > $1 AND seq <= $2 AND action = 'restore'
),
restored AS (
    UPDATE image_assets AS ia
    SET ai_tags = p.prev_ai_tags,
        cdn_url = p.prev_cdn_url,
        updated_at = coalesce(p.prev_updated_at, now())
    FROM chunk AS p
    WHERE ia.id = p.asset_id
    RETURNING ia.id
)
SELECT (SELECT count(*) FROM chunk) AS planned, (SELECT count(*) FROM restored) AS applied;
