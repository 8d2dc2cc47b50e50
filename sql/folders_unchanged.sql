-- A re-run's quick check of folders listed whole: $1 each folder's path prefix ('…/folder/'),
-- $2 the first string after every path with that prefix (the prefix with its '/' raised to '0'),
-- $3 its tag (null: none), $4 how many media files it has, $5 the sha256 (hex) of their paths
-- sorted by code point and joined by newlines, $6 the URL the loader builds for the prefix
-- (null: `--cdn-url keep`) and $7 the rests of its paths (after the prefix) that need
-- percent-encoding, each with its encoded form (null: none does): a path's own URL is $6
-- followed by its rest, encoded. Returns the 1-based positions of the folders whose rows in
-- image_assets are exactly those paths, each already carrying the tag and the cdn_url the
-- upsert would leave (loader.cdn_url_after, asked only of a row whose URL is not its own:
-- the common case costs a comparison): the upsert would change none of them (sink_probe.sql's
-- test: merge_tags keeps a row that has the tag). Every other folder is written row by row,
-- as without the check.
-- The range is in the column's own collation so that its index serves it, and starts_with()
-- keeps only the folder's paths: a collation whose order is not the bytes' can only leave
-- rows out of the range, which fails the check, never passes it.
SELECT c.n
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
            $7::jsonb[])
     WITH ORDINALITY AS c(prefix, after, tag, media, digest, url_prefix, encoded, n)
CROSS JOIN LATERAL (
    SELECT count(*) AS rows,
           encode(sha256(convert_to(
               string_agg(a.file_path, E'\n' ORDER BY a.file_path COLLATE "C"), 'UTF8')),
               'hex') AS digest,
           bool_and(CASE WHEN c.tag IS NULL THEN a.ai_tags IS NOT NULL
                         ELSE coalesce(a.ai_tags @> ARRAY[c.tag], false) END) AS tagged,
           -- never NULL: bool_and would skip a row it could not decide
           bool_and(a.cdn_url IS NOT DISTINCT FROM o.own OR a.cdn_url IS NOT DISTINCT FROM
                    loader.cdn_url_after(a.cdn_url, o.own, a.file_path, false)) AS linked
    FROM image_assets AS a
    CROSS JOIN LATERAL (SELECT substr(a.file_path, length(c.prefix) + 1) AS rest) AS r
    CROSS JOIN LATERAL (
        SELECT c.url_prefix || CASE WHEN c.encoded IS NULL THEN r.rest
                                    ELSE coalesce(c.encoded ->> r.rest, r.rest) END AS own
    ) AS o
    WHERE a.file_path >= c.prefix AND a.file_path < c.after
      AND starts_with(a.file_path, c.prefix)
) AS f
WHERE f.rows = c.media AND f.digest = c.digest AND f.tagged AND f.linked;
