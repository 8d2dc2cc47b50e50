-- How many other live workers ($2 is the asking worker) still hold folders of run $1. A worker
-- is live while its liveness lock (worker_lock.sql) is held; taking the lock here for the
-- transaction succeeds only for dead workers, and is released when the statement ends.
SELECT count(DISTINCT f.claimed_by)
FROM loader.folders AS f
WHERE f.run_id = $1 AND f.state = 'claimed' AND f.claimed_by <> $2
  AND NOT pg_try_advisory_xact_lock(hashtextextended(f.claimed_by, 0));
