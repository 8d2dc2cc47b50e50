-- Undo run $1 exactly, from its journal. $2 force: also delete inserted rows changed since.
-- Inserted rows are deleted. Updated rows get back their cdn_url (when it is still the one the
-- run wrote) and lose exactly the tags the run added; tags added by anyone since stay.
WITH j AS (
    SELECT * FROM loader.journal WHERE run_id = $1
),
deleted AS (
    DELETE FROM image_assets AS ia
    USING j
    WHERE j.action = 'insert' AND ia.id = j.asset_id
      AND ($2 OR (ia.ai_tags IS NOT DISTINCT FROM j.new_ai_tags
                  AND ia.cdn_url IS NOT DISTINCT FROM j.new_cdn_url))
    RETURNING ia.id
),
restored AS (
    UPDATE image_assets AS ia
    SET ai_tags = ARRAY(
            SELECT t
            FROM unnest(ia.ai_tags) WITH ORDINALITY AS u(t, i)
            WHERE NOT (t = ANY (ARRAY(SELECT unnest(j.new_ai_tags)
                                      EXCEPT SELECT unnest(j.prev_ai_tags))) IS TRUE)
            ORDER BY i),
        cdn_url = CASE WHEN ia.cdn_url IS NOT DISTINCT FROM j.new_cdn_url
                       THEN j.prev_cdn_url ELSE ia.cdn_url END,
        updated_at = now()
    FROM j
    WHERE j.action = 'update' AND ia.id = j.asset_id
    RETURNING ia.id
),
closed AS (
    UPDATE loader.runs SET status = 'rolled_back', finished_at = now()
    WHERE run_id = $1
    RETURNING run_id
)
SELECT (SELECT count(*) FROM deleted) AS deleted,
       (SELECT count(*) FROM restored) AS restored,
       (SELECT count(*) FROM closed) AS closed;
