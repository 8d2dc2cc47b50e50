-- Rollback plan in numbers: rows per action, and up to $1 example paths per action.
SELECT action, count(*) AS n,
       (array_agg(file_path ORDER BY file_path))[1:$1] AS examples
FROM pg_temp.loader_rollback_plan
GROUP BY action
ORDER BY action;
