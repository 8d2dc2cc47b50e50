-- Every finding of one verify, one row per (finding, file_path), into verify_found.
--   $1 text  prefix (rows whose file_path starts with it belong to the listed tree)
--   $2 text  the cdn base: a file's own URL is $2 || '/' || enc_path
--   $3 bool  image_assets has no unique index on file_path: look for duplicates
--   $4 text  the bucket's public route path (`…/object/public/{bucket}/`) when the bucket is
--            private, else NULL: a cdn_url through it never works
-- Errors: missing, untagged, wrong_customer, no_cdn_url, wrong_cdn_url, private_bucket_urls.
-- Warnings: orphan, stale_tag, stale_beside_valid, duplicate_path.
-- wrong_cdn_url: exactly the cdn_urls migrate's default (`--cdn-url fill`) would replace,
-- those not pointing at the file's object (loader.cdn_url_after, loader.same_object).
INSERT INTO verify_found (finding, file_path)
WITH matched AS (
    SELECT o.file_path, o.enc_path, f.customer_id AS linked, ia.file_path IS NULL AS no_row,
           ia.ai_tags, ia.cdn_url,
           -- how many times 'customer-' occurs in the tags: plain string work, no unnest
           (length(array_to_string(ia.ai_tags, ' '))
            - length(replace(array_to_string(ia.ai_tags, ' '), 'customer-', ''))) / 9
               AS mentions
    FROM verify_objects AS o
    LEFT JOIN verify_folders AS f USING (folder)
    LEFT JOIN image_assets AS ia USING (file_path)
    WHERE o.media
),
graded AS (
    SELECT m.file_path, array_remove(ARRAY[
        CASE WHEN m.no_row THEN 'missing' END,
        CASE WHEN NOT m.no_row AND m.linked IS NOT NULL
                  AND NOT coalesce(m.ai_tags, '{}') @> ARRAY['customer-' || m.linked]
             THEN 'untagged' END,
        CASE WHEN m.linked IS NOT NULL AND t.other_existing > 0 THEN 'wrong_customer' END,
        CASE WHEN NOT m.no_row AND m.cdn_url IS NULL THEN 'no_cdn_url' END,
        CASE WHEN m.cdn_url <> loader.cdn_url_after(m.cdn_url, $2 || '/' || m.enc_path,
                                                    m.file_path, false)
             THEN 'wrong_cdn_url' END,
        CASE WHEN $4::text IS NOT NULL AND strpos(m.cdn_url, $4::text) > 0
             THEN 'private_bucket_urls' END,
        CASE WHEN t.stale > 0 AND t.customer_tags - t.stale <> 1 THEN 'stale_tag' END,
        CASE WHEN t.stale > 0 AND t.customer_tags - t.stale = 1 THEN 'stale_beside_valid' END
    ], NULL) AS findings
    FROM matched AS m
    -- The customer-{digits} tags, parsed and looked up only for rows that may hold a stale
    -- or foreign one: not for the usual row whose one customer tag is its folder's.
    CROSS JOIN LATERAL (
        SELECT count(*) AS customer_tags,
               count(*) FILTER (WHERE cu.id IS NULL) AS stale,
               count(*) FILTER (WHERE cu.id IS NOT NULL
                                  AND cu.id IS DISTINCT FROM m.linked) AS other_existing
        FROM (SELECT DISTINCT substr(tag, 10)::bigint AS id
              FROM unnest(m.ai_tags) AS tag
              WHERE tag LIKE 'customer-%' AND tag ~ '^customer-[0-9]{1,18}$') AS ct
        LEFT JOIN customers AS cu ON cu.id = ct.id
        WHERE m.mentions > 1
           OR (m.mentions = 1
               AND (m.linked IS NULL OR NOT m.ai_tags @> ARRAY['customer-' || m.linked]))
    ) AS t
)
SELECT finding, g.file_path
FROM graded AS g, unnest(g.findings) AS finding
WHERE cardinality(g.findings) > 0
UNION ALL
SELECT 'orphan', ia.file_path
FROM image_assets AS ia
WHERE starts_with(ia.file_path, $1)
  AND NOT EXISTS (SELECT 1 FROM verify_objects AS o WHERE o.file_path = ia.file_path)
  AND NOT EXISTS (SELECT 1 FROM verify_folders AS f
                  WHERE f.failed
                    AND f.folder = split_part(substr(ia.file_path, length($1) + 1), '/', 1))
UNION ALL
SELECT 'duplicate_path', ia.file_path
FROM image_assets AS ia
WHERE $3 AND starts_with(ia.file_path, $1)
GROUP BY ia.file_path
HAVING count(*) > 1;
