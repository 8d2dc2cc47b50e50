-- The $1 latest errors the trigger caught, newest first.
SELECT at, bucket_id, name, operation, sqlstate, message
FROM loader.sync_errors
ORDER BY at DESC
LIMIT $1;
