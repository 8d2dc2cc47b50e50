-- `loader sync remove`: drop everything sync_schema.sql and loader.sync_define created (the
-- triggers first, so no upload runs the function while it goes). Idempotent. The rows the
-- trigger registered stay in image_assets: they are the user's data now.
DO $$
BEGIN
    IF to_regclass('storage.objects') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS loader_sync_insert ON storage.objects;
        DROP TRIGGER IF EXISTS loader_sync_update ON storage.objects;
    END IF;
END
$$;
DROP FUNCTION IF EXISTS loader.sync_object();
DROP FUNCTION IF EXISTS loader.sync_define(text, text);
DROP FUNCTION IF EXISTS loader.sync_customer(text);
DROP FUNCTION IF EXISTS loader.sync_row(text, jsonb, timestamptz, text, text);
DROP FUNCTION IF EXISTS loader.sync_url_path(text);
DROP FUNCTION IF EXISTS loader.sync_config();
DROP TABLE IF EXISTS loader.sync_settings, loader.sync_links, loader.sync_media_types,
    loader.sync_placeholders, loader.sync_log, loader.sync_errors;
