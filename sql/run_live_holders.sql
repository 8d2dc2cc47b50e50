-- The other workers ($2 is the asking worker) that still hold chunks of run $1: how many,
-- and how many of them are live. A worker is live while its liveness lock (worker_lock.sql)
-- is held; taking the lock here for the transaction succeeds only for dead workers, and is
-- released when the statement ends. Folders of a dead worker are for the asker to take over.
SELECT count(DISTINCT c.claimed_by) AS holders,
       count(DISTINCT c.claimed_by) FILTER (
           WHERE NOT pg_try_advisory_xact_lock(hashtextextended(c.claimed_by, 0))) AS live
FROM loader.chunks AS c
WHERE c.run_id = $1 AND c.state = 'claimed' AND c.claimed_by <> $2;
