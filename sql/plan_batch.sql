-- --dry-run: what upsert_batch.sql would do to each folder's rows, without writing.
--   $1 json (as upsert_batch.sql), $2 bool: true = rewrite cdn_url, false = fill when NULL.
WITH input AS (
    SELECT *
    FROM json_to_recordset($1::json) AS r(file_path text, folder text, tags text[], cdn_url text)
),
decided AS (
    SELECT i.folder,
           CASE
               WHEN ia.file_path IS NULL THEN 'insert'
               WHEN ia.ai_tags IS DISTINCT FROM loader.merge_tags(ia.ai_tags, i.tags)
                 OR ia.cdn_url IS DISTINCT FROM (CASE WHEN $2 THEN i.cdn_url
                                                      ELSE coalesce(ia.cdn_url, i.cdn_url) END)
                   THEN 'update'
               ELSE 'unchanged'
           END AS action
    FROM input AS i
    LEFT JOIN image_assets AS ia USING (file_path)
)
SELECT folder,
       count(*) FILTER (WHERE action = 'insert') AS inserted,
       count(*) FILTER (WHERE action = 'update') AS updated,
       count(*) FILTER (WHERE action = 'unchanged') AS unchanged
FROM decided
GROUP BY folder;
