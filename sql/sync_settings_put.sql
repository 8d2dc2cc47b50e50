-- Install's settings: $1 bucket, $2 prefix, $3 cdn base, $4 cdn_url mode, $5 upload_source,
-- $6 match mode (each NULL: the latest run's), $7 the target table, $8 the lock timeout.
INSERT INTO loader.sync_settings AS s
    (bucket, prefix, cdn_base, cdn_url, upload_source, match, target, lock_timeout)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (one) DO UPDATE
   SET bucket = excluded.bucket, prefix = excluded.prefix, cdn_base = excluded.cdn_base,
       cdn_url = excluded.cdn_url, upload_source = excluded.upload_source,
       match = excluded.match, target = excluded.target, lock_timeout = excluded.lock_timeout
 WHERE (s.bucket, s.prefix, s.cdn_base, s.cdn_url, s.upload_source, s.match, s.target,
        s.lock_timeout)
       IS DISTINCT FROM (excluded.bucket, excluded.prefix, excluded.cdn_base, excluded.cdn_url,
                         excluded.upload_source, excluded.match, excluded.target,
                         excluded.lock_timeout);
