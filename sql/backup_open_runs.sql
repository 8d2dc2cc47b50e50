-- Runs still marked running (a restore under them would make their journal lie).
SELECT coalesce(array_agg(run_id ORDER BY run_id), '{}') FROM loader.runs WHERE status = 'running';
