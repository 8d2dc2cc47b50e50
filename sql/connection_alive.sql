-- The check of a connection held for long (a worker's liveness lock, a run's backup): its
-- backend answers, so the session's advisory locks and open transaction are still there.
SELECT 1;
