-- loader.classify's tables into sync's: $1 media extensions, $2 their mime types,
-- $3 placeholder names. Rows that are already right are not written again.
WITH media AS (
    SELECT ext, mime FROM unnest($1::text[], $2::text[]) AS t (ext, mime)
),
gone_media AS (
    DELETE FROM loader.sync_media_types AS m
    WHERE NOT EXISTS (SELECT 1 FROM media WHERE media.ext = m.ext)
),
gone_names AS (
    DELETE FROM loader.sync_placeholders AS p
    WHERE p.name <> ALL ($3::text[])
),
names AS (
    INSERT INTO loader.sync_placeholders (name)
    SELECT unnest($3::text[])
        ON CONFLICT (name) DO NOTHING
)
INSERT INTO loader.sync_media_types AS m (ext, mime)
SELECT ext, mime FROM media
    ON CONFLICT (ext) DO UPDATE SET mime = excluded.mime WHERE m.mime <> excluded.mime;
