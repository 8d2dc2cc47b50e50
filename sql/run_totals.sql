-- Whole-run counts, from the journal (the truth across resumes and workers) and folders.
SELECT
    (SELECT count(*) FROM loader.journal WHERE run_id = $1 AND action = 'insert') AS inserted,
    (SELECT count(*) FROM loader.journal WHERE run_id = $1 AND action = 'update') AS updated,
    (SELECT count(*) FROM loader.row_failures WHERE run_id = $1) AS failed,
    (SELECT coalesce(sum((counts ->> 'media')::bigint), 0)
       FROM loader.folders WHERE run_id = $1) AS media,
    (SELECT count(*) FROM loader.folders WHERE run_id = $1) AS folders,
    (SELECT count(*) FROM loader.folders WHERE run_id = $1 AND state = 'done') AS folders_done,
    (SELECT count(*) FROM loader.folders WHERE run_id = $1 AND state = 'failed')
        AS folders_failed;
