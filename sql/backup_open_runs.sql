-- Runs not finished: running, or stopped midway (a restore under them would make their
-- journal lie).
SELECT coalesce(array_agg(run_id ORDER BY run_id), '{}') FROM loader.runs
WHERE status IN ('running', 'aborted', 'interrupted');
