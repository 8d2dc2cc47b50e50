-- Verify one batch of Storage media files against image_assets.
--   $1 json array of {file_path, tags}: tags = the customer tag the file must carry, or [].
--   $2 text the bucket's public route (`/object/public/{bucket}/`) when the bucket is
--           private, else NULL: a cdn_url through it never works.
-- Counts, plus up to 20 example paths, of: files with no row, rows missing their customer
-- tag, rows without cdn_url, rows carrying more than one customer-* tag (a conflicting
-- link that a person must resolve; verify never removes tags), and rows whose cdn_url is a
-- public URL of the private bucket.
WITH input AS (
    SELECT * FROM json_to_recordset($1::json) AS r(file_path text, tags text[])
),
checked AS (
    SELECT i.file_path,
           ia.file_path IS NULL AS missing,
           ia.file_path IS NOT NULL AND NOT (coalesce(ia.ai_tags, '{}') @> i.tags) AS untagged,
           ia.file_path IS NOT NULL AND ia.cdn_url IS NULL AS no_cdn_url,
           ia.file_path IS NOT NULL
             AND (SELECT count(DISTINCT t) FROM unnest(ia.ai_tags) AS t
                  WHERE t LIKE 'customer-%') > 1 AS conflicting_tags,
           $2::text IS NOT NULL AND strpos(ia.cdn_url, $2::text) > 0 AS private_bucket_urls
    FROM input AS i
    LEFT JOIN image_assets AS ia USING (file_path)
)
SELECT count(*) FILTER (WHERE missing) AS missing,
       count(*) FILTER (WHERE untagged) AS untagged,
       count(*) FILTER (WHERE no_cdn_url) AS no_cdn_url,
       count(*) FILTER (WHERE conflicting_tags) AS conflicting_tags,
       count(*) FILTER (WHERE private_bucket_urls) AS private_bucket_urls,
       (array_agg(file_path ORDER BY file_path) FILTER (WHERE missing))[1:20] AS missing_examples,
       (array_agg(file_path ORDER BY file_path) FILTER (WHERE untagged))[1:20] AS untagged_examples,
       (array_agg(file_path ORDER BY file_path) FILTER (WHERE no_cdn_url))[1:20]
           AS no_cdn_url_examples,
       (array_agg(file_path ORDER BY file_path) FILTER (WHERE conflicting_tags))[1:20]
           AS conflicting_tags_examples,
       (array_agg(file_path ORDER BY file_path) FILTER (WHERE private_bucket_urls))[1:20]
           AS private_bucket_urls_examples
FROM checked;
