-- --dry-run: what upsert_batch.sql would do to each folder's rows, without writing.
--   $1 json (as upsert_batch.sql), $2 bool: true = rewrite cdn_url, false = fill when NULL.
-- It must run on a database without the loader schema, so it cannot call loader.merge_tags;
-- it asks the one question the plan needs of that rule instead: would the merge change the
-- array? Only when the old array is NULL or lacks one of the new (non-NULL) tags.
-- tests/test_properties.py checks this against loader.merge_tags on generated arrays.
WITH input AS (
    SELECT *
    FROM json_to_recordset($1::json) AS r(file_path text, folder text, tags text[], cdn_url text)
),
decided AS (
    SELECT i.folder,
           CASE
               WHEN ia.file_path IS NULL THEN 'insert'
               WHEN ia.ai_tags IS NULL OR NOT (array_remove(i.tags, NULL) <@ ia.ai_tags)
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
