-- `loader sync` (docs/sync.md): what the trigger on storage.objects reads and records, and the
-- functions that register one object in image_assets exactly as `loader migrate` would.
-- Created by `loader sync install` (idempotent), dropped whole by `loader sync remove`
-- (sync_remove.sql). The trigger function itself is written by loader.sync_define, which
-- install calls with the target table once this script has run.

-- What the flags of `loader sync install` fixed; a NULL column is taken from the latest
-- migrate run at every upload (loader.sync_config), so a new run applies without reinstalling.
CREATE TABLE IF NOT EXISTS loader.sync_settings (
    one           boolean PRIMARY KEY DEFAULT true CHECK (one),
    bucket        text,
    prefix        text,
    cdn_base      text,
    cdn_url       text CHECK (cdn_url IN ('fill', 'overwrite', 'keep')),
    upload_source text,
    match         text CHECK (match IN ('auto', 'none')),
    target        text NOT NULL,  -- image_assets as install resolved it, schema-qualified
    lock_timeout  text NOT NULL,  -- the longest the trigger waits for a lock on it
    installed_at  timestamptz NOT NULL DEFAULT now()
);

-- The matcher's links of the bucket's folders (folder -> customer), as `loader match` and
-- `loader migrate` last decided them; a person's decisions in loader.match_decisions win
-- (loader.sync_customer).
CREATE TABLE IF NOT EXISTS loader.sync_links (
    folder      text PRIMARY KEY,
    customer_id bigint NOT NULL,
    linked_at   timestamptz NOT NULL DEFAULT now()
);

-- loader.classify's tables, copied in by install (loader/sync.py): the media extensions with
-- their mime types, and the placeholder names.
CREATE TABLE IF NOT EXISTS loader.sync_media_types (
    ext  text PRIMARY KEY,
    mime text NOT NULL
);
CREATE TABLE IF NOT EXISTS loader.sync_placeholders (
    name text PRIMARY KEY
);

-- Every image_assets row the trigger inserted or changed. Insert-only and without an index,
-- so concurrent uploads never wait for each other here.
CREATE TABLE IF NOT EXISTS loader.sync_log (
    at        timestamptz NOT NULL DEFAULT now(),
    file_path text NOT NULL,
    inserted  boolean NOT NULL
);

-- Every error the trigger caught instead of failing the upload.
CREATE TABLE IF NOT EXISTS loader.sync_errors (
    at        timestamptz NOT NULL DEFAULT now(),
    bucket_id text,
    name      text,
    operation text NOT NULL,
    sqlstate  text NOT NULL,
    message   text NOT NULL
);

-- The settings an upload is registered with: each flag given to install, else the latest
-- migrate run's own (not rolled back, over that bucket and prefix when they are fixed):
-- bucket, prefix, the base its cdn_urls were built on, --cdn-url, --upload-source, --match.
-- Runs that only deleted orphans carry no upload_source and are skipped.
CREATE OR REPLACE FUNCTION loader.sync_config()
RETURNS TABLE (bucket text, prefix text, cdn_base text, cdn_url text, upload_source text,
               match text, run_id bigint)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(s.bucket, r.bucket), coalesce(s.prefix, r.prefix),
           coalesce(s.cdn_base, r.options ->> 'public_url_base', r.options ->> 'cdn_base'),
           coalesce(s.cdn_url, r.options ->> 'cdn_url', 'fill'),
           coalesce(s.upload_source, r.options ->> 'upload_source'),
           coalesce(s.match, r.options ->> 'match', 'auto'), r.run_id
    FROM loader.sync_settings AS s
    LEFT JOIN LATERAL (
        SELECT runs.run_id, runs.bucket, runs.prefix, runs.options
        FROM loader.runs
        WHERE runs.status <> 'rolled_back' AND runs.options ? 'upload_source'
          AND (s.bucket IS NULL OR runs.bucket = s.bucket)
          AND (s.prefix IS NULL OR runs.prefix = s.prefix)
        ORDER BY runs.run_id DESC
        LIMIT 1
    ) AS r ON true
$$;

-- A path as loader.rows.CdnUrls writes it into a URL: every byte of its UTF-8 form outside
-- RFC 3986's unreserved characters and '/' as %XX (upper-case hex), like Python's
-- quote(path, safe='/'). Held equal to it by tests/test_sync.py over generated names.
CREATE OR REPLACE FUNCTION loader.sync_url_path(path text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN path COLLATE "C" ~ '^[-A-Za-z0-9_.~/]*$' THEN path
        ELSE (SELECT string_agg(
                  CASE WHEN c COLLATE "C" ~ '^[-A-Za-z0-9_.~/]$' THEN c
                       ELSE upper(regexp_replace(encode(convert_to(c, 'UTF8'), 'hex'),
                                                 '(..)', '%\1', 'g') COLLATE "C") END,
                  '' ORDER BY i)
              FROM regexp_split_to_table(path, '') WITH ORDINALITY AS t(c, i))
    END
$$;

-- The image_assets row of one Storage object, as loader.rows.FolderRows builds it (all
-- NULL: not a customer's image or video). The rules of loader.classify: the last path segment is
-- the file name; a dot-file or a placeholder name is never registered; the lower-case
-- extension after the last dot (none when that dot starts the name) decides through
-- loader.sync_media_types; an unknown extension falls back to the metadata's mimetype
-- (image/* or video/*, lower-cased). Only objects inside a folder under `prefix` count
-- (files directly under it are loose, as migrate leaves them). `size` is the metadata's when
-- it is an integer. Lower-casing is ASCII-only (COLLATE "C"): the same in every database,
-- and equal to Python's str.lower() on the names Storage accepts (ASCII keys).
-- Held equal to the Python rules by tests/test_sync.py over generated names and metadata.
CREATE OR REPLACE FUNCTION loader.sync_row(
    path text, metadata jsonb, created timestamptz, prefix text, cdn_base text,
    OUT file_path text, OUT folder text, OUT filename text, OUT format text,
    OUT mime_type text, OUT file_size bigint, OUT created_at timestamptz, OUT cdn_url text)
-- PL/pgSQL, step by step, one table lookup: as one SQL query it was inlined into each
-- caller and planned again at every upload (~0.6 ms); this runs in ~0.05 ms.
LANGUAGE plpgsql STABLE AS $$
DECLARE
    rest        text := substr(path, length(prefix) + 1);
    leaf        text;  -- the file name (`name` is a column)
    back        integer;
    extension   text := '';
    mimetype    text;
    mime        text;
    placeholder boolean;
BEGIN
    IF NOT starts_with(path, prefix) OR strpos(rest, '/') = 0 THEN
        RETURN;  -- outside the prefix, or loose: in no customer folder
    END IF;
    leaf := split_part(path, '/', -1);
    IF left(leaf, 1) = '.' THEN
        RETURN;  -- a dot-file: a placeholder
    END IF;
    back := strpos(reverse(leaf), '.');
    IF back > 0 AND back < length(leaf) THEN
        extension := lower(right(leaf, back - 1) COLLATE "C");
    END IF;
    SELECT (SELECT t.mime FROM loader.sync_media_types AS t WHERE t.ext = extension),
           EXISTS (SELECT 1 FROM loader.sync_placeholders AS p
                   WHERE p.name = lower(leaf COLLATE "C"))
      INTO mime, placeholder;
    IF placeholder THEN
        RETURN;
    END IF;
    IF mime IS NULL THEN
        IF jsonb_typeof(metadata -> 'mimetype') = 'string' THEN
            mimetype := nullif(metadata ->> 'mimetype', '');
        END IF;
        IF mimetype IS NULL
           OR lower(split_part(mimetype, '/', 1) COLLATE "C") NOT IN ('image', 'video') THEN
            RETURN;
        END IF;
        mime := lower(mimetype COLLATE "C");
    END IF;
    file_path := path;
    folder := split_part(rest, '/', 1);
    filename := leaf;
    format := extension;
    mime_type := mime;
    IF jsonb_typeof(metadata -> 'size') = 'number' AND (metadata ->> 'size') ~ '^-?[0-9]+$' THEN
        file_size := (metadata ->> 'size')::bigint;
    END IF;
    created_at := coalesce(created, now());
    cdn_url := rtrim(cdn_base, '/') || '/' || CASE
        WHEN path COLLATE "C" ~ '^[-A-Za-z0-9_.~/]*$' THEN path  -- most: nothing to encode
        ELSE loader.sync_url_path(path) END;
END
$$;

-- The customer of a folder now: a person's decision (NULL there means "no customer"), else
-- the matcher's link, unless a person decided that customer for another folder (a decided
-- claim beats every other claim on its customer, as loader.match._resolve_claims rules).
CREATE OR REPLACE FUNCTION loader.sync_customer(folder_name text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN d.folder IS NOT NULL THEN d.customer_id
        WHEN NOT EXISTS (SELECT 1 FROM loader.match_decisions AS o
                         WHERE o.customer_id = l.customer_id) THEN l.customer_id
    END
    FROM (SELECT folder_name) AS v(folder)
    LEFT JOIN loader.match_decisions AS d ON d.folder = v.folder
    LEFT JOIN loader.sync_links AS l ON l.folder = v.folder
$$;

-- Write the trigger function for `target` (image_assets, schema-qualified) and put its two
-- triggers on storage.objects. The function runs with its owner's rights (uploads write
-- storage.objects as anon, authenticated, service_role or Storage's admin role, none of
-- which may touch image_assets) on a fixed search_path, waits at most `wait` for a lock,
-- and never raises: any error is recorded in loader.sync_errors and the upload goes on.
-- Storage may write the metadata in the INSERT or in a later UPDATE (servers before
-- v0.35), and an overwrite (x-upsert) or a move is an UPDATE: each registers the object as
-- migrate would (a row that exists gets the tag merged and its cdn_url by
-- loader.cdn_url_after, nothing else). An UPDATE that brings the size the INSERT lacked
-- completes the row that INSERT made (a row of this upload_source still without a size);
-- another writer's row keeps its file_size, as migrate leaves it.
CREATE OR REPLACE FUNCTION loader.sync_define(target text, wait text) RETURNS void
LANGUAGE plpgsql AS $define$
BEGIN
    EXECUTE format($fn$
CREATE OR REPLACE FUNCTION loader.sync_object() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = %2$L
AS $body$
DECLARE
    cfg      record;
    r        record;
    customer bigint;
    complete boolean;
    inserted boolean;
BEGIN
    BEGIN
        SELECT * INTO cfg FROM loader.sync_config();
        IF cfg.bucket IS NULL OR cfg.prefix IS NULL OR cfg.upload_source IS NULL
           OR (cfg.cdn_url <> 'keep' AND cfg.cdn_base IS NULL) THEN
            RAISE EXCEPTION 'loader sync has no settings: no migrate run to take them from'
                USING HINT = 'run loader migrate, or loader sync install with its flags';
        END IF;
        IF NEW.bucket_id IS DISTINCT FROM cfg.bucket THEN
            RETURN NULL;
        END IF;
        r := loader.sync_row(NEW.name, NEW.metadata, NEW.created_at, cfg.prefix,
                             CASE WHEN cfg.cdn_url <> 'keep' THEN cfg.cdn_base END);
        IF r.file_path IS NULL THEN
            RETURN NULL;  -- not a customer's image or video
        END IF;
        IF cfg.match = 'auto' THEN
            customer := loader.sync_customer(r.folder);
        END IF;
        complete := TG_OP = 'UPDATE' AND OLD.name IS NOT DISTINCT FROM NEW.name
                    AND OLD.bucket_id IS NOT DISTINCT FROM NEW.bucket_id
                    AND jsonb_typeof(OLD.metadata -> 'size') IS DISTINCT FROM 'number';
        INSERT INTO %1$s AS ia (
            file_path, filename, original_filename, format, mime_type, file_size,
            ai_tags, cdn_url, upload_source, status, created_at, updated_at)
        VALUES (r.file_path, r.filename, r.filename, r.format, r.mime_type, r.file_size,
                CASE WHEN customer IS NULL THEN '{}'::text[]
                     ELSE ARRAY['customer-' || customer] END,
                r.cdn_url, cfg.upload_source, 'active', r.created_at, now())
        ON CONFLICT (file_path) DO UPDATE SET
            ai_tags = loader.merge_tags(ia.ai_tags, excluded.ai_tags),
            cdn_url = loader.cdn_url_after(ia.cdn_url, excluded.cdn_url, ia.file_path,
                                           cfg.cdn_url = 'overwrite'),
            file_size = CASE WHEN complete AND ia.upload_source = excluded.upload_source
                             THEN coalesce(ia.file_size, excluded.file_size)
                             ELSE ia.file_size END,
            updated_at = now()
        WHERE ia.ai_tags IS DISTINCT FROM loader.merge_tags(ia.ai_tags, excluded.ai_tags)
           OR ia.cdn_url IS DISTINCT FROM loader.cdn_url_after(
                  ia.cdn_url, excluded.cdn_url, ia.file_path, cfg.cdn_url = 'overwrite')
           OR (complete AND ia.upload_source = excluded.upload_source
               AND ia.file_size IS NULL AND excluded.file_size IS NOT NULL)
        RETURNING ia.xmax = 0 INTO inserted;
        IF FOUND THEN
            INSERT INTO loader.sync_log (file_path, inserted) VALUES (r.file_path, inserted);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        BEGIN
            INSERT INTO loader.sync_errors (bucket_id, name, operation, sqlstate, message)
            VALUES (NEW.bucket_id, NEW.name, TG_OP, SQLSTATE, SQLERRM);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'loader sync could not register %%: %%', NEW.name, SQLERRM;
        END;
    END;
    RETURN NULL;
END
$body$
$fn$, target, wait);
    REVOKE ALL ON FUNCTION loader.sync_object() FROM PUBLIC;
    CREATE OR REPLACE TRIGGER loader_sync_insert
        AFTER INSERT ON storage.objects
        FOR EACH ROW EXECUTE FUNCTION loader.sync_object();
    CREATE OR REPLACE TRIGGER loader_sync_update
        AFTER UPDATE OF bucket_id, name, metadata ON storage.objects
        FOR EACH ROW
        WHEN (OLD.bucket_id IS DISTINCT FROM NEW.bucket_id OR OLD.name IS DISTINCT FROM NEW.name
              OR OLD.metadata IS DISTINCT FROM NEW.metadata)
        EXECUTE FUNCTION loader.sync_object();
END
$define$;

-- Nothing of sync is anyone else's to call.
REVOKE ALL ON FUNCTION loader.sync_config(), loader.sync_url_path(text),
    loader.sync_row(text, jsonb, timestamptz, text, text), loader.sync_customer(text),
    loader.sync_define(text, text) FROM PUBLIC;
