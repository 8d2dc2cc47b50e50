-- Run $1's folders: how many are done, of how many (a worker's progress bar starts there).
SELECT coalesce(sum(cardinality(folders)) FILTER (WHERE state = 'done'), 0) AS done,
       coalesce(sum(cardinality(folders)), 0) AS total
FROM loader.chunks
WHERE run_id = $1;
