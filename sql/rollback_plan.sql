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
--
-- Built in one pass of hash joins, in the order it is applied in (rollback_apply_*.sql, by
-- ranges of seq): by action, then by where the row lies in image_assets (ctid). Each action
-- is one range of seq, and applying it walks the table's pages in order, each page once. In
-- hash order, restoring 900,000 rows came back to every page again and again, writing it
-- out each time and to the WAL as a full page after each checkpoint: 41 s and 4.2 GB of
-- WAL, against 15 s and 1.0 GB in order. The same sort keeps each row's first journal
-- entry (DISTINCT ON): the entries of one row share its action and ctid; gone rows (no
-- ctid) differ by path or id.
-- A row's own journal entry names the transaction that wrote it (ia.xmin = its xid, the
-- common case); the run's other transactions (xids) and the rows a later rollback restored
-- are small sets, looked up by hash (DISTINCT keeps the estimate of xids small: estimated
-- at every journal row, it was scanned once per row).
INSERT INTO pg_temp.loader_rollback_plan
    (action, file_path, asset_id, prev_ai_tags, prev_cdn_url, prev_updated_at, new_ai_tags,
     new_cdn_url)
WITH xids AS (
    SELECT DISTINCT xid FROM loader.journal_inserts WHERE run_id = $1
    UNION
    SELECT DISTINCT xid FROM loader.journal_updates WHERE run_id = $1
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
    SELECT i.base || n.name AS file_path, i.xid
    FROM loader.journal_inserts AS i
    CROSS JOIN LATERAL unnest(i.names) AS n(name)
    WHERE i.run_id = $1
),
deletes AS (
    SELECT DISTINCT ON (action, row_ctid, file_path) action, file_path, asset_id
    FROM (
        SELECT CASE WHEN ia.id IS NULL THEN 'gone'
                    WHEN $2 OR ia.xmin = i.xid OR ia.xmin IN (SELECT xid FROM xids)
                         OR ia.id IN (SELECT asset_id FROM restored_by_later) THEN 'delete'
                    ELSE 'kept' END AS action,
               i.file_path, ia.id AS asset_id, ia.ctid AS row_ctid
        FROM inserted AS i
        LEFT JOIN image_assets AS ia USING (file_path)
    ) AS d
    ORDER BY action, row_ctid, file_path
),
restores AS (
    -- What the run wrote is read by undo_tags alone: left out elsewhere, the rows to sort
    -- and store are a third smaller.
    SELECT DISTINCT ON (action, row_ctid, asset_id)
           action, file_path, asset_id, prev_ai_tags, prev_cdn_url, prev_updated_at,
           CASE WHEN action = 'undo_tags' THEN new_ai_tags END,
           CASE WHEN action = 'undo_tags' THEN new_cdn_url END
    FROM (
        SELECT CASE WHEN ia.id IS NULL THEN 'gone'
                    WHEN $2 OR ia.xmin = u.xid OR ia.xmin IN (SELECT xid FROM xids)
                         OR ia.id IN (SELECT asset_id FROM restored_by_later) THEN 'restore'
                    ELSE 'undo_tags' END AS action,
               u.file_path, u.asset_id, u.prev_ai_tags, u.prev_cdn_url, u.prev_updated_at,
               u.new_ai_tags, u.new_cdn_url, u.at, ia.ctid AS row_ctid
        FROM loader.journal_updates AS u
        LEFT JOIN image_assets AS ia ON ia.id = u.asset_id
        WHERE u.run_id = $1
          AND NOT EXISTS (SELECT 1 FROM inserted WHERE inserted.file_path = u.file_path)
    ) AS r
    ORDER BY action, row_ctid, asset_id, at
)
SELECT action, file_path, asset_id, NULL, NULL, NULL, NULL, NULL FROM deletes
UNION ALL
SELECT * FROM restores;
