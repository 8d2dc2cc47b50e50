-- Held by each worker for its whole life on a dedicated connection: while it is held the
-- worker is alive; when the process dies its connection closes and the lock goes with it,
-- which is how other workers know they may take over its claimed folders. The shared lock on
-- run $2 says "some worker is alive on this run": `loader runs` and rollback tell a running
-- run from an interrupted one by it (runs_mark_interrupted.sql). $3 names the connection in
-- pg_stat_activity (set here, not in the startup packet, which poolers refuse).
SELECT pg_advisory_lock(hashtextextended($1, 0)),
       pg_advisory_lock_shared(hashtextextended('loader-run:' || $2::bigint::text, 0)),
       set_config('application_name', $3, false);
