-- Recent runs, newest first, with their folder progress. A run marked running, aborted or
-- interrupted that no live worker holds (the run's shared liveness lock, worker_lock.sql, is
-- free) is 'interrupted': resumable with --resume, and rollback needs no --force. The
-- try-lock is transaction-scoped and released as soon as this statement ends. (Such runs
-- were just recorded interrupted, runs_mark_interrupted.sql; one can die in between.)
SELECT r.run_id,
       CASE WHEN r.status IN ('running', 'aborted', 'interrupted')
            THEN CASE WHEN pg_try_advisory_xact_lock(
                               hashtextextended('loader-run:' || r.run_id::text, 0))
                      THEN 'interrupted' ELSE 'running' END
            ELSE r.status END AS status,
       r.bucket, r.prefix, r.started_at, r.finished_at, r.counts,
       (SELECT coalesce(sum(cardinality(c.folders)), 0) FROM loader.chunks AS c
        WHERE c.run_id = r.run_id) AS folders,
       (SELECT coalesce(sum(cardinality(c.folders)), 0) FROM loader.chunks AS c
        WHERE c.run_id = r.run_id AND c.state = 'done') AS folders_done
FROM loader.runs AS r
ORDER BY r.run_id DESC
LIMIT $1;
