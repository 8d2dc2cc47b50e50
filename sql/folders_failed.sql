-- A folder whose listing failed after retries; its rows already written stand.
UPDATE loader.folders SET state = 'failed', error = $3, counts = $4
WHERE run_id = $1 AND folder = $2;
