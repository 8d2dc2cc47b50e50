-- Per-folder state and counts of run $1, with journal counts per folder.
SELECT f.folder, f.customer_id, f.state, f.attempts, f.claimed_by, f.error, f.counts,
       coalesce(j.inserted, 0) AS inserted, coalesce(j.updated, 0) AS updated
FROM loader.folders AS f
LEFT JOIN (
    SELECT folder, count(*) FILTER (WHERE action = 'insert') AS inserted,
           count(*) FILTER (WHERE action = 'update') AS updated
    FROM loader.journal WHERE run_id = $1 GROUP BY folder
) AS j USING (folder)
WHERE f.run_id = $1
ORDER BY f.folder;
