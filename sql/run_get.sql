SELECT run_id, status, bucket, prefix, options, started_at, finished_at, registering
FROM loader.runs WHERE run_id = $1;
