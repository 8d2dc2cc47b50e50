-- Recent runs, newest first, with their folder progress.
SELECT r.run_id, r.status, r.bucket, r.prefix, r.started_at, r.finished_at, r.counts,
       (SELECT count(*) FROM loader.folders f WHERE f.run_id = r.run_id) AS folders,
       (SELECT count(*) FROM loader.folders f WHERE f.run_id = r.run_id AND f.state = 'done')
           AS folders_done
FROM loader.runs AS r
ORDER BY r.run_id DESC
LIMIT $1;
