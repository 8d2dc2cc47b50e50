-- Once its plan is applied (rollback_apply.sql), mark run $1 rolled back and record the
-- rollback. $2 force, $3 jsonb counts per action, $4 jsonb examples per action.
WITH closed AS (
    UPDATE loader.runs SET status = 'rolled_back', finished_at = now()
    WHERE run_id = $1
    RETURNING run_id
)
INSERT INTO loader.rollbacks (run_id, forced, xid, counts, examples)
VALUES ($1, $2, pg_current_xact_id()::xid, $3, $4);
