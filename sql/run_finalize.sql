-- Close run $1 once no folder is pending or claimed: 'succeeded', or 'incomplete' when a
-- folder or a row failed; its counts are stored with it. Returns the run's status either way
-- ('running' while folders are left), so closing twice is harmless.
WITH closed AS (
    UPDATE loader.runs AS r
    SET status = CASE
            WHEN EXISTS (SELECT 1 FROM loader.chunks WHERE run_id = $1 AND state = 'failed')
              OR EXISTS (SELECT 1 FROM loader.row_failures WHERE run_id = $1)
            THEN 'incomplete' ELSE 'succeeded' END,
        finished_at = now(),
        counts = loader.run_counts($1)
    WHERE r.run_id = $1 AND r.status IN ('running', 'aborted', 'interrupted')
      AND NOT r.registering  -- folders not registered yet are not done
      AND NOT EXISTS (SELECT 1 FROM loader.chunks
                      WHERE run_id = $1 AND state IN ('pending', 'claimed'))
    RETURNING r.status
)
SELECT status FROM closed
UNION ALL
SELECT status FROM loader.runs WHERE run_id = $1 AND NOT EXISTS (SELECT 1 FROM closed);
