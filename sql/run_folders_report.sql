-- Per-folder state and counts of run $1 (its journal counts come from run_journal_counts.sql:
-- two single-table reads joined by the caller, so no plan can repeat an aggregate per folder):
-- every folder's when $2, else only those of the folders not done.
SELECT f.folder, f.customer_id, f.state, f.attempts, f.claimed_by, f.error, f.counts
FROM loader.folders AS f
WHERE f.run_id = $1 AND ($2 OR f.state <> 'done')
ORDER BY f.folder;
