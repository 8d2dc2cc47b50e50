-- COPY fast path, first step, for a batch given as parallel arrays: $1 text[] file_paths,
-- $2 text[] each row's one tag (NULL: none), $3 text[] cdn_urls, $4 bool overwrite cdn_url.
-- Returns the transaction's now() (updated_at, and created_at when Storage gave none, of new
-- rows) and the 1-based positions of the rows that exist, and of those that would change
-- (the same test as upsert_batch.sql): rows that exist unchanged are not sent again.
WITH found AS (
    SELECT file_path, ai_tags, cdn_url
    FROM image_assets
    WHERE file_path = ANY ($1::text[])
)
SELECT now() AS now,
       coalesce(array_agg(i.n), '{}') AS existing,
       coalesce(array_agg(i.n) FILTER (
           WHERE f.ai_tags IS DISTINCT FROM loader.merge_tags(
                     f.ai_tags, CASE WHEN i.tag IS NULL THEN '{}'::text[] ELSE ARRAY[i.tag] END)
              OR f.cdn_url IS DISTINCT FROM (CASE WHEN $4 THEN i.cdn_url
                                                  ELSE coalesce(f.cdn_url, i.cdn_url) END)
       ), '{}') AS changing
FROM found AS f
JOIN unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS i(file_path, tag, cdn_url, n)
    USING (file_path);
