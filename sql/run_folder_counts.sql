-- Run $1's folders: how many are done, of how many (a worker's progress bar starts there).
SELECT count(*) FILTER (WHERE state = 'done') AS done, count(*) AS total
FROM loader.folders
WHERE run_id = $1;
