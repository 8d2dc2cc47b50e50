-- Every backup, newest first, with the space its tables take.
SELECT b.backup_id, b.taken_at, b.run_id, b.reason, b.rows, b.customers, b.checksum,
       coalesce(pg_total_relation_size(to_regclass(format('loader.%I', b.assets_table))), 0)
       + coalesce(pg_total_relation_size(to_regclass(format('loader.%I', b.customers_table))), 0)
           AS bytes
FROM loader.backups AS b
WHERE b.assets_table IS NOT NULL
ORDER BY b.backup_id DESC;
