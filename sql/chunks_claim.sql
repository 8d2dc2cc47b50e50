-- Claim up to $3 chunks of run $1 for worker $2; returns each claimed chunk's folders with
-- their customers, and those of the chunks it holds already but does not know of: all but
-- $4, the ones it has in flight. Postgres is the coordinator: SKIP LOCKED hands each chunk to
-- one worker.
-- Claimable: pending chunks; chunks claimed by a worker whose liveness lock (worker_lock.sql)
-- is free, i.e. that died; and chunks that failed under another worker (so a resumed process
-- retries them once, not in a loop).
--
-- Idempotent under retry: the chunks this worker already holds are returned too (`mine`
-- reads the snapshot before the update, so nothing comes back twice). If a claim commits but
-- its reply is lost, the retry still hands those chunks to the worker. The ones it knows are
-- left out: every claim would send their folders again.
--
-- Only a live worker claims: its own liveness lock is held (by its lock connection), so taking
-- it here fails. A worker whose lock is gone gets nothing, not even the chunks it holds,
-- which others may be taking over; it takes its lock again first (loader.runs).
WITH alive AS (
    SELECT NOT pg_try_advisory_xact_lock(hashtextextended($2, 0)) AS yes
),
mine AS (
    SELECT c.chunk_id, c.folders, c.customer_ids
    FROM loader.chunks AS c
    WHERE c.run_id = $1 AND c.state = 'claimed' AND c.claimed_by = $2
      AND c.chunk_id <> ALL ($4::bigint[])
      AND (SELECT yes FROM alive)
),
candidates AS (
    SELECT c.chunk_id
    FROM loader.chunks AS c
    WHERE c.run_id = $1 AND (SELECT yes FROM alive)
      AND c.state <> 'done'  -- the partial index chunks_open: done chunks are never read
      AND (c.state = 'pending'
           OR (c.state = 'failed' AND c.claimed_by IS DISTINCT FROM $2)
           OR (c.state = 'claimed' AND c.claimed_by IS DISTINCT FROM $2
               AND pg_try_advisory_xact_lock(hashtextextended(c.claimed_by, 0))))
    ORDER BY c.chunk_id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
taken AS (
    UPDATE loader.chunks AS c
    SET state = 'claimed', claimed_by = $2, claimed_at = now(), attempts = c.attempts + 1,
        errors = NULL
    -- An array, not a join: the planner cannot misjudge a fresh table into a nested loop
    -- over every chunk of the run.
    WHERE c.chunk_id = ANY (ARRAY(SELECT chunk_id FROM candidates))
    RETURNING c.chunk_id, c.folders, c.customer_ids
)
SELECT t.chunk_id, f.folder, f.customer_id
FROM (SELECT * FROM taken UNION ALL SELECT * FROM mine) AS t
CROSS JOIN LATERAL unnest(t.folders, t.customer_ids) WITH ORDINALITY AS f(folder, customer_id, i)
ORDER BY t.chunk_id, f.i;
