-- `loader sync status`: the flags install fixed, the settings an upload now gets
-- (loader.sync_config), what the trigger registered and the errors it caught.
SELECT s.bucket AS fixed_bucket, s.prefix AS fixed_prefix, s.cdn_base AS fixed_cdn_base,
       s.cdn_url AS fixed_cdn_url, s.upload_source AS fixed_upload_source,
       s.match AS fixed_match, s.target, s.lock_timeout, s.installed_at,
       c.bucket, c.prefix, c.cdn_base, c.cdn_url, c.upload_source, c.match, c.run_id,
       (SELECT count(*) FROM loader.sync_links) AS links,
       (SELECT count(*) FROM loader.sync_log WHERE inserted) AS inserted,
       (SELECT count(*) FROM loader.sync_log WHERE NOT inserted) AS updated,
       (SELECT max(at) FROM loader.sync_log) AS last_registered_at,
       (SELECT count(*) FROM loader.sync_errors) AS errors
FROM loader.sync_settings AS s
LEFT JOIN loader.sync_config() AS c ON true;
