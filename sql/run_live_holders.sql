-- The other workers ($2 is the asking worker) that still hold folders of run $1: how many,
-- and how many of them are live. A worker is live while its liveness lock (worker_lock.sql)
-- is held; taking the lock here for the transaction succeeds only for dead workers, and is
-- released when the statement ends. Folders of a dead worker are for the asker to take over.
SELECT count(DISTINCT f.claimed_by) AS holders,
       count(DISTINCT f.claimed_by) FILTER (
           WHERE NOT pg_try_advisory_xact_lock(hashtextextended(f.claimed_by, 0))) AS live
FROM loader.folders AS f
WHERE f.run_id = $1 AND f.state = 'claimed' AND f.claimed_by <> $2;
