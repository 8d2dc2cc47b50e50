-- Drop every backup but the newest $1; returns how many were dropped.
SELECT count(*) FILTER (WHERE loader.backup_drop(backup_id))
FROM loader.backups
WHERE backup_id NOT IN (SELECT backup_id FROM loader.backups ORDER BY backup_id DESC LIMIT $1);
