-- Decide, for every row run $1 inserted or changed, what undoing it means. $2 force.
-- "Untouched since the run": the row's xmin is one of the run's journaled transactions (its
-- own writes), so nobody wrote the row after it; or a later run changed it and was rolled
-- back, and that rollback put back exactly the state this run had left (the later run's
-- before-image was written by this run, and the row still holds that before-image, with the
-- rollback's transaction as xmin). Actions:
--   delete      inserted by the run, untouched since (or --force)
--   kept        inserted by the run, changed since by someone else: reported, kept
--   restore     existed before the run, untouched since (or --force): the exact before-image
--               (ai_tags NULL, '{}' and '{NULL}' each come back as they were; updated_at too)
--   undo_tags   existed, changed since: only the run's own change is undone (the tags it
--               added removed, cdn_url restored if still the run's); what others wrote stays
--   gone        the row no longer exists: nothing to do
-- A row the run inserted and then changed again is undone as an insert (its first entry).
INSERT INTO pg_temp.loader_rollback_plan
WITH xids AS (
    SELECT xid FROM loader.journal_inserts WHERE run_id = $1
    UNION
    SELECT xid FROM loader.journal_updates WHERE run_id = $1
),
restored_by_later AS (
    SELECT u.asset_id
    FROM loader.journal_updates AS u
    JOIN loader.rollbacks AS rb ON rb.run_id = u.run_id
    JOIN image_assets AS ia ON ia.id = u.asset_id AND ia.xmin = rb.xid
    WHERE u.run_id > $1
      AND u.prev_xmin IN (SELECT xid FROM xids)
      AND ia.updated_at IS NOT DISTINCT FROM u.prev_updated_at
      AND ia.ai_tags IS NOT DISTINCT FROM u.prev_ai_tags
      AND ia.cdn_url IS NOT DISTINCT FROM u.prev_cdn_url
),
inserted AS (
    SELECT DISTINCT i.base || n.name AS file_path
    FROM loader.journal_inserts AS i
    CROSS JOIN LATERAL unnest(i.names) AS n(name)
    WHERE i.run_id = $1
),
updated AS (
    SELECT DISTINCT ON (u.asset_id) u.*
    FROM loader.journal_updates AS u
    WHERE u.run_id = $1
      AND NOT EXISTS (SELECT 1 FROM inserted WHERE inserted.file_path = u.file_path)
    ORDER BY u.asset_id, u.at
)
SELECT CASE WHEN ia.id IS NULL THEN 'gone'
            WHEN $2 OR ia.xmin IN (SELECT xid FROM xids)
                 OR ia.id IN (SELECT asset_id FROM restored_by_later) THEN 'delete'
            ELSE 'kept' END,
       i.file_path, ia.id, NULL, NULL, NULL, NULL, NULL
FROM inserted AS i
LEFT JOIN image_assets AS ia USING (file_path)
UNION ALL
SELECT CASE WHEN ia.id IS NULL THEN 'gone'
            WHEN $2 OR ia.xmin IN (SELECT xid FROM xids)
                 OR ia.id IN (SELECT asset_id FROM restored_by_later) THEN 'restore'
            ELSE 'undo_tags' END,
       u.file_path, u.asset_id, u.prev_ai_tags, u.prev_cdn_url, u.prev_updated_at,
       u.new_ai_tags, u.new_cdn_url
FROM updated AS u
LEFT JOIN image_assets AS ia ON ia.id = u.asset_id;
