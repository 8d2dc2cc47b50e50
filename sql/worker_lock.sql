-- Held by each worker for its whole life on a dedicated connection: while it is held the
-- worker is alive; when the process dies its connection closes and the lock goes with it,
-- which is how other workers know they may take over its claimed folders.
SELECT pg_advisory_lock(hashtextextended($1, 0));
