-- Every finding of one verify, one row per (finding, file_path), into verify_found.
--   $1 text  prefix (rows whose file_path starts with it belong to the listed tree)
--   $2 text  the cdn base: a file's own URL is $2 || '/' || enc_path
--   $3 text  what marks a Storage API object URL (e.g. '/storage/v1/object/')
--   $4 bool  image_assets has no unique index on file_path: look for duplicates
-- Errors: missing, untagged, wrong_customer, no_cdn_url, wrong_cdn_url.
-- Warnings: orphan, stale_tag, stale_beside_valid, duplicate_path.
-- A cdn_url is a file's own when it is exactly the loader's URL, or (a CDN in front of the
-- bucket) a URL that is not a Storage API URL and ends with the file's path; a Storage URL
-- of another host or bucket, a signed or authenticated one, is not.
INSERT INTO verify_found (finding, file_path)
WITH files AS (
    SELECT o.file_path, o.enc_path, f.customer_id AS linked
    FROM verify_objects AS o
    LEFT JOIN verify_folders AS f USING (folder)
    WHERE o.media
),
checked AS (
    SELECT fi.file_path, fi.enc_path, fi.linked, ia.file_path IS NULL AS no_row,
           ia.ai_tags, ia.cdn_url, t.customer_tags, t.stale, t.other_existing
    FROM files AS fi
    LEFT JOIN image_assets AS ia USING (file_path)
    LEFT JOIN LATERAL (
        -- customer-{digits} tags only; the cast runs on rows the pattern already passed
        SELECT count(*) AS customer_tags,
               count(*) FILTER (WHERE cu.id IS NULL) AS stale,
               count(*) FILTER (WHERE cu.id IS NOT NULL
                                  AND cu.id IS DISTINCT FROM fi.linked) AS other_existing
        FROM (SELECT DISTINCT substr(tag, 10)::bigint AS id
              FROM unnest(ia.ai_tags) AS tag
              WHERE tag ~ '^customer-[0-9]{1,18}$') AS ct
        LEFT JOIN customers AS cu ON cu.id = ct.id
    ) AS t ON ia.file_path IS NOT NULL
)
SELECT v.finding, c.file_path
FROM checked AS c,
LATERAL (VALUES
    ('missing', c.no_row),
    ('untagged', NOT c.no_row AND c.linked IS NOT NULL
                 AND NOT coalesce(c.ai_tags, '{}') @> ARRAY['customer-' || c.linked]),
    ('wrong_customer', c.linked IS NOT NULL AND c.other_existing > 0),
    ('no_cdn_url', NOT c.no_row AND c.cdn_url IS NULL),
    ('wrong_cdn_url', c.cdn_url <> $2 || '/' || c.enc_path
                      AND NOT (strpos(c.cdn_url, $3) = 0
                               AND (right(c.cdn_url, length(c.enc_path) + 1) = '/' || c.enc_path
                                    OR right(c.cdn_url, length(c.file_path) + 1)
                                       = '/' || c.file_path))),
    ('stale_tag', c.stale > 0 AND c.customer_tags - c.stale <> 1),
    ('stale_beside_valid', c.stale > 0 AND c.customer_tags - c.stale = 1)
) AS v(finding, hit)
WHERE v.hit
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
WHERE $4 AND starts_with(ia.file_path, $1)
GROUP BY ia.file_path
HAVING count(*) > 1;
