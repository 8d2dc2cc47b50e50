-- A worker on run $1, just after it took the run's shared lock (worker_lock.sql): a run that
-- finished with failures, was aborted or marked interrupted goes back to running. Only a lock
-- holder sets 'running', so a run marked interrupted (runs_mark_interrupted.sql, under the
-- exclusive lock) was, at that moment, held by no worker. Returns the run's status (NULL: no
-- such run).
WITH reopened AS (
    UPDATE loader.runs SET status = 'running', finished_at = NULL
    WHERE run_id = $1 AND status IN ('running', 'incomplete', 'aborted', 'interrupted')
    RETURNING status
)
SELECT status FROM reopened
UNION ALL
SELECT status FROM loader.runs WHERE run_id = $1 AND NOT EXISTS (SELECT 1 FROM reopened);
