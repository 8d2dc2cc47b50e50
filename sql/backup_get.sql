-- One backup's catalogue row.
SELECT * FROM loader.backups WHERE backup_id = $1 AND assets_table IS NOT NULL;
