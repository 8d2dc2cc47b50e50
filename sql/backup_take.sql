-- Take a backup ($1 run id or NULL, $2 reason, $3 dedupe) in the caller's snapshot; its id,
-- or NULL when deduped (see loader.backup_take in loader_schema.sql).
SELECT loader.backup_take($1, $2, $3);
