SELECT run_id, status, bucket, prefix, options, started_at, finished_at
FROM loader.runs WHERE run_id = $1;
