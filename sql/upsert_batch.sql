-- One batch of Storage files into image_assets, with its journal, in one statement: the
-- set-based path for rows that exist, and the fallback for every row when the COPY fast path
-- cannot be used. The batch is in pg_temp.loader_stage (sink_stage.sql), file_paths unique.
--   $1 text   upload_source for new rows
--   $2 bool   true: rewrite cdn_url (--cdn-url overwrite); false: fill or refresh it
--             (loader.cdn_url_after: NULL or another object's URL)
--   $3 bigint run id (journal)
-- Existing rows: only ai_tags (merged in Postgres, see loader.merge_tags), cdn_url and
-- updated_at may change, and only when something really changes: rows that would not change
-- are left out before the INSERT (ON CONFLICT DO UPDATE would lock, and so write, each one
-- even when its WHERE guard is false), so a re-run writes nothing. Rows are inserted in file_path order, so two connections writing
-- overlapping batches lock rows in one order and cannot deadlock.
WITH input AS (
    SELECT file_path, folder, filename, format, mime_type, file_size,
           created_at::timestamptz AS created_at, tags, cdn_url
    FROM pg_temp.loader_stage
),
-- The rows as they were before this statement: every part of one WITH statement reads the
-- same snapshot, whatever order Postgres runs them in. (No FOR UPDATE here: run after the
-- upsert it would skip rows this very command changed.)
prev AS (
    SELECT ia.file_path, ia.ai_tags, ia.cdn_url, ia.updated_at, ia.xmin,
           ia.ai_tags IS DISTINCT FROM loader.merge_tags(ia.ai_tags, input.tags)
           OR ia.cdn_url IS DISTINCT FROM loader.cdn_url_after(
                                              ia.cdn_url, input.cdn_url, ia.file_path, $2)
               AS changes
    FROM image_assets AS ia
    JOIN input USING (file_path)
),
upsert AS (
    INSERT INTO image_assets AS ia (
        file_path, filename, original_filename, format, mime_type, file_size,
        ai_tags, cdn_url, upload_source, status, created_at, updated_at)
    SELECT file_path, filename, filename, format, mime_type, file_size,
           coalesce(tags, '{}'), cdn_url, $1, 'active', coalesce(created_at, now()), now()
    FROM input
    WHERE NOT EXISTS (SELECT 1 FROM prev WHERE prev.file_path = input.file_path
                                            AND NOT prev.changes)
    ORDER BY file_path
    ON CONFLICT (file_path) DO UPDATE SET
        ai_tags = loader.merge_tags(ia.ai_tags, excluded.ai_tags),
        cdn_url = loader.cdn_url_after(ia.cdn_url, excluded.cdn_url, ia.file_path, $2),
        updated_at = now()
    WHERE ia.ai_tags IS DISTINCT FROM loader.merge_tags(ia.ai_tags, excluded.ai_tags)
       OR ia.cdn_url IS DISTINCT FROM loader.cdn_url_after(
                                          ia.cdn_url, excluded.cdn_url, ia.file_path, $2)
    RETURNING ia.id, ia.file_path, ia.ai_tags, ia.cdn_url
),
-- Rows that did not exist: their paths only, one journal entry per folder.
journal_inserted AS (
    INSERT INTO loader.journal_inserts (run_id, xid, folder, base, names)
    SELECT $3, pg_current_xact_id()::xid, i.folder, '', array_agg(u.file_path)
    FROM upsert AS u
    JOIN input AS i USING (file_path)
    LEFT JOIN prev AS p USING (file_path)
    WHERE p.file_path IS NULL
    GROUP BY i.folder
),
-- Rows that existed: their before-image.
journal_updated AS (
    INSERT INTO loader.journal_updates (
        run_id, xid, asset_id, file_path, folder,
        prev_ai_tags, prev_cdn_url, prev_updated_at, prev_xmin, new_ai_tags, new_cdn_url)
    SELECT $3, pg_current_xact_id()::xid, u.id, u.file_path, i.folder,
           p.ai_tags, p.cdn_url, p.updated_at, p.xmin, u.ai_tags, u.cdn_url
    FROM upsert AS u
    JOIN input AS i USING (file_path)
    JOIN prev AS p USING (file_path)
)
SELECT i.folder,
       count(*) FILTER (WHERE u.file_path IS NOT NULL AND p.file_path IS NULL) AS inserted,
       count(*) FILTER (WHERE u.file_path IS NOT NULL AND p.file_path IS NOT NULL) AS updated,
       count(*) FILTER (WHERE u.file_path IS NULL) AS unchanged
FROM input AS i
LEFT JOIN upsert AS u USING (file_path)
LEFT JOIN prev AS p USING (file_path)
GROUP BY i.folder;
