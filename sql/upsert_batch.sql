-- One batch of Storage files into image_assets, with its journal, in one statement.
--   $1 json   array of {file_path, folder, filename, original_filename, format, mime_type,
--             file_size, created_at, tags, cdn_url}; file_paths unique within the batch
--   $2 text   upload_source for new rows
--   $3 bool   true: rewrite cdn_url (--cdn-url overwrite); false: fill it only when NULL
--   $4 bigint run id (journal)
-- Existing rows: only ai_tags (merged in Postgres, see loader.merge_tags), cdn_url and
-- updated_at may change, and only when something really changes (the WHERE guard), so a
-- re-run writes nothing. Rows are inserted in file_path order, so two connections writing
-- overlapping batches lock rows in one order and cannot deadlock.
WITH input AS (
    SELECT *
    FROM json_to_recordset($1::json) AS r(
        file_path text, folder text, filename text, original_filename text, format text,
        mime_type text, file_size bigint, created_at timestamptz, tags text[], cdn_url text)
),
-- The rows as they were before this statement: every part of one WITH statement reads the
-- same snapshot, whatever order Postgres runs them in. (No FOR UPDATE here: run after the
-- upsert it would skip rows this very command changed.)
prev AS (
    SELECT ia.file_path, ia.ai_tags, ia.cdn_url
    FROM image_assets AS ia
    JOIN input USING (file_path)
),
upsert AS (
    INSERT INTO image_assets AS ia (
        file_path, filename, original_filename, format, mime_type, file_size,
        ai_tags, cdn_url, upload_source, status, created_at, updated_at)
    SELECT file_path, filename, original_filename, format, mime_type, file_size,
           coalesce(tags, '{}'), cdn_url, $2, 'active', coalesce(created_at, now()), now()
    FROM input
    ORDER BY file_path
    ON CONFLICT (file_path) DO UPDATE SET
        ai_tags = loader.merge_tags(ia.ai_tags, excluded.ai_tags),
        cdn_url = CASE WHEN $3 THEN excluded.cdn_url
                       ELSE coalesce(ia.cdn_url, excluded.cdn_url) END,
        updated_at = now()
    WHERE ia.ai_tags IS DISTINCT FROM loader.merge_tags(ia.ai_tags, excluded.ai_tags)
       OR ia.cdn_url IS DISTINCT FROM (CASE WHEN $3 THEN excluded.cdn_url
                                            ELSE coalesce(ia.cdn_url, excluded.cdn_url) END)
    RETURNING ia.id, ia.file_path, ia.ai_tags, ia.cdn_url
),
journal AS (
    INSERT INTO loader.journal (
        run_id, file_path, folder, action, asset_id,
        prev_ai_tags, prev_cdn_url, new_ai_tags, new_cdn_url)
    SELECT $4, u.file_path, i.folder,
           CASE WHEN p.file_path IS NULL THEN 'insert' ELSE 'update' END, u.id,
           p.ai_tags, p.cdn_url, u.ai_tags, u.cdn_url
    FROM upsert AS u
    JOIN input AS i USING (file_path)
    LEFT JOIN prev AS p USING (file_path)
    -- A resumed folder is redone: the first journal entry holds the true "before".
    ON CONFLICT (md5(file_path), run_id) DO NOTHING
)
SELECT i.folder,
       count(*) FILTER (WHERE u.file_path IS NOT NULL AND p.file_path IS NULL) AS inserted,
       count(*) FILTER (WHERE u.file_path IS NOT NULL AND p.file_path IS NOT NULL) AS updated,
       count(*) FILTER (WHERE u.file_path IS NULL) AS unchanged
FROM input AS i
LEFT JOIN upsert AS u USING (file_path)
LEFT JOIN prev AS p USING (file_path)
GROUP BY i.folder;
