-- Runs marked running or aborted that no live worker holds become 'interrupted'; returns
-- their ids. A worker holds its run's shared lock (worker_lock.sql) for its whole life; the
-- exclusive try-lock here succeeds only when no worker holds it, and is held until this
-- statement's transaction ends, so a worker taking the lock meanwhile waits, then sets its run
-- running again (run_reopen.sql). The CASE tries the lock only for runs that qualify.
UPDATE loader.runs AS r
SET status = 'interrupted'
WHERE CASE WHEN r.status IN ('running', 'aborted')
           THEN pg_try_advisory_xact_lock(hashtextextended('loader-run:' || r.run_id::text, 0))
           ELSE false END
RETURNING r.run_id;
