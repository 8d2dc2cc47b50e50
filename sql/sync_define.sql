-- Write the trigger function for $1 (image_assets, schema-qualified) waiting at most $2 for
-- a lock, and put its triggers on storage.objects (see loader.sync_define).
SELECT loader.sync_define($1, $2);
