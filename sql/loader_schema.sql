-- The loader's own bookkeeping, in its own schema. Idempotent; `schema_version` lets later
-- versions migrate it.
CREATE SCHEMA IF NOT EXISTS loader;

CREATE TABLE IF NOT EXISTS loader.schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per migrate run; options are stored with secrets redacted.
CREATE TABLE IF NOT EXISTS loader.runs (
    run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status      text NOT NULL DEFAULT 'running'
                CONSTRAINT runs_status_check
                CHECK (status IN ('running', 'succeeded', 'incomplete', 'aborted', 'interrupted',
                                  'rolled_back')),
    bucket      text NOT NULL,
    prefix      text NOT NULL,
    options     jsonb NOT NULL DEFAULT '{}',
    counts      jsonb NOT NULL DEFAULT '{}'
);
-- A new run's folder rows are written in chunks while its first worker already works on the
-- first ones (the serial start overlapped): `registering` until the last chunk commits. Such a
-- run is never closed (run_finalize.sql), and one whose registration a crash cut short is
-- completed by its resume (loader.migrate).
-- Added only when missing: even with IF NOT EXISTS, ALTER TABLE first takes an exclusive lock,
-- which would queue every command behind a live worker's batch.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute
                   WHERE attrelid = 'loader.runs'::regclass AND attname = 'registering'
                     AND NOT attisdropped) THEN
        ALTER TABLE loader.runs ADD COLUMN registering boolean NOT NULL DEFAULT false;
    END IF;
END
$$;
-- 'interrupted' (no live worker, recorded by the first command that sees it) is newer than
-- the table: an older schema's check is widened, once.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conrelid = 'loader.runs'::regclass AND conname = 'runs_status_check'
                     AND pg_get_constraintdef(oid) LIKE '%interrupted%') THEN
        ALTER TABLE loader.runs DROP CONSTRAINT IF EXISTS runs_status_check;
        ALTER TABLE loader.runs ADD CONSTRAINT runs_status_check
            CHECK (status IN ('running', 'succeeded', 'incomplete', 'aborted', 'interrupted',
                              'rolled_back'));
    END IF;
END
$$;

-- A run's folders, in chunks: the unit of claiming, of recording progress and of resume.
-- Each chunk is one row holding its folders and their customers (parallel arrays); a worker
-- claims whole chunks (SELECT ... FOR UPDATE SKIP LOCKED) and records one when all its
-- folders are done, in one write: each folder's counts under its name in `counts`. Folders
-- that failed are split off into a chunk of their own, state 'failed', their reasons in
-- `errors`, so a later worker retries just them. Per-folder rows (three writes per folder:
-- registered, claimed, done) made a re-run that changed nothing write 30,000 rows for 10,000
-- folders; chunks of up to 100 folders (loader.runs.chunk_size) write about 300.
CREATE TABLE IF NOT EXISTS loader.chunks (
    chunk_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES loader.runs ON DELETE CASCADE,
    folders      text[] NOT NULL,
    customer_ids bigint[] NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'claimed', 'done', 'failed')),
    claimed_by   text,
    claimed_at   timestamptz,
    attempts     integer NOT NULL DEFAULT 0,
    counts       jsonb NOT NULL DEFAULT '{}',  -- folder -> its counts
    errors       jsonb                         -- failed: folder -> why
);
CREATE INDEX IF NOT EXISTS chunks_run ON loader.chunks (run_id, chunk_id);
-- The chunks a claim can still hand out: a claim never walks the run's done chunks.
CREATE INDEX IF NOT EXISTS chunks_open ON loader.chunks (run_id, chunk_id)
    WHERE state <> 'done';
-- A worker's own claimed chunks (every claim and every batch's fence reads them).
CREATE INDEX IF NOT EXISTS chunks_claimed ON loader.chunks (run_id, claimed_by)
    WHERE state = 'claimed';

-- Until this version, loader.folders was a table of one row per folder: its rows become
-- chunks of one folder each (state, holder, attempts, counts and error kept), once, so runs
-- it recorded can still be resumed, reported and rolled back.
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('loader.folders')) = 'r' THEN
        INSERT INTO loader.chunks (run_id, folders, customer_ids, state, claimed_by,
                                   claimed_at, attempts, counts, errors)
        SELECT run_id, ARRAY[folder], ARRAY[customer_id], state, claimed_by, claimed_at,
               attempts, jsonb_build_object(folder, counts),
               CASE WHEN error IS NOT NULL THEN jsonb_build_object(folder, error) END
        FROM loader.folders
        ORDER BY run_id, folder;
        DROP TABLE loader.folders;
    END IF;
    -- Created only when missing: CREATE OR REPLACE VIEW takes an exclusive lock on it,
    -- which would queue every command behind a report being read.
    IF to_regclass('loader.folders') IS NULL THEN
        -- Each folder of each run, as one row: what reports, `loader runs` and people read.
        CREATE VIEW loader.folders AS
        SELECT c.run_id, f.folder, f.customer_id, c.state, c.claimed_by, c.claimed_at,
               c.attempts, coalesce(c.counts -> f.folder, '{}') AS counts,
               c.errors ->> f.folder AS error, c.chunk_id
        FROM loader.chunks AS c
        CROSS JOIN LATERAL unnest(c.folders, c.customer_ids) AS f(folder, customer_id);
    END IF;
END
$$;

-- The journal: what each run inserted or changed, enough to undo it exactly. Built for bulk:
-- no foreign key per row (the sink checks its run once), and no index entry per inserted row.
-- Written in the same transaction as the rows it describes, tagged with that transaction's
-- id: a row whose `xmin` is still one of the run's transactions has not been written by
-- anyone since, which is how rollback tells "untouched since the run" from "changed since".
--
-- Rows a run inserted: one entry per folder per batch, the paths as `base || name` (the
-- common directory stored once). Rows that did not exist are all rollback needs to delete.
CREATE TABLE IF NOT EXISTS loader.journal_inserts (
    run_id bigint NOT NULL,
    xid    xid NOT NULL,
    folder text NOT NULL,
    base   text NOT NULL,
    names  text[] NOT NULL,
    at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS journal_inserts_run ON loader.journal_inserts (run_id);

-- Rows a run changed that existed before it: their before-image. A text[] column keeps NULL,
-- '{}' and '{NULL}' apart, so the previous ai_tags comes back exactly.
CREATE TABLE IF NOT EXISTS loader.journal_updates (
    run_id          bigint NOT NULL,
    xid             xid NOT NULL,
    asset_id        uuid NOT NULL,
    file_path       text NOT NULL,
    folder          text NOT NULL,
    prev_ai_tags    text[],
    prev_cdn_url    text,
    prev_updated_at timestamptz,
    prev_xmin       xid,  -- the transaction that wrote the before-image
    new_ai_tags     text[],
    new_cdn_url     text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS journal_updates_run ON loader.journal_updates (run_id);

-- Each rollback, with what it did (rolling back is itself recorded; a second one is refused).
CREATE TABLE IF NOT EXISTS loader.rollbacks (
    run_id   bigint NOT NULL REFERENCES loader.runs ON DELETE CASCADE,
    at       timestamptz NOT NULL DEFAULT now(),
    forced   boolean NOT NULL,
    xid      xid NOT NULL,  -- its transaction: rows it restored exactly carry it as xmin
    counts   jsonb NOT NULL,
    examples jsonb NOT NULL DEFAULT '{}'
);

-- Journals of version 1 (one row per file, with a foreign key): moved into the tables above.
-- Their transaction ids are unknown (0), so rollback treats those rows as changed since.
DO $$
BEGIN
    IF to_regclass('loader.journal') IS NOT NULL
       AND (SELECT relkind FROM pg_class WHERE oid = to_regclass('loader.journal')) = 'r' THEN
        INSERT INTO loader.journal_inserts (run_id, xid, folder, base, names, at)
        SELECT run_id, '0'::xid, folder, '', array_agg(file_path), min(at)
        FROM loader.journal WHERE action = 'insert' GROUP BY run_id, folder;
        INSERT INTO loader.journal_updates (run_id, xid, asset_id, file_path, folder,
            prev_ai_tags, prev_cdn_url, new_ai_tags, new_cdn_url, at)
        SELECT run_id, '0'::xid, asset_id, file_path, folder,
               prev_ai_tags, prev_cdn_url, new_ai_tags, new_cdn_url, at
        FROM loader.journal WHERE action = 'update';
        DROP TABLE loader.journal;
    END IF;
END
$$;

-- One row per file a run inserted or updated, for people and reports (not for the hot path).
CREATE OR REPLACE VIEW loader.journal AS
SELECT i.run_id, i.base || n.name AS file_path, i.folder, 'insert'::text AS action,
       NULL::text[] AS prev_ai_tags, NULL::text AS prev_cdn_url, i.at
FROM loader.journal_inserts AS i
CROSS JOIN LATERAL unnest(i.names) AS n(name)
UNION ALL
SELECT u.run_id, u.file_path, u.folder, 'update', u.prev_ai_tags, u.prev_cdn_url, u.at
FROM loader.journal_updates AS u;

-- ai_tags merge, done inside Postgres so concurrent writers never lose a tag: keeps `old` as
-- it is (order, and any NULL element), treats a NULL array as empty, and appends each non-NULL
-- tag of `new` once, in first-seen order, when `old` does not have it. `t = ANY(old) IS TRUE`
-- is what makes a NULL element in `old` harmless (plain `<> ALL` would be NULL and append
-- nothing).
CREATE OR REPLACE FUNCTION loader.merge_tags_general(old text[], new text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(old, '{}') || coalesce(ARRAY(
        SELECT t
        FROM unnest(new) WITH ORDINALITY AS n(t, i)
        WHERE t IS NOT NULL AND NOT (t = ANY (coalesce(old, '{}')) IS TRUE)
        GROUP BY t
        ORDER BY min(i)
    ), '{}')
$$;

-- The same result, with fast paths for what the loader sends (no tag, or one non-NULL tag):
-- a plain expression Postgres inlines into the upsert, measured ~1.9x faster on updates and
-- re-runs than calling the general function for every row. `<@` ignores NULL elements of
-- `old`, and a NULL `old` falls through to the append.
CREATE OR REPLACE FUNCTION loader.merge_tags(old text[], new text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN cardinality(new) = 0 THEN coalesce(old, '{}')
        WHEN cardinality(new) = 1 AND new[array_lower(new, 1)] IS NOT NULL THEN
            CASE WHEN new <@ old THEN old ELSE coalesce(old, '{}') || new END
        ELSE loader.merge_tags_general(old, new)
    END
$$;

-- Whether a stored cdn_url `url` points at the object whose own URL (the one the loader
-- builds: base '/' percent-encoded path) is `own` and whose path is `file_path`. Compared on
-- the URL's path: what follows `scheme://host[:port]`, without `?query` or `#fragment`. True
-- when that path
--   (a) is own's path: the same route on another host (a CDN or proxy in front of Storage,
--       `https://cdn.example.com/storage/v1/object/public/<bucket>/<path>`), or
--   (b) ends with '/' and the file's path, as stored or percent-encoded as the loader
--       encodes it, and no path segment before it is `object`: a CDN mapping its own paths
--       onto the bucket (`https://cdn.example.com/<bucket>/<path>`, `…/<path>`). Storage's
--       routes all have that segment, so a signed, authenticated or other bucket's URL that
--       ends with the path is not the object's.
-- False for NULL, and for a value that is not an absolute URL. Not inlined (it reads its
-- arguments' parts once): callers test `url = own` first, the common case.
-- sql/plan_batch.sql repeats this rule (a dry run may find no loader schema);
-- tests/test_properties.py holds both to the rule as stated here.
CREATE OR REPLACE FUNCTION loader.same_object(url text, own text, file_path text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(u.path = o.path OR (
               cardinality(u.parts) > f.n
               AND u.parts[cardinality(u.parts) - f.n + 1:]
                   IN (f.parts, o.parts[cardinality(o.parts) - f.n + 1:])
               AND NOT 'object' = ANY (u.parts[:cardinality(u.parts) - f.n])), false)
    FROM (SELECT p AS path, string_to_array(p, '/') AS parts
          FROM substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)') AS p) AS u,
         (SELECT p AS path, string_to_array(p, '/') AS parts
          FROM substring(own FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)') AS p) AS o,
         (SELECT s AS parts, cardinality(s) AS n FROM string_to_array(file_path, '/') AS s) AS f
$$;

-- The cdn_url a row has after a run writes `own` (NULL: `--cdn-url keep`, rows carry none)
-- over its `old` one: the default (`fill`) keeps a URL pointing at the same object
-- (loader.same_object) and writes `own` over NULL or another object's URL; `overwrite`
-- always writes `own`. The one definition used by the upsert, the probe, the re-run check
-- and verify. A plain expression Postgres inlines: same_object runs only when old <> own.
CREATE OR REPLACE FUNCTION loader.cdn_url_after(
    old text, own text, file_path text, overwrite boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN own IS NULL OR old = own THEN old
        WHEN NOT overwrite AND loader.same_object(old, own, file_path) THEN old
        ELSE own
    END
$$;

-- Rows a run could not write, with the reason (data errors isolated by batch splitting).
CREATE TABLE IF NOT EXISTS loader.row_failures (
    run_id    bigint NOT NULL REFERENCES loader.runs ON DELETE CASCADE,
    file_path text NOT NULL,
    folder    text,
    reason    text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS row_failures_path_run
    ON loader.row_failures (md5(file_path), run_id);

-- A run's counts, from its journal (the truth across resumes and workers) and its folders.
CREATE OR REPLACE FUNCTION loader.run_counts(run bigint) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'inserted', (SELECT coalesce(sum(cardinality(names)), 0)
                       FROM loader.journal_inserts WHERE run_id = run),
        'updated', (SELECT count(DISTINCT asset_id) FROM loader.journal_updates
                     WHERE run_id = run),
        'failed', (SELECT count(*) FROM loader.row_failures WHERE run_id = run),
        'media', (SELECT coalesce(sum((e.value ->> 'media')::bigint), 0)
                    FROM loader.chunks AS c CROSS JOIN LATERAL jsonb_each(c.counts) AS e
                    WHERE c.run_id = run),
        'folders', (SELECT coalesce(sum(cardinality(folders)), 0) FROM loader.chunks
                     WHERE run_id = run),
        'folders_done', (SELECT coalesce(sum(cardinality(folders)), 0) FROM loader.chunks
                          WHERE run_id = run AND state = 'done'),
        'folders_failed', (SELECT coalesce(sum(cardinality(folders)), 0) FROM loader.chunks
                            WHERE run_id = run AND state = 'failed'))
$$;

-- Backups (loader.backup): each one a plain copy of image_assets (CREATE TABLE AS, any shape
-- of the user's table fits) and of customers' (id, folder_name), as tables
-- loader.backup_{id}_image_assets / loader.backup_{id}_customers, with a catalogue row here.
-- Backups of loader 0.x were jsonb rows in a table of this name: kept, renamed.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute
               WHERE attrelid = to_regclass('loader.backups') AND attname = 'row'
                 AND NOT attisdropped) THEN
        ALTER TABLE loader.backups RENAME TO backups_v1;
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS loader.backups (
    backup_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taken_at           timestamptz NOT NULL DEFAULT now(),
    run_id             bigint,  -- the run it was taken for; NULL: `loader backup`
    reason             text NOT NULL,
    assets_table       text,
    customers_table    text,
    rows               bigint,
    checksum           text,
    customers          bigint,
    customers_checksum text
);

-- "count:sum of row hashes" of `cols` of `rel`: order-free, streaming, and the same for two
-- tables exactly when they hold the same rows. Rows are hashed by value
-- (hash_record_extended, no text conversion); a table with a column type that has no hash
-- function (json, point, ...) is hashed by its text form instead, pinned by the SET clauses
-- so a session's time zone or styles cannot change it.
CREATE OR REPLACE FUNCTION loader.rows_checksum(rel regclass, cols text) RETURNS text
LANGUAGE plpgsql STABLE
SET TimeZone = 'UTC' SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' AS $$
DECLARE
    result text;
BEGIN
    BEGIN
        EXECUTE format('SELECT count(*) || '':'' || coalesce(sum(hash_record_extended(t, 0)'
                       '::numeric), 0) FROM (SELECT %s FROM %s) AS t', cols, rel)
        INTO result;
    EXCEPTION WHEN undefined_function THEN
        EXECUTE format('SELECT count(*) || '':t'' || coalesce(sum(hashtextextended(t::text, 0)'
                       '::numeric), 0) FROM (SELECT %s FROM %s) AS t', cols, rel)
        INTO result;
    END;
    RETURN result;
END
$$;

-- Take a backup in the caller's snapshot and return its id. With `dedupe`, nothing is
-- copied (NULL is returned) when the latest backup already holds exactly these rows.
CREATE OR REPLACE FUNCTION loader.backup_take(run bigint, why text, dedupe boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    id        bigint;
    assets    text;
    cust      text;
    sum_a     text := loader.rows_checksum('image_assets', '*');
    sum_c     text;
    latest    loader.backups;
BEGIN
    IF to_regclass('customers') IS NOT NULL THEN
        sum_c := loader.rows_checksum('customers', 'id, folder_name');
    END IF;
    IF dedupe THEN
        SELECT * INTO latest FROM loader.backups ORDER BY backup_id DESC LIMIT 1;
        IF latest.checksum = sum_a AND latest.customers_checksum IS NOT DISTINCT FROM sum_c THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO loader.backups (run_id, reason) VALUES (run, why) RETURNING backup_id INTO id;
    assets := format('backup_%s_image_assets', id);
    EXECUTE format('CREATE TABLE loader.%I AS TABLE image_assets', assets);
    IF sum_c IS NOT NULL THEN
        cust := format('backup_%s_customers', id);
        EXECUTE format('CREATE TABLE loader.%I AS SELECT id, folder_name FROM customers', cust);
    END IF;
    UPDATE loader.backups
    SET assets_table = assets, customers_table = cust,
        rows = split_part(sum_a, ':', 1)::bigint, checksum = sum_a,
        customers = split_part(sum_c, ':', 1)::bigint, customers_checksum = sum_c
    WHERE backup_id = id;
    RETURN id;
END
$$;

-- Drop backup `id` (its tables and its catalogue row); false when there is no such backup.
CREATE OR REPLACE FUNCTION loader.backup_drop(id bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    b loader.backups;
BEGIN
    DELETE FROM loader.backups WHERE backup_id = id RETURNING * INTO b;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS loader.%I', b.assets_table);
    IF b.customers_table IS NOT NULL THEN
        EXECUTE format('DROP TABLE IF EXISTS loader.%I', b.customers_table);
    END IF;
    RETURN true;
END
$$;

-- Make image_assets hold exactly the rows of `assets` (same columns), and customers the
-- folder_name values of `cust` (when given), touching only rows that differ: rows not in the
-- backup are deleted, differing rows updated in place, missing rows inserted (keyed by
-- file_path, and by any GENERATED ALWAYS identity column, which cannot be updated).
-- Never deletes a customer. Returns the counts of each.
CREATE OR REPLACE FUNCTION loader.backup_restore(assets regclass, cust regclass)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    cols     text;
    old_row  text;
    new_row  text;
    settable text;
    vals     text;
    same_id  text;
    deleted  bigint;
    updated  bigint;
    inserted bigint;
    renamed  bigint := 0;
BEGIN
    LOCK TABLE image_assets IN SHARE ROW EXCLUSIVE MODE;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum),
           string_agg('ia.' || quote_ident(attname), ', ' ORDER BY attnum),
           string_agg('b.' || quote_ident(attname), ', ' ORDER BY attnum),
           string_agg(quote_ident(attname), ', ' ORDER BY attnum)
               FILTER (WHERE attidentity <> 'a'),
           string_agg('b.' || quote_ident(attname), ', ' ORDER BY attnum)
               FILTER (WHERE attidentity <> 'a'),
           coalesce(string_agg(format(' AND b.%1$I = ia.%1$I', attname), '')
               FILTER (WHERE attidentity = 'a'), '')
    INTO cols, old_row, new_row, settable, vals, same_id
    FROM pg_attribute
    WHERE attrelid = 'image_assets'::regclass AND attnum > 0 AND NOT attisdropped
      AND attgenerated = '';
    EXECUTE format('DELETE FROM image_assets AS ia WHERE NOT EXISTS '
                   '(SELECT 1 FROM %s AS b WHERE b.file_path = ia.file_path%s)', assets, same_id);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    BEGIN
        EXECUTE format('UPDATE image_assets AS ia SET (%s) = ROW(%s) FROM %s AS b '
                       'WHERE b.file_path = ia.file_path AND ROW(%s) IS DISTINCT FROM ROW(%s)',
                       settable, vals, assets, old_row, new_row);
    EXCEPTION WHEN undefined_function THEN
        -- a column type without equality (json, point, ...): compare the rows' text forms
        EXECUTE format('UPDATE image_assets AS ia SET (%s) = ROW(%s) FROM %s AS b '
                       'WHERE b.file_path = ia.file_path '
                       'AND ROW(%s)::text IS DISTINCT FROM ROW(%s)::text',
                       settable, vals, assets, old_row, new_row);
    END;
    GET DIAGNOSTICS updated = ROW_COUNT;
    EXECUTE format('INSERT INTO image_assets (%1$s) OVERRIDING SYSTEM VALUE SELECT %1$s FROM %2$s AS b '
                   'WHERE NOT EXISTS (SELECT 1 FROM image_assets AS ia WHERE ia.file_path = b.file_path)',
                   cols, assets);
    GET DIAGNOSTICS inserted = ROW_COUNT;
    IF cust IS NOT NULL THEN
        EXECUTE format('UPDATE customers AS c SET folder_name = b.folder_name FROM %s AS b '
                       'WHERE c.id = b.id AND c.folder_name IS DISTINCT FROM b.folder_name', cust);
        GET DIAGNOSTICS renamed = ROW_COUNT;
    END IF;
    RETURN jsonb_build_object('deleted', deleted, 'updated', updated, 'inserted', inserted,
                              'folder_names', renamed);
END
$$;

-- Rows `loader verify --repair --delete-orphans` deleted, whole (to_jsonb of the row), under
-- the run that deleted them: enough to put each back exactly (orphans_restore.sql).
CREATE TABLE IF NOT EXISTS loader.deleted_rows (
    run_id      bigint NOT NULL,
    file_path   text NOT NULL,
    row         jsonb NOT NULL,
    restored_at timestamptz
);
CREATE INDEX IF NOT EXISTS deleted_rows_run ON loader.deleted_rows (run_id);

-- A person's folder -> customer decisions (`loader match apply`); they win over automatic ones.
CREATE TABLE IF NOT EXISTS loader.match_decisions (
    folder      text PRIMARY KEY,
    customer_id bigint,
    decided_by  text NOT NULL DEFAULT 'review',
    note        text,
    decided_at  timestamptz NOT NULL DEFAULT now()
);

-- customers.folder_name changes made by `loader match apply --write-folder-name`, for rollback.
CREATE TABLE IF NOT EXISTS loader.customer_changes (
    change_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id     bigint NOT NULL,
    prev_folder_name text,
    new_folder_name  text,
    at              timestamptz NOT NULL DEFAULT now(),
    reverted_at     timestamptz
);

INSERT INTO loader.schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;

-- The last matching's result, under a digest of everything it depends on (the folders, every
-- customer's id, name, phone and folder_name, the stored decisions, the matcher's code and
-- thresholds): a run with the same inputs takes its links from here instead of matching again.
CREATE TABLE IF NOT EXISTS loader.match_memo (
    key          text PRIMARY KEY,
    folders      text[] NOT NULL,
    customer_ids bigint[] NOT NULL,
    summary      jsonb NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
