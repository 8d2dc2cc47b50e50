-- Apply the next chunk of the rollback plan (rollback_plan.sql): the (at most) $2 plan rows
-- after seq $1, in the rollback's transaction. Returns the last seq applied (NULL: the plan
-- is done), the plan rows applied, and the rows deleted and restored.
WITH plan AS (
    SELECT * FROM pg_temp.loader_rollback_plan
    WHERE seq > $1
    ORDER BY seq
    LIMIT $2
),
deleted AS (
    DELETE FROM image_assets AS ia
    USING plan AS p
    WHERE p.action = 'delete' AND ia.id = p.asset_id
    RETURNING ia.id
),
restored AS (
    UPDATE image_assets AS ia
    SET ai_tags = CASE
            WHEN p.action = 'restore' THEN p.prev_ai_tags
            ELSE ARRAY(
                SELECT t
                FROM unnest(ia.ai_tags) WITH ORDINALITY AS u(t, i)
                WHERE NOT (t = ANY (ARRAY(SELECT unnest(p.new_ai_tags)
                                          EXCEPT SELECT unnest(p.prev_ai_tags))) IS TRUE)
                ORDER BY i)
        END,
        cdn_url = CASE WHEN p.action = 'restore' OR ia.cdn_url IS NOT DISTINCT FROM p.new_cdn_url
                       THEN p.prev_cdn_url ELSE ia.cdn_url END,
        updated_at = CASE WHEN p.action = 'restore' THEN coalesce(p.prev_updated_at, now())
                          ELSE now() END
    FROM plan AS p
    WHERE p.action IN ('restore', 'undo_tags') AND ia.id = p.asset_id
    RETURNING ia.id
)
SELECT (SELECT max(seq) FROM plan) AS last,
       (SELECT count(*) FROM plan) AS planned,
       (SELECT count(*) FROM deleted) AS deleted,
       (SELECT count(*) FROM restored) AS restored;
