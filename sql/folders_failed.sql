-- A folder whose listing failed after retries, if worker $5 still holds it; its rows already
-- written stand.
UPDATE loader.folders SET state = 'failed', error = $3, counts = $4
WHERE run_id = $1 AND folder = $2 AND state = 'claimed' AND claimed_by = $5;
