-- Held by each worker for its whole life on a dedicated connection: while it is held the
-- worker is alive; when the process dies its connection closes and the lock goes with it,
-- which is how other workers know they may take over its claimed folders. The shared lock on
-- run $2 (see run_lock_key.sql) says "some worker is alive on this run": `loader runs` and
-- rollback tell a running run from an interrupted one by it.
SELECT pg_advisory_lock(hashtextextended($1, 0)),
       pg_advisory_lock_shared(hashtextextended('loader-run:' || $2::bigint::text, 0));
