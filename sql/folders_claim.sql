-- Claim up to $3 folders of run $1 for worker $2. Postgres is the coordinator: SKIP LOCKED
-- hands each folder to one worker. Claimable: pending folders; folders claimed by a worker
-- whose liveness lock (worker_lock.sql) is free, i.e. that died; and folders that failed under
-- another worker (so a resumed process retries them once, not in a loop).
--
-- Idempotent under retry: the folders this worker already holds are returned too (`mine`
-- reads the snapshot before the update, so nothing comes back twice). If a claim commits but
-- its reply is lost, the retry still hands those folders to the worker, which then walks
-- every folder it holds; it skips the ones it already knows (in flight).
--
-- Only a live worker claims: its own liveness lock is held (by its lock connection), so taking
-- it here fails. A worker whose lock is gone gets nothing, not even the folders it holds,
-- which others may be taking over; it takes its lock again first (loader.runs).
WITH alive AS (
    SELECT NOT pg_try_advisory_xact_lock(hashtextextended($2, 0)) AS yes
),
mine AS (
    SELECT f.folder, f.customer_id
    FROM loader.folders AS f
    WHERE f.run_id = $1 AND f.state = 'claimed' AND f.claimed_by = $2
      AND (SELECT yes FROM alive)
),
candidates AS (
    SELECT f.folder
    FROM loader.folders AS f
    WHERE f.run_id = $1 AND (SELECT yes FROM alive)
      AND f.state <> 'done'  -- the partial index folders_open: done folders are never read
      AND (f.state = 'pending'
           OR (f.state = 'failed' AND f.claimed_by IS DISTINCT FROM $2)
           OR (f.state = 'claimed' AND f.claimed_by IS DISTINCT FROM $2
               AND pg_try_advisory_xact_lock(hashtextextended(f.claimed_by, 0))))
    ORDER BY f.folder
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
taken AS (
    UPDATE loader.folders AS f
    SET state = 'claimed', claimed_by = $2, claimed_at = now(), attempts = f.attempts + 1,
        error = NULL
    -- An array, not a join: the planner cannot misjudge a fresh table into a nested loop
    -- over every folder of the run.
    WHERE f.run_id = $1 AND f.folder = ANY (ARRAY(SELECT folder FROM candidates))
    RETURNING f.folder, f.customer_id
)
SELECT folder, customer_id FROM taken
UNION ALL
SELECT folder, customer_id FROM mine;
