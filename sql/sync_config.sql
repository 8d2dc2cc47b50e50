-- The settings an upload is registered with right now (see loader.sync_config).
SELECT bucket, prefix, cdn_base, cdn_url, upload_source, match, run_id
FROM loader.sync_config();
