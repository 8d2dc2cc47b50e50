-- --dry-run: what upsert_batch.sql would do to each folder's rows, without writing.
--   $1 json (as upsert_batch.sql), $2 bool: true = rewrite cdn_url, false = fill or refresh.
-- It must run on a database without the loader schema, so it cannot call loader.merge_tags
-- or loader.cdn_url_after; it asks the questions the plan needs of those rules instead.
-- Would the merge change the array? Only when the old array is NULL or lacks one of the new
-- (non-NULL) tags. Would the cdn_url change? Unless the row carries none (`keep`), already
-- has its own, or (fill) one pointing at the same object: loader.same_object's rule,
-- repeated in `same` below. tests/test_properties.py checks both against the functions.
WITH input AS (
    SELECT *
    FROM json_to_recordset($1::json) AS r(file_path text, folder text, tags text[], cdn_url text)
),
decided AS (
    SELECT i.folder,
           CASE
               WHEN ia.file_path IS NULL THEN 'insert'
               WHEN ia.ai_tags IS NULL OR NOT (array_remove(i.tags, NULL) <@ ia.ai_tags)
                 OR NOT (i.cdn_url IS NULL OR ia.cdn_url IS NOT DISTINCT FROM i.cdn_url
                         OR (NOT $2 AND coalesce(same.object, false)))
                   THEN 'update'
               ELSE 'unchanged'
           END AS action
    FROM input AS i
    LEFT JOIN image_assets AS ia USING (file_path)
    LEFT JOIN LATERAL (
        SELECT coalesce(u.path = o.path OR (
                   cardinality(u.parts) > f.n
                   AND u.parts[cardinality(u.parts) - f.n + 1:]
                       IN (f.parts, o.parts[cardinality(o.parts) - f.n + 1:])
                   AND NOT 'object' = ANY (u.parts[:cardinality(u.parts) - f.n])), false)
                   AS object
        FROM (SELECT p AS path, string_to_array(p, '/') AS parts
              FROM substring(ia.cdn_url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)') AS p)
                 AS u,
             (SELECT p AS path, string_to_array(p, '/') AS parts
              FROM substring(i.cdn_url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)') AS p)
                 AS o,
             (SELECT s AS parts, cardinality(s) AS n FROM string_to_array(i.file_path, '/') AS s)
                 AS f
        WHERE ia.cdn_url <> i.cdn_url
    ) AS same ON true
)
SELECT folder,
       count(*) FILTER (WHERE action = 'insert') AS inserted,
       count(*) FILTER (WHERE action = 'update') AS updated,
       count(*) FILTER (WHERE action = 'unchanged') AS unchanged
FROM decided
GROUP BY folder;
