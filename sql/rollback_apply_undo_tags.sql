-- Apply the plan rows of action 'undo_tags' with seq in ($1, $2] (rollback_plan.sql), in the
-- rollback's transaction: rows written by someone since the run lose only the run's own
-- change (the tags it added, in their order otherwise; cdn_url if still the run's). Returns
-- the plan rows in the range and the rows changed.
WITH chunk AS (
    SELECT asset_id, prev_ai_tags, prev_cdn_url, new_ai_tags, new_cdn_url
    FROM pg_temp.loader_rollback_plan
    WHERE seq > $1 AND seq <= $2 AND action = 'undo_tags'
),
undone AS (
    UPDATE image_assets AS ia
    SET ai_tags = ARRAY(
            SELECT t
            FROM unnest(ia.ai_tags) WITH ORDINALITY AS u(t, i)
            WHERE NOT (t = ANY (ARRAY(SELECT unnest(p.new_ai_tags)
                                      EXCEPT SELECT unnest(p.prev_ai_tags))) IS TRUE)
            ORDER BY i),
        cdn_url = CASE WHEN ia.cdn_url IS NOT DISTINCT FROM p.new_cdn_url
                       THEN p.prev_cdn_url ELSE ia.cdn_url END,
        updated_at = now()
    FROM chunk AS p
    WHERE ia.id = p.asset_id
    RETURNING ia.id
)
SELECT (SELECT count(*) FROM chunk) AS planned, (SELECT count(*) FROM undone) AS applied;
