-- Resuming or joining: a finished-with-failures or aborted run goes back to running.
UPDATE loader.runs SET status = 'running', finished_at = NULL
WHERE run_id = $1 AND status IN ('running', 'incomplete', 'aborted')
RETURNING run_id;
