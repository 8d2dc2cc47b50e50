-- Mark run $1 undone (used for runs without a journal of their own, such as an orphan
-- deletion, whose rows are put back from loader.deleted_rows).
UPDATE loader.runs SET status = 'rolled_back', finished_at = now() WHERE run_id = $1;
