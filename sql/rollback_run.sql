-- Apply the rollback plan of run $1 (rollback_plan.sql), mark the run rolled back and record
-- the rollback. $2 force, $3 jsonb counts per action, $4 jsonb examples per action.
WITH plan AS (
    SELECT * FROM pg_temp.loader_rollback_plan
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
),
closed AS (
    UPDATE loader.runs SET status = 'rolled_back', finished_at = now()
    WHERE run_id = $1
    RETURNING run_id
),
recorded AS (
    INSERT INTO loader.rollbacks (run_id, forced, xid, counts, examples)
    VALUES ($1, $2, pg_current_xact_id()::xid, $3, $4)
)
SELECT (SELECT count(*) FROM deleted) AS deleted,
       (SELECT count(*) FROM restored) AS restored,
       (SELECT count(*) FROM closed) AS closed;
