-- Before a rollback is planned (rollback_plan.sql), in a transaction of its own: fresh
-- planner statistics for each journal table changed past autovacuum's own threshold since it
-- was last analyzed, as right after a run (autovacuum gets to it a minute or so later). On
-- statistics that knew none of a 900,000-row run, the plan looked each of its rows up in
-- image_assets by index: 6.5 s, against 2.5 s by hash join. Only the columns the plan
-- filters and joins on. Committed apart: analyzed inside a dry run's transaction, the table
-- would count as analyzed (autovacuum's counters are not undone) with its statistics undone.
DO $$
DECLARE
    stale text[] := ARRAY(
        SELECT s.relname::text
        FROM pg_stat_user_tables AS s
        JOIN pg_class AS c ON c.oid = s.relid
        WHERE s.schemaname = 'loader' AND s.relname IN ('journal_inserts', 'journal_updates')
          AND s.n_mod_since_analyze
              > current_setting('autovacuum_analyze_threshold')::real
                + current_setting('autovacuum_analyze_scale_factor')::real
                  * greatest(c.reltuples, 0));
BEGIN
    IF 'journal_updates' = ANY (stale) THEN
        ANALYZE loader.journal_updates (run_id, xid, asset_id, file_path, prev_xmin);
    END IF;
    IF 'journal_inserts' = ANY (stale) THEN
        ANALYZE loader.journal_inserts (run_id, xid);
    END IF;
END
$$;
